//! Finding and opening the virtio-serial port, and a channel over it that
//! wakes up periodically (to reap exec children) and on signals.

use std::fs::{self, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

pub const PORT_NAME: &str = "org.qemu.guest_agent.0";
pub const SYSFS_PORTS: &str = "/sys/class/virtio-ports";

/// The virtio-ports entry (e.g. `vport1p1`) whose `name` is `wanted`.
pub fn find_port(sys: &Path, wanted: &str) -> Option<String> {
    let mut names: Vec<String> = fs::read_dir(sys)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().find(|dir| {
        fs::read_to_string(sys.join(dir).join("name"))
            .map(|n| n.trim() == wanted)
            .unwrap_or(false)
    })
}

/// /dev/<port>, created from sysfs `dev` (major:minor) when there is no
/// devtmpfs/udev node yet.
pub fn discover() -> Option<PathBuf> {
    let dir = find_port(Path::new(SYSFS_PORTS), PORT_NAME)?;
    let dev = Path::new("/dev").join(&dir);
    if !dev.exists() {
        let nums = fs::read_to_string(Path::new(SYSFS_PORTS).join(&dir).join("dev")).ok()?;
        let (maj, min) = nums.trim().split_once(':')?;
        let (maj, min): (u32, u32) = (maj.parse().ok()?, min.parse().ok()?);
        let c = std::ffi::CString::new(dev.to_string_lossy().as_bytes()).ok()?;
        // SAFETY: mknod with a valid NUL-terminated path.
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(maj, min)) };
    }
    Some(dev)
}

/// A connected channel: a character device (virtio-serial, tty) or, for
/// tests on the host, a unix socket path to connect to.
pub struct Channel {
    fd: OwnedFd,
    is_socket: bool,
    wake: Option<RawFd>,
    tick_ms: i32,
}

fn set_raw(fd: RawFd) {
    // SAFETY: termios calls on a descriptor we own; failures are ignored.
    unsafe {
        if libc::isatty(fd) == 1 {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) == 0 {
                libc::cfmakeraw(&mut t);
                libc::tcsetattr(fd, libc::TCSANOW, &t);
            }
        }
    }
}

impl Channel {
    pub fn open(path: &Path, wake: Option<RawFd>) -> io::Result<Channel> {
        let is_socket = fs::metadata(path)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        let fd: OwnedFd = if is_socket {
            UnixStream::connect(path)?.into()
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                .open(path)?
                .into()
        };
        set_raw(fd.as_raw_fd());
        Ok(Channel {
            fd,
            is_socket,
            wake,
            tick_ms: 1000,
        })
    }
}

impl Read for Channel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut fds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd entries (fd -1 is ignored by poll).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, self.tick_ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if fds[1].revents != 0 {
            if let Some(w) = self.wake {
                crate::signals::drain(w);
            }
            return Err(ErrorKind::Interrupted.into());
        }
        if n == 0 {
            return Err(ErrorKind::WouldBlock.into());
        }
        let re = fds[0].revents;
        if re & libc::POLLIN == 0 && re & (libc::POLLHUP | libc::POLLERR) != 0 {
            // virtio-serial: host side not connected.
            return self.eof();
        }
        // SAFETY: reading into the caller's buffer.
        let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match r {
            0 => self.eof(),
            r if r > 0 => Ok(r as usize),
            _ => {
                let e = io::Error::last_os_error();
                // A pty whose other side is closed reports EIO.
                if e.raw_os_error() == Some(libc::EIO) {
                    self.eof()
                } else {
                    Err(e)
                }
            }
        }
    }
}

impl Channel {
    fn eof(&self) -> io::Result<usize> {
        if self.is_socket {
            // A closed socket stays closed: make the caller reconnect.
            Err(ErrorKind::ConnectionAborted.into())
        } else {
            Ok(0)
        }
    }
}

impl Write for Channel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: writing from the caller's buffer.
            let r = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_port_by_name() {
        let d = std::env::temp_dir().join(format!("nfa-ports-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        for (dir, name) in [
            ("vport0p1", "org.qemu.console"),
            ("vport1p1", "org.qemu.guest_agent.0\n"),
        ] {
            fs::create_dir_all(d.join(dir)).unwrap();
            fs::write(d.join(dir).join("name"), name).unwrap();
        }
        fs::create_dir_all(d.join("vport2p1")).unwrap(); // no name file
        assert_eq!(find_port(&d, PORT_NAME).as_deref(), Some("vport1p1"));
        assert_eq!(find_port(&d, "other"), None);
        assert_eq!(find_port(&d.join("missing"), PORT_NAME), None);
        fs::remove_dir_all(&d).unwrap();
    }
}
