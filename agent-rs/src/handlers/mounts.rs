//! The mount table, from /proc/self/mountinfo, reduced to the local block
//! filesystems that qemu-ga reports and freezes.

use crate::util::text::{read_text, unescape_octal};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mountpoint: String,
    pub fstype: String,
    pub source: String,
    pub major: u32,
    pub minor: u32,
}

/// Filesystem types never reported or frozen, whatever device they claim.
const VIRTUAL_FS: &[&str] = &[
    "rootfs",
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "ramfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "autofs",
    "binfmt_misc",
    "efivarfs",
    "nsfs",
    "overlay",
    "selinuxfs",
    "rpc_pipefs",
    "nfsd",
    "fuse",
    "fuse.lxcfs",
    "9p",
    "virtiofs",
];

/// Network filesystems (qemu-ga skips them by name as well).
const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "smb3",
    "ceph",
    "glusterfs",
    "fuse.glusterfs",
    "afs",
];

pub fn is_virtual(fstype: &str) -> bool {
    VIRTUAL_FS.contains(&fstype) || NETWORK_FS.contains(&fstype) || fstype.starts_with("cgroup")
}

/// One parsed mountinfo line, before filtering.
#[derive(Debug, PartialEq, Eq)]
pub struct MountInfoLine {
    pub major: u32,
    pub minor: u32,
    pub mountpoint: String,
    pub fstype: String,
    pub source: String,
}

/// Parses a mountinfo line:
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
pub fn parse_mountinfo_line(line: &str) -> Option<MountInfoLine> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let _id = l.next()?;
    let _parent = l.next()?;
    let (major, minor) = l.next()?.split_once(':')?;
    let _root = l.next()?;
    let mountpoint = unescape_octal(l.next()?);
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let source = unescape_octal(r.next().unwrap_or(""));
    Some(MountInfoLine {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mountpoint,
        fstype,
        source,
    })
}

/// The block device numbers of `path` if it is a block device.
fn block_dev(path: &str) -> Option<(u32, u32)> {
    let md = std::fs::metadata(path).ok()?;
    if !md.file_type().is_block_device() {
        return None;
    }
    let rdev = md.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}

/// Filters parsed lines down to local block filesystems, like qemu-ga:
/// device major 0 means a virtual filesystem, except for btrfs, whose real
/// device number comes from its source device.
pub fn filter_mounts(
    lines: impl IntoIterator<Item = MountInfoLine>,
    resolve: impl Fn(&str) -> Option<(u32, u32)>,
) -> Vec<Mount> {
    let mut out = Vec::new();
    for l in lines {
        if is_virtual(&l.fstype) {
            continue;
        }
        let (major, minor) = if l.major != 0 {
            (l.major, l.minor)
        } else if l.fstype == "btrfs" {
            match resolve(&l.source) {
                Some(d) => d,
                None => continue,
            }
        } else {
            continue;
        };
        out.push(Mount {
            mountpoint: l.mountpoint,
            fstype: l.fstype,
            source: l.source,
            major,
            minor,
        });
    }
    out
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfoLine> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// Local block filesystems currently mounted, in mount order.
pub fn local_mounts() -> io::Result<Vec<Mount>> {
    let text = read_text("/proc/self/mountinfo")?;
    Ok(filter_mounts(parse_mountinfo(&text), block_dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
1 1 0:2 / / rw - rootfs rootfs rw,size=117116k
22 1 0:21 / /proc rw,relatime - proc proc rw
23 1 0:22 / /sys rw,relatime - sysfs sysfs rw
24 1 0:5 / /dev rw,relatime - devtmpfs devtmpfs rw,size=10240k
25 24 0:23 / /dev/pts rw,relatime - devpts devpts rw,gid=5,mode=620
26 1 0:24 / /tmp rw,relatime - tmpfs tmpfs rw
30 1 254:1 / /mnt/data\\040disk rw,relatime shared:1 - ext4 /dev/vda1 rw
31 1 0:35 / /srv rw,relatime - btrfs /dev/vdb rw,space_cache
32 1 0:36 / /net rw - nfs4 server:/export rw
33 1 0:37 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
34 1 254:16 /sub /bind rw - xfs /dev/vdb1 rw
";

    #[test]
    fn parses_lines() {
        let lines = parse_mountinfo(SAMPLE);
        assert_eq!(lines.len(), 11);
        assert_eq!(
            lines[6],
            MountInfoLine {
                major: 254,
                minor: 1,
                mountpoint: "/mnt/data disk".into(),
                fstype: "ext4".into(),
                source: "/dev/vda1".into(),
            }
        );
        assert!(parse_mountinfo_line("bogus").is_none());
    }

    #[test]
    fn keeps_only_local_block_filesystems() {
        let resolve = |src: &str| (src == "/dev/vdb").then_some((254, 16));
        let m = filter_mounts(parse_mountinfo(SAMPLE), resolve);
        let points: Vec<_> = m.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(points, vec!["/mnt/data disk", "/srv", "/bind"]);
        assert_eq!((m[1].major, m[1].minor), (254, 16));
        // btrfs whose device cannot be resolved is dropped.
        let m = filter_mounts(parse_mountinfo(SAMPLE), |_| None);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn virtual_types() {
        for t in [
            "proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "rootfs", "ramfs", "cgroup", "cgroup2",
        ] {
            assert!(is_virtual(t), "{t}");
        }
        for t in ["ext4", "xfs", "btrfs", "vfat"] {
            assert!(!is_virtual(t), "{t}");
        }
    }

    #[test]
    fn live_mount_table_parses() {
        assert!(local_mounts().is_ok());
    }
}
