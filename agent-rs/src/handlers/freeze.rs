//! guest-fsfreeze-status / -freeze / -freeze-list / -thaw, with FIFREEZE
//! and FITHAW on the local block filesystems (see mounts.rs).

use super::mounts::{local_mounts, Mount};
use crate::error::{strerror, AgentError, HandlerResult};
use serde_json::json;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

// _IOWR('X', 119, int) and _IOWR('X', 120, int).
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

/// Process-wide "we froze something" flag, read by the panic hook and the
/// exit path so that a dying agent never leaves the guest frozen.
static FROZEN: AtomicBool = AtomicBool::new(false);

pub fn globally_frozen() -> bool {
    FROZEN.load(Ordering::SeqCst)
}

pub struct FreezeState {
    frozen: bool,
}

/// Survives an agent restart (tmpfs: not a reboot), like qemu-ga's `qga.state.isfrozen`: a restarted
/// agent must know the guest is frozen, keep write commands disabled and thaw on request.
const MARKER: &str = "/run/neuroflow-agent.frozen";

fn mark(frozen: bool) {
    if frozen {
        let _ = std::fs::write(MARKER, b"frozen\n");
    } else {
        let _ = std::fs::remove_file(MARKER);
    }
}

impl Default for FreezeState {
    fn default() -> Self {
        let frozen = std::path::Path::new(MARKER).exists();
        FROZEN.store(frozen, Ordering::SeqCst);
        Self { frozen }
    }
}

fn ioctl_on(path: &str, request: libc::c_ulong) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: FIFREEZE/FITHAW take an unused int argument.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), request as _, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Mountpoints to freeze, last mounted first (so that a filesystem is
/// frozen before the one it is mounted on). `only`: qemu-ga's
/// `mountpoints` list; unknown entries are ignored.
pub fn plan(mounts: &[Mount], only: Option<&[String]>) -> Vec<String> {
    mounts
        .iter()
        .rev()
        .filter(|m| only.is_none_or(|l| l.contains(&m.mountpoint)))
        .map(|m| m.mountpoint.clone())
        .collect()
}

/// Freezes `points` in order. EOPNOTSUPP (filesystem cannot freeze) and
/// EBUSY (already frozen through another mount) are not counted and not
/// errors; anything else stops with an error.
pub fn freeze_points(
    points: &[String],
    mut freeze_one: impl FnMut(&str) -> io::Result<()>,
) -> Result<usize, AgentError> {
    let mut n = 0;
    for p in points {
        match freeze_one(p) {
            Ok(()) => n += 1,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EBUSY)) => {}
            Err(e) => {
                return Err(AgentError::generic(format!(
                    "failed to freeze {p}: {}",
                    strerror(&e)
                )))
            }
        }
    }
    Ok(n)
}

/// FITHAW until it fails on every local filesystem (nested freezes need as
/// many thaws); returns how many were thawed at least once.
pub fn thaw_all() -> usize {
    let Ok(mounts) = local_mounts() else {
        return 0;
    };
    let mut n = 0;
    for m in &mounts {
        let mut thawed = false;
        for _ in 0..64 {
            if ioctl_on(&m.mountpoint, FITHAW).is_err() {
                break;
            }
            thawed = true;
        }
        n += usize::from(thawed);
    }
    FROZEN.store(false, Ordering::SeqCst);
    mark(false);
    n
}

impl FreezeState {
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    pub fn status(&self) -> &'static str {
        if self.frozen {
            "frozen"
        } else {
            "thawed"
        }
    }

    pub fn freeze(&mut self, only: Option<&[String]>) -> HandlerResult {
        let mounts = local_mounts()
            .map_err(|e| AgentError::io("failed to open mtab file: '/proc/self/mountinfo'", &e))?;
        let points = plan(&mounts, only);
        // Mark frozen first: a signal arriving mid-way must thaw.
        self.frozen = true;
        FROZEN.store(true, Ordering::SeqCst);
        // Marked before freezing: once / is frozen, no file can be written any more.
        mark(true);
        match freeze_points(&points, |p| ioctl_on(p, FIFREEZE)) {
            Ok(0) => {
                self.frozen = false;
                FROZEN.store(false, Ordering::SeqCst);
                mark(false);
                Ok(json!(0))
            }
            Ok(n) => Ok(json!(n)),
            Err(e) => {
                self.thaw();
                Err(e)
            }
        }
    }

    pub fn thaw(&mut self) -> usize {
        let n = thaw_all();
        self.frozen = false;
        mark(false);
        n
    }

    #[cfg(test)]
    pub fn force_frozen_for_test(&mut self, frozen: bool) {
        self.frozen = frozen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str) -> Mount {
        Mount {
            mountpoint: p.into(),
            fstype: "ext4".into(),
            source: "/dev/x".into(),
            major: 8,
            minor: 1,
        }
    }

    #[test]
    fn plan_is_reverse_mount_order_and_filters() {
        let mounts = vec![m("/"), m("/boot"), m("/data")];
        assert_eq!(plan(&mounts, None), vec!["/data", "/boot", "/"]);
        let only = vec!["/".to_string(), "/nonexistent".to_string()];
        assert_eq!(plan(&mounts, Some(&only)), vec!["/"]);
    }

    #[test]
    fn freeze_counts_and_ignores_unsupported() {
        let pts: Vec<String> = ["/a", "/b", "/c"].iter().map(|s| s.to_string()).collect();
        let n = freeze_points(&pts, |p| match p {
            "/b" => Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
            "/c" => Err(io::Error::from_raw_os_error(libc::EBUSY)),
            _ => Ok(()),
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn freeze_error_stops() {
        let pts: Vec<String> = ["/a", "/b", "/c"].iter().map(|s| s.to_string()).collect();
        let mut seen = Vec::new();
        let e = freeze_points(&pts, |p| {
            seen.push(p.to_string());
            if p == "/b" {
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(e.desc, "failed to freeze /b: Input/output error");
        assert_eq!(seen, vec!["/a", "/b"]);
    }

    #[test]
    fn thaw_when_nothing_frozen_is_zero() {
        let mut s = FreezeState::default();
        assert_eq!(s.status(), "thawed");
        assert_eq!(s.thaw(), 0);
        assert!(!s.is_frozen());
    }
}
