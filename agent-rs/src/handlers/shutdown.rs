//! guest-shutdown. qemu-ga runs /sbin/shutdown and sends no reply. We reply
//! `{"return": {}}` first (the caller writes it out), then ask init for an
//! orderly shutdown (/sbin/shutdown, else poweroff/halt/reboot, which signal
//! init), so services stop and filesystems are unmounted. If init has not
//! ended us within 30 s, or no such program exists (minimal guests), we sync
//! and call reboot(2) directly.

use crate::agent::State;
use crate::args::ShutdownArgs;
use crate::error::{AgentError, HandlerResult};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerMode {
    Powerdown,
    Halt,
    Reboot,
}

pub fn parse_mode(mode: Option<&str>) -> Result<PowerMode, AgentError> {
    match mode.unwrap_or("powerdown") {
        "powerdown" => Ok(PowerMode::Powerdown),
        "halt" => Ok(PowerMode::Halt),
        "reboot" => Ok(PowerMode::Reboot),
        _ => Err(AgentError::invalid_value(
            "mode",
            "\"halt\", \"powerdown\" or \"reboot\"",
        )),
    }
}

/// Validates and records the request; [`execute`] acts on it later.
pub fn request(state: &mut State, a: ShutdownArgs) -> HandlerResult {
    state.pending_power = Some(parse_mode(a.mode.as_deref())?);
    Ok(json!({}))
}

/// Asks init, then falls back to sync + reboot(2). Returns only on failure.
pub fn execute(mode: PowerMode) -> std::io::Error {
    let (flag, program) = match mode {
        PowerMode::Powerdown => ("-P", "poweroff"),
        PowerMode::Halt => ("-H", "halt"),
        PowerMode::Reboot => ("-r", "reboot"),
    };
    let orderly = [
        ("/sbin/shutdown", vec![flag, "now"]),
        ("/usr/sbin/shutdown", vec![flag, "now"]),
        (&*format!("/sbin/{program}"), vec![]),
        (&*format!("/bin/{program}"), vec![]),
    ]
    .iter()
    .any(|(path, args)| {
        std::path::Path::new(path).exists()
            && std::process::Command::new(path)
                .args(args)
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
    });
    if orderly {
        // Init is taking the system down and will stop us; if it does not, do it ourselves.
        std::thread::sleep(Duration::from_secs(30));
    }
    force(mode)
}

/// Syncs and powers off / halts / reboots at once. Returns only on failure.
fn force(mode: PowerMode) -> std::io::Error {
    let cmd = match mode {
        PowerMode::Powerdown => libc::RB_POWER_OFF,
        PowerMode::Halt => libc::RB_HALT_SYSTEM,
        PowerMode::Reboot => libc::RB_AUTOBOOT,
    };
    // SAFETY: sync and reboot have no memory-safety preconditions.
    unsafe { libc::sync() };
    // Give the host a moment to read the reply from the channel.
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::reboot(cmd) };
    std::io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode(None).unwrap(), PowerMode::Powerdown);
        assert_eq!(parse_mode(Some("halt")).unwrap(), PowerMode::Halt);
        assert_eq!(parse_mode(Some("reboot")).unwrap(), PowerMode::Reboot);
        let e = parse_mode(Some("nap")).unwrap_err();
        assert_eq!(
            e.desc,
            "Parameter 'mode' expects \"halt\", \"powerdown\" or \"reboot\""
        );
    }

    #[test]
    fn request_is_deferred() {
        let mut s = State::default();
        let r = request(
            &mut s,
            ShutdownArgs {
                mode: Some("reboot".into()),
            },
        )
        .unwrap();
        assert_eq!(r, json!({}));
        assert_eq!(s.pending_power, Some(PowerMode::Reboot));
    }
}
