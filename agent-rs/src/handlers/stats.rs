//! guest-get-cpustats, guest-get-diskstats, guest-get-memory-block-info and
//! neuroflow-get-meminfo: parsers over /proc and /sys text.

use crate::error::{AgentError, HandlerResult};
use crate::util::text::read_text;
use serde_json::{json, Map, Value};

fn read(path: &str) -> Result<String, AgentError> {
    read_text(path).map_err(|e| AgentError::io(format!("open(\"{path}\")"), &e))
}

/// /proc/stat "cpuN ..." lines as GuestCpuStats (times in milliseconds,
/// like qemu-ga; the aggregate "cpu" line is skipped).
pub fn parse_cpustats(text: &str, clk_tck: u64) -> Vec<Value> {
    const NAMES: [&str; 10] = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guestnice",
    ];
    let clk = clk_tck.max(1);
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        let Some(idx) = name.strip_prefix("cpu") else {
            continue;
        };
        let Ok(cpu) = idx.parse::<i64>() else {
            continue; // "cpu" aggregate line
        };
        let vals: Vec<u64> = f.map_while(|v| v.parse().ok()).take(10).collect();
        if vals.len() < 4 {
            continue;
        }
        let mut o = Map::new();
        o.insert("type".into(), "linux".into());
        o.insert("cpu".into(), json!(cpu));
        for (name, v) in NAMES.iter().zip(&vals) {
            o.insert((*name).into(), json!(v.saturating_mul(1000) / clk));
        }
        out.push(Value::Object(o));
    }
    out
}

pub fn get_cpustats() -> HandlerResult {
    let text = read("/proc/stat")?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(Value::Array(parse_cpustats(&text, tck.max(1) as u64)))
}

/// /proc/diskstats as GuestDiskStatsInfo. Handles the 4-field partition
/// format of old kernels, the classic 14 fields, and discard (18) and
/// flush (20) extensions, like qemu-ga.
pub fn parse_diskstats(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(major), Ok(minor)) = (f[0].parse::<u64>(), f[1].parse::<u64>()) else {
            continue;
        };
        let n: Vec<u64> = f[3..].iter().map_while(|v| v.parse().ok()).collect();
        let mut s = Map::new();
        let mut put = |k: &str, v: u64| {
            s.insert(k.into(), json!(v));
        };
        if n.len() == 4 {
            put("read-ios", n[0]);
            put("read-sectors", n[1]);
            put("write-ios", n[2]);
            put("write-sectors", n[3]);
        } else if n.len() >= 11 {
            put("read-ios", n[0]);
            put("read-merges", n[1]);
            put("read-sectors", n[2]);
            put("read-ticks", n[3]);
            put("write-ios", n[4]);
            put("write-merges", n[5]);
            put("write-sectors", n[6]);
            put("write-ticks", n[7]);
            put("ios-pgr", n[8]);
            put("total-ticks", n[9]);
            put("weight-ticks", n[10]);
            if n.len() >= 15 {
                put("discard-ios", n[11]);
                put("discard-merges", n[12]);
                put("discard-sectors", n[13]);
                put("discard-ticks", n[14]);
            }
            if n.len() >= 17 {
                put("flush-ios", n[15]);
                put("flush-ticks", n[16]);
            }
        } else {
            continue;
        }
        out.push(json!({ "name": f[2], "major": major, "minor": minor, "stats": s }));
    }
    out
}

pub fn get_diskstats() -> HandlerResult {
    Ok(Value::Array(parse_diskstats(&read("/proc/diskstats")?)))
}

/// /sys/devices/system/memory/block_size_bytes holds hex without "0x".
pub fn parse_block_size(text: &str) -> Option<u64> {
    let t = text.trim();
    u64::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16).ok()
}

pub fn get_memory_block_info() -> HandlerResult {
    let dir = "/sys/devices/system/memory/";
    if let Err(e) = std::fs::metadata(dir) {
        return Err(AgentError::io(format!("open(\"{dir}\")"), &e));
    }
    let text = read_text(format!("{dir}block_size_bytes"))
        .map_err(|e| AgentError::io("open sysfs file \"block_size_bytes\"", &e))?;
    let size = parse_block_size(&text)
        .ok_or_else(|| AgentError::generic("failed to parse block_size_bytes"))?;
    Ok(json!({ "size": size }))
}

/// /proc/meminfo values in bytes, by key.
pub fn parse_meminfo(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut it = rest.split_whitespace();
            let v: u64 = it.next()?.parse().ok()?;
            let mult = if it.next() == Some("kB") { 1024 } else { 1 };
            Some((k.to_string(), v * mult))
        })
        .collect()
}

/// neuroflow-get-meminfo. used-bytes = total - available (what procps
/// `free` reports as used since 4.0); available falls back to
/// free + buffers + cached on kernels without MemAvailable.
pub fn meminfo_value(kv: &[(String, u64)]) -> Value {
    let get = |k: &str| kv.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    let total = get("MemTotal").unwrap_or(0);
    let free = get("MemFree").unwrap_or(0);
    let buffers = get("Buffers").unwrap_or(0);
    let cached = get("Cached").unwrap_or(0);
    let available = get("MemAvailable").unwrap_or(free + buffers + cached);
    json!({
        "total-bytes": total,
        "available-bytes": available,
        "used-bytes": total.saturating_sub(available),
        "free-bytes": free,
        "buffers-bytes": buffers,
        "cached-bytes": cached,
        "swap-total-bytes": get("SwapTotal").unwrap_or(0),
        "swap-free-bytes": get("SwapFree").unwrap_or(0),
    })
}

pub fn get_meminfo() -> HandlerResult {
    Ok(meminfo_value(&parse_meminfo(&read("/proc/meminfo")?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpustats_from_proc_stat() {
        let text = "cpu  100 2 30 4000 5 0 6 0 0 0\n\
                    cpu0 50 1 15 2000 3 0 3 0 0 0\n\
                    cpu1 50 1 15 2000 2 0 3 0 0 0\n\
                    intr 12345 0 0\n\
                    ctxt 99\n";
        let v = parse_cpustats(text, 100);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            json!({"type": "linux", "cpu": 0, "user": 500, "nice": 10, "system": 150,
                   "idle": 20000, "iowait": 30, "irq": 0, "softirq": 30, "steal": 0,
                   "guest": 0, "guestnice": 0})
        );
        assert_eq!(v[1]["cpu"], 1);
        // Old kernels with only four fields.
        let v = parse_cpustats("cpu3 1 2 3 4\n", 100);
        assert_eq!(
            v[0],
            json!({"type": "linux", "cpu": 3, "user": 10, "nice": 20, "system": 30, "idle": 40})
        );
    }

    #[test]
    fn diskstats_formats() {
        let text = "\
 254       0 vda 9170 3219 587830 3312 1630 1451 128584 1409 0 4276 4722 0 0 0 0 380 0
 254       1 vda1 9065 3219 582582 3283 1630 1451 128584 1409 0 4248 4692 0 0 0 0\n   8 1 sda1 10 20 30 40\n   7 0 loop0 1 2 3\n";
        let v = parse_diskstats(text);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["name"], "vda");
        assert_eq!(v[0]["major"], 254);
        assert_eq!(v[0]["stats"]["read-ios"], 9170);
        assert_eq!(v[0]["stats"]["read-sectors"], 587830);
        assert_eq!(v[0]["stats"]["weight-ticks"], 4722);
        assert_eq!(v[0]["stats"]["discard-ticks"], 0);
        assert_eq!(v[0]["stats"]["flush-ios"], 380);
        assert_eq!(v[0]["stats"]["flush-ticks"], 0);
        assert!(v[1]["stats"].get("flush-ios").is_none());
        assert_eq!(v[1]["stats"]["discard-ios"], 0);
        assert_eq!(
            v[2]["stats"],
            json!({"read-ios": 10, "read-sectors": 20, "write-ios": 30, "write-sectors": 40})
        );
    }

    #[test]
    fn block_size() {
        assert_eq!(parse_block_size("8000000\n"), Some(128 << 20));
        assert_eq!(parse_block_size("zz"), None);
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     600 kB\n\
                    Buffers:           50 kB\nCached:           300 kB\nSwapTotal:        200 kB\n\
                    SwapFree:         150 kB\nHugePages_Total:       0\n";
        let v = meminfo_value(&parse_meminfo(text));
        assert_eq!(
            v,
            json!({"total-bytes": 1024000, "available-bytes": 614400, "used-bytes": 409600,
                   "free-bytes": 102400, "buffers-bytes": 51200, "cached-bytes": 307200,
                   "swap-total-bytes": 204800, "swap-free-bytes": 153600})
        );
        let old = meminfo_value(&parse_meminfo(
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 300 kB\n",
        ));
        assert_eq!(old["available-bytes"], 450 * 1024);
    }

    #[test]
    fn live_readers() {
        assert!(!get_cpustats().unwrap().as_array().unwrap().is_empty());
        assert!(get_diskstats().unwrap().is_array());
        assert!(get_meminfo().unwrap()["total-bytes"].as_u64().unwrap() > 0);
    }
}
