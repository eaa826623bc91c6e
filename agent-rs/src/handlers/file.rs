//! guest-file-open / -read / -write / -seek / -flush / -close.

use crate::args::{FileOpenArgs, FileReadArgs, FileSeekArgs, FileWriteArgs, Whence};
use crate::error::{strerror, AgentError, HandlerResult};
use crate::util::base64;
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

/// Default and maximum guest-file-read counts (qemu-ga: 4 KiB, 48 MiB).
pub const READ_DEFAULT: i64 = 4 << 10;
pub const READ_MAX: i64 = 48 << 20;

pub struct FileTable {
    files: Vec<(i64, File)>,
    next: i64,
}

impl Default for FileTable {
    fn default() -> Self {
        FileTable {
            files: Vec::new(),
            next: 1000,
        }
    }
}

/// fopen(3) mode → OpenOptions. `b` is accepted and ignored.
pub fn open_options(mode: &str) -> Option<OpenOptions> {
    let m: String = mode.chars().filter(|&c| c != 'b').collect();
    let mut o = OpenOptions::new();
    match m.as_str() {
        "r" => o.read(true),
        "r+" => o.read(true).write(true),
        "w" => o.write(true).create(true).truncate(true),
        "w+" => o.read(true).write(true).create(true).truncate(true),
        "a" => o.append(true).create(true),
        "a+" => o.read(true).append(true).create(true),
        _ => return None,
    };
    o.mode(0o666).custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY);
    Some(o)
}

fn count_error(count: i64) -> AgentError {
    AgentError::generic(format!("value '{count}' is invalid for argument count"))
}

impl FileTable {
    fn get(&mut self, handle: i64) -> Result<&mut File, AgentError> {
        self.files
            .iter_mut()
            .find(|(h, _)| *h == handle)
            .map(|(_, f)| f)
            .ok_or_else(|| AgentError::generic(format!("handle '{handle}' has not been found")))
    }

    pub fn open(&mut self, a: FileOpenArgs) -> HandlerResult {
        let mode = a.mode.as_deref().unwrap_or("r");
        let opts = open_options(mode)
            .ok_or_else(|| AgentError::generic(format!("invalid file open mode '{mode}'")))?;
        let f = opts.open(&a.path).map_err(|e| {
            AgentError::generic(format!(
                "failed to open file '{}' (mode: '{mode}'): {}",
                a.path,
                strerror(&e)
            ))
        })?;
        let h = self.next;
        self.next += 1;
        self.files.push((h, f));
        Ok(json!(h))
    }

    pub fn close(&mut self, handle: i64) -> HandlerResult {
        self.get(handle)?;
        self.files.retain(|(h, _)| *h != handle);
        Ok(json!({}))
    }

    pub fn read(&mut self, a: FileReadArgs) -> HandlerResult {
        let count = a.count.unwrap_or(READ_DEFAULT);
        if !(0..=READ_MAX).contains(&count) {
            return Err(count_error(count));
        }
        let f = self.get(a.handle)?;
        let mut buf = vec![0u8; count as usize];
        let mut got = 0;
        let mut eof = false;
        // fread semantics: fill the buffer unless EOF comes first.
        while got < buf.len() {
            match f.read(&mut buf[got..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(AgentError::io("failed to read file", &e)),
            }
        }
        buf.truncate(got);
        Ok(json!({ "count": got, "buf-b64": base64::encode(&buf), "eof": eof }))
    }

    pub fn write(&mut self, a: FileWriteArgs) -> HandlerResult {
        let data = base64::decode(&a.buf_b64)
            .ok_or_else(|| AgentError::generic("Parameter 'buf-b64' is not valid base64"))?;
        let count = a.count.unwrap_or(data.len() as i64);
        if count < 0 || count as usize > data.len() {
            return Err(count_error(count));
        }
        let f = self.get(a.handle)?;
        f.write_all(&data[..count as usize])
            .map_err(|e| AgentError::io("failed to write to file", &e))?;
        Ok(json!({ "count": count, "eof": false }))
    }

    pub fn seek(&mut self, a: FileSeekArgs) -> HandlerResult {
        let whence = match &a.whence {
            Whence::Value(0) => 0,
            Whence::Value(1) => 1,
            Whence::Value(2) => 2,
            Whence::Name(n) if n == "set" => 0,
            Whence::Name(n) if n == "cur" => 1,
            Whence::Name(n) if n == "end" => 2,
            _ => return Err(AgentError::invalid_param("whence")),
        };
        let pos = match whence {
            0 => SeekFrom::Start(
                u64::try_from(a.offset).map_err(|_| AgentError::invalid_param("offset"))?,
            ),
            1 => SeekFrom::Current(a.offset),
            _ => SeekFrom::End(a.offset),
        };
        let f = self.get(a.handle)?;
        let p = f
            .seek(pos)
            .map_err(|e| AgentError::io("failed to seek file", &e))?;
        Ok(json!({ "position": p, "eof": false }))
    }

    pub fn flush(&mut self, handle: i64) -> HandlerResult {
        // No user-space buffering: like fflush, make the data visible to
        // other readers (it already is).
        let f = self.get(handle)?;
        f.flush()
            .map_err(|e| AgentError::io("failed to flush file", &e))?;
        Ok(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> String {
        let d = std::env::temp_dir().join(format!("nfa-file-{}-{name}", std::process::id()));
        d.to_string_lossy().into_owned()
    }

    #[test]
    fn write_seek_read_close() {
        let path = tmp("rw");
        let mut t = FileTable::default();
        let h = t
            .open(FileOpenArgs {
                path: path.clone(),
                mode: Some("w+".into()),
            })
            .unwrap()
            .as_i64()
            .unwrap();
        let w = t
            .write(FileWriteArgs {
                handle: h,
                buf_b64: base64::encode(b"hello world"),
                count: Some(5),
            })
            .unwrap();
        assert_eq!(w, json!({"count": 5, "eof": false}));
        let s = t
            .seek(FileSeekArgs {
                handle: h,
                offset: 0,
                whence: Whence::Name("set".into()),
            })
            .unwrap();
        assert_eq!(s["position"], 0);
        let r = t
            .read(FileReadArgs {
                handle: h,
                count: Some(100),
            })
            .unwrap();
        assert_eq!(
            r,
            json!({"count": 5, "buf-b64": base64::encode(b"hello"), "eof": true})
        );
        let s = t
            .seek(FileSeekArgs {
                handle: h,
                offset: -2,
                whence: Whence::Value(2),
            })
            .unwrap();
        assert_eq!(s["position"], 3);
        let r = t
            .read(FileReadArgs {
                handle: h,
                count: Some(1),
            })
            .unwrap();
        assert_eq!(r["eof"], false);
        t.flush(h).unwrap();
        t.close(h).unwrap();
        assert_eq!(
            t.close(h).unwrap_err().desc,
            format!("handle '{h}' has not been found")
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn argument_errors() {
        let mut t = FileTable::default();
        let e = t
            .open(FileOpenArgs {
                path: "/nonexistent/x".into(),
                mode: None,
            })
            .unwrap_err();
        assert_eq!(
            e.desc,
            "failed to open file '/nonexistent/x' (mode: 'r'): No such file or directory"
        );
        assert!(t
            .open(FileOpenArgs {
                path: "/dev/null".into(),
                mode: Some("q".into())
            })
            .is_err());
        let h = t
            .open(FileOpenArgs {
                path: "/dev/null".into(),
                mode: Some("rb".into()),
            })
            .unwrap()
            .as_i64()
            .unwrap();
        assert!(t
            .read(FileReadArgs {
                handle: h,
                count: Some(-1)
            })
            .is_err());
        assert!(t
            .read(FileReadArgs {
                handle: h,
                count: Some(READ_MAX + 1)
            })
            .is_err());
        let r = t
            .read(FileReadArgs {
                handle: h,
                count: None,
            })
            .unwrap();
        assert_eq!(r, json!({"count": 0, "buf-b64": "", "eof": true}));
        let e = t
            .write(FileWriteArgs {
                handle: h,
                buf_b64: "aGk=".into(),
                count: Some(3),
            })
            .unwrap_err();
        assert_eq!(e.desc, "value '3' is invalid for argument count");
    }

    #[test]
    fn modes() {
        for m in [
            "r", "rb", "r+", "rb+", "r+b", "w", "wb", "w+", "a", "ab", "a+", "a+b",
        ] {
            assert!(open_options(m).is_some(), "{m}");
        }
        for m in ["", "x", "rw", "w++"] {
            assert!(open_options(m).is_none(), "{m}");
        }
    }
}
