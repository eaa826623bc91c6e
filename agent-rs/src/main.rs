//! neuroflow-agent [--device PATH] [--verbose]
//!
//! Finds the virtio-serial port named org.qemu.guest_agent.0 (or uses
//! --device: a character device, tty or unix socket path), then serves QGA
//! requests on it forever. Exits on SIGTERM/SIGINT/SIGHUP after thawing
//! any filesystem it froze.

use neuroflow_agent::device::{self, Channel};
use neuroflow_agent::handlers::{freeze, info::VERSION, shutdown};
use neuroflow_agent::serve::{serve, EofPolicy, Outcome};
use neuroflow_agent::{signals, Agent};
use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str = "usage: neuroflow-agent [--device PATH] [--verbose]\n\
  --device PATH  serve on PATH (character device, tty or unix socket) instead\n\
                 of the virtio-serial port named org.qemu.guest_agent.0\n\
  --verbose      log every request to stderr\n";

fn log(msg: &str) {
    eprintln!("neuroflow-agent: {msg}");
}

/// Sleeps up to one second, returning early on a stop signal.
fn pause(wake: i32) {
    let mut pfd = libc::pollfd {
        fd: wake,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 1000) };
}

fn main() {
    let mut device: Option<PathBuf> = None;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" | "-p" => match args.next() {
                Some(p) => device = Some(PathBuf::from(p)),
                None => {
                    eprint!("{USAGE}");
                    std::process::exit(2);
                }
            },
            "--verbose" | "-v" => verbose = true,
            "--version" | "-V" => {
                println!("neuroflow-agent {VERSION}");
                return;
            }
            "--help" | "-h" => {
                print!("{USAGE}");
                return;
            }
            _ => {
                eprint!("{USAGE}");
                std::process::exit(2);
            }
        }
    }

    // One malloc arena: the exec capture threads need no arenas of their own.
    // SAFETY: mallopt only tunes the allocator.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };

    // A panic (panic=abort) must not leave the guest frozen.
    std::panic::set_hook(Box::new(|p| {
        eprintln!("neuroflow-agent: fatal: {p}");
        if freeze::globally_frozen() {
            freeze::thaw_all();
        }
    }));
    let wake = match signals::install() {
        Ok(fd) => fd,
        Err(e) => {
            log(&format!("cannot install signal handlers: {e}"));
            -1
        }
    };

    let mut agent = Agent::new(verbose);
    let mut waiting_logged = false;
    while !signals::stop_requested() {
        let Some(path) = device.clone().or_else(device::discover) else {
            if !waiting_logged {
                log(&format!(
                    "waiting for virtio-serial port {}",
                    device::PORT_NAME
                ));
                waiting_logged = true;
            }
            pause(wake);
            continue;
        };
        let mut chan = match Channel::open(&path, (wake >= 0).then_some(wake)) {
            Ok(c) => c,
            Err(e) => {
                if !waiting_logged {
                    log(&format!("cannot open {}: {e}", path.display()));
                    waiting_logged = true;
                }
                pause(wake);
                continue;
            }
        };
        waiting_logged = false;
        log(&format!("{VERSION} serving on {}", path.display()));
        agent.reset_input();
        let eof = EofPolicy::Retry(Duration::from_millis(250));
        match serve(&mut agent, &mut chan, eof, &signals::stop_requested) {
            Ok(Outcome::Stopped) => break,
            Ok(Outcome::Power(mode)) => {
                drop(chan);
                agent.cleanup();
                log(&format!("guest-shutdown: {mode:?}"));
                let e = shutdown::execute(mode);
                log(&format!("reboot(2) failed: {e}"));
            }
            Ok(Outcome::Eof) => {}
            Err(e) => {
                log(&format!("channel {}: {e}; reopening", path.display()));
                drop(chan);
                pause(wake);
            }
        }
    }
    agent.cleanup();
    log("exiting");
}
