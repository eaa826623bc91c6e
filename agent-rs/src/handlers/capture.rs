//! Output capture for guest-exec: which streams to capture, and draining a
//! pipe under a size limit.

use crate::args::CaptureOutput;
use crate::error::AgentError;
use std::io::Read;

pub type Captured = (Vec<u8>, bool);

/// Reads `r` to EOF keeping at most `limit` bytes; the flag says whether
/// anything was dropped.
pub fn capture<R: Read>(mut r: R, limit: usize) -> Captured {
    let mut data = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 4096];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let room = limit.saturating_sub(data.len());
        data.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
    (data, truncated)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    None,
    Stdout,
    Stderr,
    Separated,
    Merged,
}

pub fn capture_mode(c: Option<&CaptureOutput>) -> Result<Mode, AgentError> {
    Ok(match c {
        None | Some(CaptureOutput::Flag(false)) => Mode::None,
        Some(CaptureOutput::Flag(true)) => Mode::Separated,
        Some(CaptureOutput::Mode(m)) => match m.as_str() {
            "none" => Mode::None,
            "stdout" => Mode::Stdout,
            "stderr" => Mode::Stderr,
            "separated" => Mode::Separated,
            "merged" => Mode::Merged,
            _ => {
                return Err(AgentError::invalid_value(
                    "capture-output",
                    "\"none\", \"stdout\", \"stderr\", \"separated\" or \"merged\"",
                ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_limit() {
        let data = vec![b'x'; 10_000];
        let (got, trunc) = capture(&data[..], 4097);
        assert_eq!(got.len(), 4097);
        assert!(trunc);
        let (got, trunc) = capture(&data[..], 10_000);
        assert_eq!(got.len(), 10_000);
        assert!(!trunc);
        let (got, trunc) = capture(&b""[..], 0);
        assert!(got.is_empty() && !trunc);
    }

    #[test]
    fn modes() {
        assert_eq!(capture_mode(None).unwrap(), Mode::None);
        assert_eq!(
            capture_mode(Some(&CaptureOutput::Flag(true))).unwrap(),
            Mode::Separated
        );
        assert_eq!(
            capture_mode(Some(&CaptureOutput::Mode("merged".into()))).unwrap(),
            Mode::Merged
        );
        assert!(capture_mode(Some(&CaptureOutput::Mode("bogus".into()))).is_err());
    }
}
