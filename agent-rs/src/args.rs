//! Argument structs of the commands (QGA member names, unknown members
//! rejected) and QEMU-worded errors for bad arguments.

use crate::error::AgentError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncArgs {
    pub id: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShutdownArgs {
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FreezeListArgs {
    pub mountpoints: Option<Vec<String>>,
}

/// `capture-output`: a bool (since 2.5) or a mode name (since 8.0).
#[derive(Debug, Deserialize, PartialEq, Clone)]
#[serde(untagged)]
pub enum CaptureOutput {
    Flag(bool),
    Mode(String),
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExecArgs {
    pub path: String,
    pub arg: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub input_data: Option<String>,
    pub capture_output: Option<CaptureOutput>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PidArgs {
    pub pid: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SetUserPasswordArgs {
    pub username: String,
    pub password: String,
    pub crypted: bool,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileOpenArgs {
    pub path: String,
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HandleArgs {
    pub handle: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileReadArgs {
    pub handle: i64,
    pub count: Option<i64>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileWriteArgs {
    pub handle: i64,
    #[serde(rename = "buf-b64")]
    pub buf_b64: String,
    pub count: Option<i64>,
}

/// `whence`: 0/1/2 or "set"/"cur"/"end".
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Whence {
    Value(i64),
    Name(String),
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSeekArgs {
    pub handle: i64,
    pub offset: i64,
    pub whence: Whence,
}

/// QAPI's name for the type serde expected.
fn qapi_type(serde_msg: &str) -> &'static str {
    let expected = serde_msg.rsplit("expected ").next().unwrap_or("");
    if expected.contains("i64") || expected.contains("u64") || expected.contains("integer") {
        "integer"
    } else if expected.contains("bool") {
        "boolean"
    } else if expected.contains("string") {
        "string"
    } else if expected.contains("sequence") {
        "array"
    } else if expected.contains("untagged enum") {
        "alternate"
    } else {
        "object"
    }
}

/// Turns serde's messages into QEMU's wording: "Parameter 'x' is missing",
/// "Parameter 'x' is unexpected", "Invalid parameter type for 'x',
/// expected: integer".
fn arg_error<T: DeserializeOwned>(err: serde_json::Error, args: &Map<String, Value>) -> AgentError {
    let msg = err.to_string();
    let field = |prefix: &str| {
        msg.strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    if let Some(f) = field("missing field `") {
        return AgentError::generic(format!("Parameter '{f}' is missing"));
    }
    if let Some(f) = field("unknown field `") {
        return AgentError::generic(format!("Parameter '{f}' is unexpected"));
    }
    // serde does not name the member with the wrong type: find the first
    // member whose removal changes the error.
    for key in args.keys() {
        let mut probe = args.clone();
        probe.remove(key);
        let changed = match serde_json::from_value::<T>(Value::Object(probe)) {
            Ok(_) => true,
            Err(e) => e.to_string() != msg,
        };
        if changed {
            return AgentError::generic(format!(
                "Invalid parameter type for '{key}', expected: {}",
                qapi_type(&msg)
            ));
        }
    }
    AgentError::generic(format!("Invalid parameters: {msg}"))
}

pub fn de<T: DeserializeOwned>(args: Value) -> Result<T, AgentError> {
    let Value::Object(map) = args else {
        return Err(AgentError::generic(
            "QMP input member 'arguments' must be an object",
        ));
    };
    // Only the error path needs the arguments again.
    serde_json::from_value(Value::Object(map.clone())).map_err(|e| arg_error::<T>(e, &map))
}

pub fn none(args: Value) -> Result<(), AgentError> {
    de::<NoArgs>(args).map(|_| ())
}
#[cfg(test)]
mod tests {
    use crate::command::tests::args;
    use crate::command::Command;
    use crate::error::ErrorClass;
    use serde_json::json;

    #[test]
    fn argument_errors_use_qemu_wording() {
        let e = Command::parse("guest-sync", None).unwrap_err();
        assert_eq!(e.class, ErrorClass::GenericError);
        assert_eq!(e.desc, "Parameter 'id' is missing");
        let e = Command::parse("guest-sync", args(json!({"id": 1, "x": 2}))).unwrap_err();
        assert_eq!(e.desc, "Parameter 'x' is unexpected");
        let e = Command::parse("guest-ping", args(json!({"bogus": 1}))).unwrap_err();
        assert_eq!(e.desc, "Parameter 'bogus' is unexpected");
        let e = Command::parse("guest-sync", args(json!({"id": "nope"}))).unwrap_err();
        assert_eq!(e.class, ErrorClass::GenericError);
        assert_eq!(e.desc, "Invalid parameter type for 'id', expected: integer");
        let e = Command::parse(
            "guest-exec",
            args(json!({"path": "/bin/sh", "arg": "-c", "capture-output": true})),
        )
        .unwrap_err();
        assert_eq!(e.desc, "Invalid parameter type for 'arg', expected: array");
        let e = Command::parse(
            "guest-set-user-password",
            args(json!({"username": "root", "password": "eA==", "crypted": "no"})),
        )
        .unwrap_err();
        assert_eq!(
            e.desc,
            "Invalid parameter type for 'crypted', expected: boolean"
        );
        let e = Command::parse(
            "guest-exec",
            args(json!({"path": "x", "capture-output": 5})),
        )
        .unwrap_err();
        assert_eq!(
            e.desc,
            "Invalid parameter type for 'capture-output', expected: alternate"
        );
    }
}
