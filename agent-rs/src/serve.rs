//! The request loop over any `Read + Write` channel: one command at a
//! time, replies written in order.

use crate::agent::Agent;
use crate::handlers::shutdown::PowerMode;
use std::io::{self, ErrorKind, Read, Write};
use std::time::Duration;

/// What to do when a read returns 0 bytes.
#[derive(Debug, Clone, Copy)]
pub enum EofPolicy {
    /// Return [`Outcome::Eof`] (pipes, tests).
    Exit,
    /// virtio-serial reads 0 while the host side is not connected: drop
    /// partial input, wait, and read again.
    Retry(Duration),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Eof,
    Stopped,
    /// guest-shutdown was accepted and its reply written.
    Power(PowerMode),
}

/// Serves requests until EOF (per `eof`), `stop()` or a shutdown request.
/// Reads that fail with `Interrupted`/`WouldBlock`/`TimedOut` are treated
/// as ticks: the loop reaps exec children and checks `stop`.
pub fn serve<C: Read + Write>(
    agent: &mut Agent,
    chan: &mut C,
    eof: EofPolicy,
    stop: &dyn Fn() -> bool,
) -> io::Result<Outcome> {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        agent.reap();
        if stop() {
            return Ok(Outcome::Stopped);
        }
        let n = match chan.read(&mut buf) {
            Ok(0) => match eof {
                EofPolicy::Exit => return Ok(Outcome::Eof),
                EofPolicy::Retry(d) => {
                    agent.reset_input();
                    std::thread::sleep(d);
                    continue;
                }
            },
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let out = agent.feed(&buf[..n]);
        if !out.is_empty() {
            if let Err(e) = chan.write_all(&out).and_then(|_| chan.flush()) {
                match eof {
                    EofPolicy::Exit => return Err(e),
                    EofPolicy::Retry(_) => {
                        // The host went away mid-reply; the next client
                        // resynchronises with guest-sync-delimited.
                        if agent.verbose {
                            eprintln!("neuroflow-agent: write failed: {e}");
                        }
                        agent.reset_input();
                    }
                }
            }
        }
        if let Some(mode) = agent.state.pending_power.take() {
            return Ok(Outcome::Power(mode));
        }
    }
}
