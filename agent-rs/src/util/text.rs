//! Parsing helpers shared by the /proc and /sys readers.

use std::fs;
use std::io;
use std::path::Path;

/// Reads a whole (small) text file such as a /proc or /sys entry.
pub fn read_text(path: impl AsRef<Path>) -> io::Result<String> {
    fs::read_to_string(path)
}

/// Decodes the octal escapes (`\040` for space, `\\`) used in
/// /proc/self/mountinfo fields.
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if i + 3 < b.len()
                && (b'0'..=b'3').contains(&b[i + 1])
                && (b'0'..=b'7').contains(&b[i + 2])
                && (b'0'..=b'7').contains(&b[i + 3])
            {
                out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `KEY=value` lines of an os-release(5) file, undoing shell quoting.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        out.push((key.trim().to_string(), shell_unquote(value.trim())));
    }
    out
}

fn shell_unquote(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(&n) = chars.peek() {
                                if matches!(n, '"' | '\\' | '$' | '`') {
                                    out.push(n);
                                    chars.next();
                                    continue;
                                }
                            }
                            out.push('\\');
                        }
                        _ => out.push(c),
                    }
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_unescape() {
        assert_eq!(unescape_octal("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape_octal("a\\\\b"), "a\\b");
        assert_eq!(unescape_octal("tab\\011x"), "tab\tx");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn os_release() {
        let text = "# comment\nNAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID='12'\n\
                    PRETTY_NAME=\"Debian \\\"bookworm\\\"\"\nBAD LINE\nX=a\\ b\n";
        let kv = parse_os_release(text);
        assert_eq!(kv[0], ("NAME".into(), "Debian GNU/Linux".into()));
        assert_eq!(kv[1], ("ID".into(), "debian".into()));
        assert_eq!(kv[2], ("VERSION_ID".into(), "12".into()));
        assert_eq!(kv[3], ("PRETTY_NAME".into(), "Debian \"bookworm\"".into()));
        assert_eq!(kv[4], ("X".into(), "a b".into()));
        assert_eq!(kv.len(), 5);
    }
}
