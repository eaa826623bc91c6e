//! guest-shutdown. qemu-ga runs /sbin/shutdown and sends no reply. We reply
//! `{"return": {}}` first (the caller writes it out), then sync(2) and call
//! reboot(2) directly, so minimal guests without a shutdown binary work too.
//! Init's shutdown scripts are not run; filesystems are synced, not
//! unmounted (like a power button handled by the kernel alone).

use crate::agent::State;
use crate::args::ShutdownArgs;
use crate::error::{AgentError, HandlerResult};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerMode {
    Powerdown,
    Halt,
    Reboot,
}

pub fn parse_mode(mode: Option<&str>) -> Result<PowerMode, AgentError> {
    match mode.unwrap_or("powerdown") {
        "powerdown" => Ok(PowerMode::Powerdown),
        "halt" => Ok(PowerMode::Halt),
        "reboot" => Ok(PowerMode::Reboot),
        _ => Err(AgentError::invalid_value(
            "mode",
            "\"halt\", \"powerdown\" or \"reboot\"",
        )),
    }
}

/// Validates and records the request; [`execute`] acts on it later.
pub fn request(state: &mut State, a: ShutdownArgs) -> HandlerResult {
    state.pending_power = Some(parse_mode(a.mode.as_deref())?);
    Ok(json!({}))
}

/// Syncs and powers off / halts / reboots. Returns only on failure.
pub fn execute(mode: PowerMode) -> std::io::Error {
    let cmd = match mode {
        PowerMode::Powerdown => libc::RB_POWER_OFF,
        PowerMode::Halt => libc::RB_HALT_SYSTEM,
        PowerMode::Reboot => libc::RB_AUTOBOOT,
    };
    // SAFETY: sync and reboot have no memory-safety preconditions.
    unsafe { libc::sync() };
    // Give the host a moment to read the reply from the channel.
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::reboot(cmd) };
    std::io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode(None).unwrap(), PowerMode::Powerdown);
        assert_eq!(parse_mode(Some("halt")).unwrap(), PowerMode::Halt);
        assert_eq!(parse_mode(Some("reboot")).unwrap(), PowerMode::Reboot);
        let e = parse_mode(Some("nap")).unwrap_err();
        assert_eq!(
            e.desc,
            "Parameter 'mode' expects \"halt\", \"powerdown\" or \"reboot\""
        );
    }

    #[test]
    fn request_is_deferred() {
        let mut s = State::default();
        let r = request(
            &mut s,
            ShutdownArgs {
                mode: Some("reboot".into()),
            },
        )
        .unwrap();
        assert_eq!(r, json!({}));
        assert_eq!(s.pending_power, Some(PowerMode::Reboot));
    }
}
