//! Splits the incoming byte stream into JSON texts, the way QEMU's JSON
//! streamer does for qemu-ga: requests are objects sent back to back, with
//! optional whitespace between them, and a 0xFF byte (never valid in UTF-8
//! JSON) discards whatever partial input has been buffered.

/// Largest request we buffer (QEMU's streamer uses 64 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;
/// Deepest nesting we accept (QEMU: 1024).
pub const MAX_DEPTH: usize = 1024;
/// A stray token is reported with at most this many bytes of it.
const MAX_GARBAGE_ECHO: usize = 32;

/// What the framer found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete top-level JSON object or array (not yet validated).
    Message(Vec<u8>),
    /// Bytes that cannot start a JSON object, e.g. `garbage` or `}`.
    Stray(String),
    /// A value over [`MAX_MESSAGE`] bytes or [`MAX_DEPTH`] levels deep.
    TooLarge,
}

#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escape: bool,
    /// Collecting a stray run of bytes outside any value.
    stray: Option<Vec<u8>>,
    /// Skipping the rest of an over-long value (still tracking its depth).
    overflow: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl Framer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Discards any partial input (what a 0xFF byte does).
    pub fn reset(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
        self.depth = 0;
        self.in_string = false;
        self.escape = false;
        self.stray = None;
        self.overflow = false;
    }

    /// True while nothing is buffered.
    pub fn is_idle(&self) -> bool {
        self.depth == 0 && self.stray.is_none()
    }

    /// Feeds bytes; returns the frames completed by them, in order.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        for &b in input {
            if b == 0xFF {
                self.reset();
                continue;
            }
            if self.depth == 0 {
                self.top_level(b, &mut out);
                continue;
            }
            if !self.overflow {
                if self.buf.len() >= MAX_MESSAGE {
                    self.overflow = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.push(b);
                }
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH && !self.overflow {
                        self.overflow = true;
                        self.buf = Vec::new();
                    }
                }
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        if self.overflow {
                            out.push(Frame::TooLarge);
                        } else {
                            out.push(Frame::Message(std::mem::take(&mut self.buf)));
                        }
                        self.reset();
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn top_level(&mut self, b: u8, out: &mut Vec<Frame>) {
        let starts_value = b == b'{' || b == b'[';
        if is_ws(b) || starts_value {
            if let Some(stray) = self.stray.take() {
                out.push(Frame::Stray(String::from_utf8_lossy(&stray).into_owned()));
            }
            if starts_value {
                self.buf.clear();
                self.buf.push(b);
                self.depth = 1;
            }
            return;
        }
        let stray = self.stray.get_or_insert_with(Vec::new);
        if stray.len() < MAX_GARBAGE_ECHO {
            stray.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(frames: Vec<Frame>) -> Vec<String> {
        frames
            .into_iter()
            .map(|f| match f {
                Frame::Message(m) => String::from_utf8(m).unwrap(),
                Frame::Stray(s) => format!("STRAY:{s}"),
                Frame::TooLarge => "TOOLARGE".into(),
            })
            .collect()
    }

    #[test]
    fn back_to_back_objects() {
        let mut f = Framer::new();
        let out = f.feed(br#"{"execute":"a"}{"execute":"b"}  {"execute":"c"}"#);
        assert_eq!(
            msgs(out),
            vec![
                r#"{"execute":"a"}"#,
                r#"{"execute":"b"}"#,
                r#"{"execute":"c"}"#
            ]
        );
        assert!(f.is_idle());
    }

    #[test]
    fn split_across_reads_and_braces_in_strings() {
        let mut f = Framer::new();
        assert!(f
            .feed(br#"{"execute":"x","arguments":{"p":"}{\"]"#)
            .is_empty());
        assert!(!f.is_idle());
        let out = f.feed(b"\"}}\n");
        assert_eq!(
            msgs(out),
            vec![r#"{"execute":"x","arguments":{"p":"}{\"]"}}"#]
        );
    }

    #[test]
    fn ff_resets_partial_input() {
        let mut f = Framer::new();
        assert!(f.feed(br#"{"execute":"guest-ping", "argu"#).is_empty());
        let out = f.feed(b"\xff{\"execute\":\"guest-sync\"}");
        assert_eq!(msgs(out), vec![r#"{"execute":"guest-sync"}"#]);
        // 0xFF inside a string resets too (it is never valid UTF-8).
        let out = f.feed(b"{\"a\":\"x\xff{}");
        assert_eq!(msgs(out), vec!["{}"]);
    }

    #[test]
    fn stray_bytes_reported_once_per_token() {
        let mut f = Framer::new();
        let out = f.feed(b"garbage {\"execute\":\"guest-ping\"}");
        assert_eq!(
            msgs(out),
            vec!["STRAY:garbage", r#"{"execute":"guest-ping"}"#]
        );
        // An unterminated stray token waits for a delimiter; 0xFF drops it.
        assert!(f.feed(b"zzz").is_empty());
        assert!(f.feed(b"\xff").is_empty());
        assert!(f.is_idle());
        let out = f.feed(b"}\n");
        assert_eq!(msgs(out), vec!["STRAY:}"]);
    }

    #[test]
    fn too_deep_is_skipped_then_reported() {
        let mut f = Framer::new();
        let deep = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        let out = f.feed(deep.as_bytes());
        assert_eq!(msgs(out), vec!["TOOLARGE"]);
        let out = f.feed(b"{}");
        assert_eq!(msgs(out), vec!["{}"]);
    }

    #[test]
    fn escaped_backslash_before_quote() {
        let mut f = Framer::new();
        let out = f.feed(br#"{"a":"\\"}"#);
        assert_eq!(msgs(out), vec![r#"{"a":"\\"}"#]);
    }
}
