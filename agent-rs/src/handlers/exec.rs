//! guest-exec and guest-exec-status. Children run in the background; their
//! output is drained by small threads (so a chatty child never blocks) and
//! kept up to a per-stream limit, like qemu-ga.

use super::capture::{capture, capture_mode, Captured, Mode};
use crate::args::ExecArgs;
use crate::error::{strerror, AgentError, HandlerResult};
use crate::util::base64;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Per-stream capture limit (qemu-ga's GUEST_EXEC_MAX_OUTPUT).
pub const MAX_OUTPUT: usize = 16 << 20;
const THREAD_STACK: usize = 64 << 10;
/// Results of finished programs that nobody asks for are kept this long (the host gave up waiting).
const FINISHED_TTL: Duration = Duration::from_secs(600);

/// A thread draining one output pipe.
type Stream = JoinHandle<Captured>;

struct Entry {
    pid: i64,
    child: Child,
    status: Option<ExitStatus>,
    /// When the exit was seen: results nobody fetches are dropped after FINISHED_TTL.
    exited_at: Option<Instant>,
    out: Option<Stream>,
    err: Option<Stream>,
}

pub struct ExecTable {
    entries: Vec<Entry>,
    limit: usize,
}

impl Default for ExecTable {
    fn default() -> Self {
        Self::with_limit(MAX_OUTPUT)
    }
}

fn spawn_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, AgentError> {
    thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map_err(|e| AgentError::io("failed to start I/O thread", &e))
}

impl ExecTable {
    pub fn with_limit(limit: usize) -> Self {
        ExecTable {
            entries: Vec::new(),
            limit,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn spawn(&mut self, a: ExecArgs) -> HandlerResult {
        let mode = capture_mode(a.capture_output.as_ref())?;
        let input = match &a.input_data {
            Some(b64) => Some(base64::decode(b64).ok_or_else(|| {
                AgentError::generic("Parameter 'input-data' is not valid base64")
            })?),
            None => None,
        };
        let mut cmd = Command::new(&a.path);
        cmd.args(a.arg.iter().flatten());
        if let Some(env) = &a.env {
            cmd.env_clear();
            for kv in env {
                if let Some((k, v)) = kv.split_once('=') {
                    cmd.env(k, v);
                }
            }
        }
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut merged_reader = None;
        match mode {
            Mode::None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
            Mode::Stdout => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::null());
            }
            Mode::Stderr => {
                cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            }
            Mode::Separated => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Mode::Merged => {
                let (r, w) = std::io::pipe().map_err(|e| AgentError::io("pipe", &e))?;
                let w2 = w.try_clone().map_err(|e| AgentError::io("dup", &e))?;
                cmd.stdout(w).stderr(w2);
                merged_reader = Some(r);
            }
        }
        let spawned = cmd.spawn();
        // Drop our copies of the pipe ends the child got.
        drop(cmd);
        let mut child = spawned.map_err(|e| {
            AgentError::generic(format!(
                "Guest agent command failed, error was 'Failed to execute child process \u{201c}{}\u{201d} ({})'",
                a.path,
                strerror(&e)
            ))
        })?;
        let pid = i64::from(child.id());
        let limit = self.limit;
        let mut out = None;
        let mut err = None;
        let started = (|| -> Result<(), AgentError> {
            if let Some(r) = merged_reader {
                out = Some(spawn_thread(move || capture(r, limit))?);
            }
            if let Some(r) = child.stdout.take() {
                out = Some(spawn_thread(move || capture(r, limit))?);
            }
            if let Some(r) = child.stderr.take() {
                err = Some(spawn_thread(move || capture(r, limit))?);
            }
            if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
                // A child that never reads its input gets EPIPE when it exits.
                spawn_thread(move || {
                    let _ = stdin.write_all(&data);
                })?;
            }
            Ok(())
        })();
        if let Err(e) = started {
            // Without its I/O threads the child would block on a full pipe: end and reap it.
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        self.entries.push(Entry {
            pid,
            child,
            status: None,
            exited_at: None,
            out,
            err,
        });
        Ok(json!({ "pid": pid }))
    }

    /// Collects exit statuses (reaps zombies) without blocking.
    pub fn reap(&mut self) {
        let now = Instant::now();
        for e in &mut self.entries {
            if e.status.is_none() {
                if let Ok(Some(st)) = e.child.try_wait() {
                    e.status = Some(st);
                    e.exited_at = Some(now);
                }
            }
        }
        // Forget results nobody fetched: their output would otherwise be held forever, and the pid could
        // be reused by a newer program.
        self.entries.retain(|e| {
            let stale = e
                .exited_at
                .is_some_and(|t| now.duration_since(t) > FINISHED_TTL);
            let drained = e.out.as_ref().is_none_or(|h| h.is_finished())
                && e.err.as_ref().is_none_or(|h| h.is_finished());
            !(stale && drained)
        });
    }

    pub fn status(&mut self, pid: i64) -> HandlerResult {
        let Some(idx) = self.entries.iter().position(|e| e.pid == pid) else {
            return Err(AgentError::invalid_param("pid"));
        };
        self.reap();
        let e = &self.entries[idx];
        let streams_done = e.out.as_ref().is_none_or(|h| h.is_finished())
            && e.err.as_ref().is_none_or(|h| h.is_finished());
        let Some(status) = e.status.filter(|_| streams_done) else {
            return Ok(json!({ "exited": false }));
        };
        // Finished: report once and forget the process, like qemu-ga.
        let e = self.entries.swap_remove(idx);
        let mut o = Map::new();
        o.insert("exited".into(), true.into());
        if let Some(code) = status.code() {
            o.insert("exitcode".into(), code.into());
        } else if let Some(sig) = status.signal() {
            o.insert("signal".into(), sig.into());
        }
        for (stream, data_key, trunc_key) in [
            (e.out, "out-data", "out-truncated"),
            (e.err, "err-data", "err-truncated"),
        ] {
            // Like qemu-ga: members only for a non-empty capture.
            let (data, truncated) = stream.and_then(|s| s.join().ok()).unwrap_or_default();
            if !data.is_empty() {
                o.insert(data_key.into(), base64::encode(&data).into());
                o.insert(trunc_key.into(), truncated.into());
            }
        }
        Ok(Value::Object(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::CaptureOutput;
    use std::time::{Duration, Instant};

    fn args(path: &str, arg: &[&str], capture: Option<CaptureOutput>) -> ExecArgs {
        ExecArgs {
            path: path.into(),
            arg: Some(arg.iter().map(|s| s.to_string()).collect()),
            env: None,
            input_data: None,
            capture_output: capture,
        }
    }

    fn wait(t: &mut ExecTable, pid: i64) -> Value {
        let start = Instant::now();
        loop {
            let v = t.status(pid).unwrap();
            if v["exited"] == true {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "child did not exit"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid_of(v: &Value) -> i64 {
        v["pid"].as_i64().unwrap()
    }

    #[test]
    fn exit_code_and_output() {
        let mut t = ExecTable::default();
        let a = args(
            "/bin/sh",
            &["-c", "echo hi; echo err >&2; exit 3"],
            Some(CaptureOutput::Flag(true)),
        );
        let pid = pid_of(&t.spawn(a).unwrap());
        let v = wait(&mut t, pid);
        assert_eq!(v["exitcode"], 3);
        assert_eq!(v["out-data"], base64::encode(b"hi\n"));
        assert_eq!(v["err-data"], base64::encode(b"err\n"));
        assert_eq!(v["out-truncated"], false);
        assert_eq!(v["err-truncated"], false);
        // Reported once, then forgotten.
        let e = t.status(pid).unwrap_err();
        assert_eq!(e.desc, "Invalid parameter 'pid'");
    }

    #[test]
    fn merged_env_input_and_truncation() {
        let mut t = ExecTable::with_limit(5);
        let mut a = args(
            "sh",
            &["-c", "cat; echo \"$FOO\" >&2"],
            Some(CaptureOutput::Mode("merged".into())),
        );
        a.env = Some(vec!["FOO=bar".into(), "PATH=/usr/bin:/bin".into()]);
        a.input_data = Some(base64::encode(b"in"));
        let pid = pid_of(&t.spawn(a).unwrap());
        let v = wait(&mut t, pid);
        assert_eq!(v["exitcode"], 0);
        assert_eq!(
            base64::decode(v["out-data"].as_str().unwrap()).unwrap(),
            b"inbar"
        );
        assert_eq!(v["out-truncated"], true);
        assert!(v.get("err-data").is_none());
    }

    #[test]
    fn signal_and_no_capture() {
        let mut t = ExecTable::default();
        let pid = pid_of(
            &t.spawn(args("/bin/sh", &["-c", "kill -9 $$"], None))
                .unwrap(),
        );
        let v = wait(&mut t, pid);
        assert_eq!(v, json!({"exited": true, "signal": 9}));
    }

    #[test]
    fn running_then_exited_and_errors() {
        let mut t = ExecTable::default();
        let pid = pid_of(&t.spawn(args("/bin/sleep", &["0.3"], None)).unwrap());
        assert_eq!(t.status(pid).unwrap(), json!({"exited": false}));
        assert_eq!(wait(&mut t, pid)["exitcode"], 0);
        let e = t.spawn(args("/nonexistent/prog", &[], None)).unwrap_err();
        assert!(e.desc.contains("No such file or directory"), "{}", e.desc);
        assert!(t.status(999_999_999).is_err());
        let mut bad = args("/bin/true", &[], None);
        bad.input_data = Some("!!".into());
        assert!(t.spawn(bad).is_err());
        assert!(t.is_empty());
    }
}
