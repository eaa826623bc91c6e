//! The protocol engine: bytes in, response bytes out. It owns all state
//! (framer, frozen filesystems, exec children, open files) and runs one
//! command at a time; it does no I/O on the channel itself, so tests can
//! drive it with plain byte slices.

use crate::command::{self, Command};
use crate::error::{AgentError, HandlerResult};
use crate::framing::{Frame, Framer};
use crate::handlers::shutdown::PowerMode;
use crate::handlers::{self, exec::ExecTable, file::FileTable, freeze::FreezeState};
use serde_json::{Map, Value};

/// Mutable state shared by the handlers.
#[derive(Default)]
pub struct State {
    pub freeze: FreezeState,
    pub exec: ExecTable,
    pub files: FileTable,
    /// Set by guest-shutdown; carried out by the caller after the reply
    /// has been written.
    pub pending_power: Option<PowerMode>,
}

#[derive(Default)]
pub struct Agent {
    framer: Framer,
    pub state: State,
    pub verbose: bool,
}

/// A request after validation of the envelope.
struct Request {
    execute: String,
    arguments: Option<Map<String, Value>>,
    id: Option<Value>,
}

fn parse_envelope(v: Value) -> Result<Request, (AgentError, Option<Value>)> {
    let Value::Object(mut obj) = v else {
        return Err((AgentError::generic("QMP input must be a JSON object"), None));
    };
    let id = obj.remove("id");
    let fail = |msg: String, id: &Option<Value>| Err((AgentError::generic(msg), id.clone()));
    let execute = match obj.remove("execute") {
        Some(Value::String(s)) => s,
        Some(_) => return fail("QMP input member 'execute' must be a string".into(), &id),
        None => return fail("QMP input lacks member 'execute'".into(), &id),
    };
    let arguments = match obj.remove("arguments") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return fail("QMP input member 'arguments' must be an object".into(), &id),
    };
    if let Some(key) = obj.keys().next() {
        return fail(format!("QMP input member '{key}' is unexpected"), &id);
    }
    Ok(Request {
        execute,
        arguments,
        id,
    })
}

/// Serialises one reply: `{"return": ...}` or `{"error": ...}`, the id
/// echoed if the request had one, then a newline. guest-sync-delimited
/// replies are preceded by a 0xFF byte.
pub fn render(result: &HandlerResult, id: Option<&Value>, delimited: bool, out: &mut Vec<u8>) {
    if delimited {
        out.push(0xFF);
    }
    let mut obj = Map::new();
    match result {
        Ok(v) => obj.insert("return".into(), v.clone()),
        Err(e) => obj.insert("error".into(), e.to_json()),
    };
    if let Some(id) = id {
        obj.insert("id".into(), id.clone());
    }
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &Value::Object(obj));
    out.push(b'\n');
}

impl Agent {
    pub fn new(verbose: bool) -> Self {
        Agent {
            verbose,
            ..Default::default()
        }
    }

    /// Drops partially received input (after a disconnect).
    pub fn reset_input(&mut self) {
        self.framer.reset();
    }

    /// Feeds received bytes; returns the bytes to send back.
    pub fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in self.framer.feed(input) {
            match frame {
                Frame::Message(bytes) => self.handle_message(&bytes, &mut out),
                Frame::Stray(s) => {
                    let e = AgentError::generic(format!("JSON parse error, stray '{s}'"));
                    render(&Err(e), None, false, &mut out);
                }
                Frame::TooLarge => {
                    let e = AgentError::generic("JSON parse error, request too large or too deep");
                    render(&Err(e), None, false, &mut out);
                }
            }
            if self.state.pending_power.is_some() {
                // Nothing after a shutdown request is executed.
                self.framer.reset();
                break;
            }
        }
        out
    }

    fn handle_message(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                let e = AgentError::generic(format!("JSON parse error, {e}"));
                return render(&Err(e), None, false, out);
            }
        };
        let req = match parse_envelope(value) {
            Ok(r) => r,
            Err((e, id)) => return render(&Err(e), id.as_ref(), false, out),
        };
        if self.verbose {
            eprintln!("neuroflow-agent: <- {}", req.execute);
        }
        let delimited = req.execute == "guest-sync-delimited";
        let result = self.execute(&req.execute, req.arguments);
        if self.verbose {
            if let Err(e) = &result {
                eprintln!("neuroflow-agent: {} failed: {e}", req.execute);
            }
        }
        render(&result, req.id.as_ref(), delimited && result.is_ok(), out);
    }

    /// Looks the command up, enforces the frozen-state allowlist, parses
    /// the arguments and runs the handler.
    pub fn execute(&mut self, name: &str, args: Option<Map<String, Value>>) -> HandlerResult {
        let Some(info) = command::lookup(name) else {
            return Err(AgentError::not_found(name));
        };
        if self.state.freeze.is_frozen() && !info.when_frozen {
            return Err(AgentError::disabled(name, "the agent is in frozen state"));
        }
        let cmd = Command::parse(name, args)?;
        handlers::dispatch(&mut self.state, cmd)
    }

    /// Reaps finished guest-exec children (call periodically).
    pub fn reap(&mut self) {
        self.state.exec.reap();
    }

    /// Thaws everything we froze; used on exit and on fatal signals.
    pub fn cleanup(&mut self) {
        if self.state.freeze.is_frozen() {
            let n = self.state.freeze.thaw();
            eprintln!("neuroflow-agent: thawed {n} filesystem(s) on exit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(agent: &mut Agent, input: &[u8]) -> Vec<Value> {
        let out = agent.feed(input);
        out.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let l = l.strip_prefix(&[0xFF]).unwrap_or(l);
                serde_json::from_slice(l).unwrap()
            })
            .collect()
    }

    #[test]
    fn sync_and_id_echo() {
        let mut a = Agent::new(false);
        let r = run(
            &mut a,
            br#"{"execute":"guest-sync","arguments":{"id":7},"id":"x1"}"#,
        );
        assert_eq!(r, vec![json!({"return": 7, "id": "x1"})]);
        let out = a.feed(br#"{"execute":"guest-sync-delimited","arguments":{"id":123}}"#);
        assert_eq!(out[0], 0xFF);
        assert_eq!(&out[1..], b"{\"return\":123}\n");
    }

    #[test]
    fn envelope_errors() {
        let mut a = Agent::new(false);
        let r = run(&mut a, b"[1,2]");
        assert_eq!(r[0]["error"]["desc"], "QMP input must be a JSON object");
        let r = run(&mut a, br#"{"arguments":{},"id":5}"#);
        assert_eq!(
            r[0],
            json!({"error": {"class": "GenericError", "desc": "QMP input lacks member 'execute'"}, "id": 5})
        );
        let r = run(&mut a, br#"{"execute":1}"#);
        assert_eq!(
            r[0]["error"]["desc"],
            "QMP input member 'execute' must be a string"
        );
        let r = run(&mut a, br#"{"execute":"guest-ping","arguments":[]}"#);
        assert_eq!(
            r[0]["error"]["desc"],
            "QMP input member 'arguments' must be an object"
        );
        let r = run(&mut a, br#"{"execute":"guest-ping","extra":1}"#);
        assert_eq!(
            r[0]["error"]["desc"],
            "QMP input member 'extra' is unexpected"
        );
    }

    #[test]
    fn malformed_json_then_recovers() {
        let mut a = Agent::new(false);
        let r = run(
            &mut a,
            b"{\"execute\": guest-ping}\n{\"execute\":\"guest-ping\"}",
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["error"]["class"], "GenericError");
        assert!(r[0]["error"]["desc"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error"));
        assert_eq!(r[1], json!({"return": {}}));
        let r = run(&mut a, b"garbage\n");
        assert_eq!(r[0]["error"]["desc"], "JSON parse error, stray 'garbage'");
    }

    #[test]
    fn unknown_command_class() {
        let mut a = Agent::new(false);
        let r = run(&mut a, br#"{"execute":"foo","id":1}"#);
        assert_eq!(
            r[0],
            json!({"error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}, "id": 1})
        );
    }

    #[test]
    fn delimited_error_has_no_sentinel() {
        let mut a = Agent::new(false);
        let out = a.feed(br#"{"execute":"guest-sync-delimited"}"#);
        assert_eq!(out[0], b'{');
    }

    #[test]
    fn frozen_state_disables_commands() {
        let mut a = Agent::new(false);
        a.state.freeze.force_frozen_for_test(true);
        let r = run(
            &mut a,
            br#"{"execute":"guest-exec","arguments":{"path":"/bin/true"}}"#,
        );
        assert_eq!(r[0]["error"]["class"], "CommandNotFound");
        assert_eq!(
            r[0]["error"]["desc"],
            "Command guest-exec has been disabled: the agent is in frozen state"
        );
        let r = run(&mut a, br#"{"execute":"guest-fsfreeze-status"}"#);
        assert_eq!(r[0]["return"], "frozen");
        let r = run(&mut a, br#"{"execute":"guest-info"}"#);
        let cmds = r[0]["return"]["supported_commands"].as_array().unwrap();
        let exec = cmds.iter().find(|c| c["name"] == "guest-exec").unwrap();
        assert_eq!(exec["enabled"], false);
        a.state.freeze.force_frozen_for_test(false);
    }
}
