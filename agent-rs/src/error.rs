//! Errors returned to the QGA client: `{"error": {"class": ..., "desc": ...}}`.

use serde_json::{json, Value};
use std::fmt;
use std::io;

/// QAPI error classes. Current QEMU only ever emits `GenericError` and
/// `CommandNotFound` from the guest agent (disabled commands also use
/// `CommandNotFound`, with "Command X has been disabled").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    GenericError,
    CommandNotFound,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
        }
    }
}

/// An error a handler reports to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    pub class: ErrorClass,
    pub desc: String,
}

pub type HandlerResult = Result<Value, AgentError>;

impl AgentError {
    pub fn generic(desc: impl Into<String>) -> Self {
        AgentError {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    pub fn not_found(command: &str) -> Self {
        AgentError {
            class: ErrorClass::CommandNotFound,
            desc: format!("The command {command} has not been found"),
        }
    }

    pub fn disabled(command: &str, reason: &str) -> Self {
        AgentError {
            class: ErrorClass::CommandNotFound,
            desc: format!("Command {command} has been disabled: {reason}"),
        }
    }

    /// `error_setg_errno` style: "<what>: <strerror>".
    pub fn io(what: impl fmt::Display, err: &io::Error) -> Self {
        AgentError::generic(format!("{what}: {}", strerror(err)))
    }

    /// QERR_INVALID_PARAMETER.
    pub fn invalid_param(name: &str) -> Self {
        AgentError::generic(format!("Invalid parameter '{name}'"))
    }

    /// QERR_INVALID_PARAMETER_VALUE.
    pub fn invalid_value(name: &str, expected: &str) -> Self {
        AgentError::generic(format!("Parameter '{name}' expects {expected}"))
    }

    pub fn to_json(&self) -> Value {
        json!({ "class": self.class.as_str(), "desc": self.desc })
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.as_str(), self.desc)
    }
}

/// The bare strerror text of an io::Error (without Rust's " (os error N)").
pub fn strerror(err: &io::Error) -> String {
    let s = err.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_messages() {
        let e = AgentError::not_found("foo");
        assert_eq!(e.class, ErrorClass::CommandNotFound);
        assert_eq!(
            e.to_json(),
            json!({"class": "CommandNotFound", "desc": "The command foo has not been found"})
        );
        let e = AgentError::generic("boom");
        assert_eq!(e.to_json()["class"], "GenericError");
        let d = AgentError::disabled("guest-exec", "the agent is in frozen state");
        assert_eq!(d.class, ErrorClass::CommandNotFound);
        assert_eq!(
            d.desc,
            "Command guest-exec has been disabled: the agent is in frozen state"
        );
    }

    #[test]
    fn strerror_strips_os_error_suffix() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(strerror(&e), "No such file or directory");
        let e = AgentError::io("open(\"/x\")", &io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(e.desc, "open(\"/x\"): Permission denied");
    }
}
