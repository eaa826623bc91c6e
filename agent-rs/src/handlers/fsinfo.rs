//! guest-get-fsinfo: local block filesystems with their usage.
//! `disk` is always empty (we do not map PCI/SCSI addresses), which the
//! schema allows ("may be empty if the disk type is not supported").

use super::mounts::{local_mounts, Mount};
use crate::error::{AgentError, HandlerResult};
use serde_json::{json, Map, Value};
use std::ffi::CString;

/// statvfs figures for one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
}

impl Usage {
    /// qemu-ga's arithmetic: used = blocks - bfree; total (unprivileged) =
    /// used + bavail; total-bytes-privileged = blocks.
    pub fn bytes(&self) -> (u64, u64, u64) {
        let used = self.blocks.saturating_sub(self.bfree);
        let total = used + self.bavail;
        (
            used * self.frsize,
            total * self.frsize,
            self.blocks * self.frsize,
        )
    }
}

pub fn statvfs(path: &str) -> Option<Usage> {
    let c = CString::new(path).ok()?;
    // SAFETY: statvfs is plain data; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(Usage {
        frsize: st.f_frsize,
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
    })
}

/// The kernel's name for the device (`vda1`, `dm-0`): the basename of
/// /sys/dev/block/M:m, falling back to the mount source's basename.
fn device_name(m: &Mount) -> String {
    let sys = format!("/sys/dev/block/{}:{}", m.major, m.minor);
    if let Ok(real) = std::fs::canonicalize(&sys) {
        if let Some(name) = real.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    m.source.rsplit('/').next().unwrap_or(&m.source).to_string()
}

pub fn fs_entry(name: String, m: &Mount, usage: Option<Usage>) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), name.into());
    o.insert("mountpoint".into(), m.mountpoint.clone().into());
    o.insert("type".into(), m.fstype.clone().into());
    if let Some(u) = usage {
        let (used, total, privileged) = u.bytes();
        o.insert("used-bytes".into(), json!(used));
        o.insert("total-bytes".into(), json!(total));
        o.insert("total-bytes-privileged".into(), json!(privileged));
    }
    o.insert("disk".into(), json!([]));
    Value::Object(o)
}

pub fn get_fsinfo() -> HandlerResult {
    let mounts = local_mounts()
        .map_err(|e| AgentError::io("failed to open mtab file: '/proc/self/mountinfo'", &e))?;
    // qemu-ga prepends while walking, so its list is in reverse mount order.
    let list: Vec<Value> = mounts
        .iter()
        .rev()
        .map(|m| fs_entry(device_name(m), m, statvfs(&m.mountpoint)))
        .collect();
    Ok(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_arithmetic() {
        let u = Usage {
            frsize: 4096,
            blocks: 1000,
            bfree: 300,
            bavail: 250,
        };
        assert_eq!(u.bytes(), (700 * 4096, 950 * 4096, 1000 * 4096));
    }

    #[test]
    fn entry_shape() {
        let m = Mount {
            mountpoint: "/".into(),
            fstype: "ext4".into(),
            source: "/dev/vda1".into(),
            major: 254,
            minor: 1,
        };
        let u = Usage {
            frsize: 1024,
            blocks: 10,
            bfree: 4,
            bavail: 3,
        };
        assert_eq!(
            fs_entry("vda1".into(), &m, Some(u)),
            json!({"name": "vda1", "mountpoint": "/", "type": "ext4", "used-bytes": 6144,
                   "total-bytes": 9216, "total-bytes-privileged": 10240, "disk": []})
        );
        let v = fs_entry("vda1".into(), &m, None);
        assert!(v.get("used-bytes").is_none());
        assert_eq!(v["disk"], json!([]));
    }

    #[test]
    fn live_fsinfo_is_a_list() {
        assert!(get_fsinfo().unwrap().is_array());
        assert!(statvfs("/").unwrap().blocks > 0);
    }
}
