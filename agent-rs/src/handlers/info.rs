//! guest-info, guest-get-time, guest-get-osinfo, guest-get-host-name,
//! guest-get-load, neuroflow-get-uptime.

use crate::command::COMMANDS;
use crate::error::{AgentError, HandlerResult};
use crate::util::text::{parse_os_release, read_text};
use serde_json::{json, Map, Value};
use std::ffi::CStr;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn guest_info(frozen: bool) -> Value {
    let cmds: Vec<Value> = COMMANDS
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "enabled": !frozen || c.when_frozen,
                "success-response": c.success_response,
            })
        })
        .collect();
    json!({ "version": VERSION, "supported_commands": cmds })
}

pub fn get_time() -> HandlerResult {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| AgentError::generic("system time is before the epoch"))?;
    Ok(json!(d.as_nanos() as i64))
}

fn c_field(field: &[libc::c_char]) -> String {
    // uname fields are NUL-terminated within their arrays.
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Maps os-release keys to GuestOSInfo members.
pub fn osinfo_from(os_release: Option<&str>, uname: Option<[String; 3]>) -> Value {
    let mut out = Map::new();
    if let Some([release, version, machine]) = uname {
        out.insert("kernel-release".into(), release.into());
        out.insert("kernel-version".into(), version.into());
        out.insert("machine".into(), machine.into());
    }
    if let Some(text) = os_release {
        for (key, value) in parse_os_release(text) {
            let member = match key.as_str() {
                "ID" => "id",
                "NAME" => "name",
                "PRETTY_NAME" => "pretty-name",
                "VERSION" => "version",
                "VERSION_ID" => "version-id",
                "VARIANT" => "variant",
                "VARIANT_ID" => "variant-id",
                _ => continue,
            };
            out.insert(member.into(), value.into());
        }
    }
    Value::Object(out)
}

pub fn get_osinfo() -> Value {
    // SAFETY: utsname is plain data; uname fills it in.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    let uname = if unsafe { libc::uname(&mut uts) } == 0 {
        Some([
            c_field(&uts.release),
            c_field(&uts.version),
            c_field(&uts.machine),
        ])
    } else {
        None
    };
    let text = read_text("/etc/os-release")
        .or_else(|_| read_text("/usr/lib/os-release"))
        .ok();
    osinfo_from(text.as_deref(), uname)
}

pub fn get_host_name() -> HandlerResult {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // when the name fits, and we keep the last byte zero.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return Err(AgentError::io("gethostname", &io::Error::last_os_error()));
    }
    let name = CStr::from_bytes_until_nul(&buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(json!({ "host-name": name }))
}

/// Parses /proc/loadavg ("0.00 0.01 0.05 1/80 123").
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>());
    Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
}

pub fn get_load() -> HandlerResult {
    let text = read_text("/proc/loadavg")
        .map_err(|e| AgentError::io("failed to read /proc/loadavg", &e))?;
    let [l1, l5, l15] =
        parse_loadavg(&text).ok_or_else(|| AgentError::generic("failed to parse /proc/loadavg"))?;
    Ok(json!({ "load1m": l1, "load5m": l5, "load15m": l15 }))
}

pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

pub fn get_uptime() -> HandlerResult {
    let text =
        read_text("/proc/uptime").map_err(|e| AgentError::io("failed to read /proc/uptime", &e))?;
    let up =
        parse_uptime(&text).ok_or_else(|| AgentError::generic("failed to parse /proc/uptime"))?;
    Ok(json!({ "uptime-seconds": up }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lists_every_command() {
        let v = guest_info(false);
        assert_eq!(v["version"], VERSION);
        let cmds = v["supported_commands"].as_array().unwrap();
        assert_eq!(cmds.len(), COMMANDS.len());
        for c in cmds {
            assert_eq!(c["enabled"], true);
            assert!(c["success-response"].is_boolean());
        }
        assert!(cmds.iter().any(|c| c["name"] == "neuroflow-get-meminfo"));
        assert!(cmds.iter().any(|c| c["name"] == "neuroflow-get-uptime"));
        let frozen = guest_info(true);
        let ping = frozen["supported_commands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "guest-ping")
            .unwrap()
            .clone();
        assert_eq!(ping["enabled"], true);
    }

    #[test]
    fn osinfo_mapping() {
        let v = osinfo_from(
            Some("ID=alpine\nNAME=\"Alpine Linux\"\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\nHOME_URL=x\n"),
            Some(["6.1.0".into(), "#1 SMP".into(), "x86_64".into()]),
        );
        assert_eq!(
            v,
            json!({
                "kernel-release": "6.1.0", "kernel-version": "#1 SMP", "machine": "x86_64",
                "id": "alpine", "name": "Alpine Linux", "version-id": "3.19.1",
                "pretty-name": "Alpine Linux v3.19"
            })
        );
        assert_eq!(osinfo_from(None, None), json!({}));
    }

    #[test]
    fn proc_parsers() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/457 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        assert_eq!(parse_loadavg("garbage"), None);
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735.47));
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn live_commands_work_here() {
        assert!(get_time().unwrap().as_i64().unwrap() > 1_600_000_000_000_000_000);
        assert!(get_host_name().unwrap()["host-name"].is_string());
        assert!(get_osinfo()["kernel-release"].is_string());
        assert!(get_load().unwrap()["load1m"].is_number());
        assert!(get_uptime().unwrap()["uptime-seconds"].as_f64().unwrap() > 0.0);
    }
}
