//! End-to-end protocol tests: the serve loop on one end of a socketpair,
//! a QGA client on the other.

use neuroflow_agent::handlers::shutdown::PowerMode;
use neuroflow_agent::serve::{serve, EofPolicy, Outcome};
use neuroflow_agent::Agent;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

struct Client {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    /// Reads one reply line; strips (and reports) a leading 0xFF.
    fn recv_raw(&mut self) -> (bool, Value) {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).unwrap();
        assert!(!line.is_empty(), "agent closed the channel");
        let delimited = line.first() == Some(&0xFF);
        let body = if delimited { &line[1..] } else { &line[..] };
        (delimited, serde_json::from_slice(body).unwrap())
    }

    fn recv(&mut self) -> Value {
        self.recv_raw().1
    }

    fn call(&mut self, req: Value) -> Value {
        self.send(req.to_string().as_bytes());
        self.recv()
    }
}

fn start() -> (Client, thread::JoinHandle<Outcome>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let h = thread::spawn(move || {
        let mut agent = Agent::new(false);
        let mut chan = theirs;
        serve(&mut agent, &mut chan, EofPolicy::Exit, &|| false).unwrap()
    });
    let w = ours.try_clone().unwrap();
    (
        Client {
            w,
            r: BufReader::new(ours),
        },
        h,
    )
}

#[test]
fn stock_client_session() {
    let (mut c, h) = start();
    // Stale partial input from a previous client, then the resync.
    c.send(b"{\"execute\":\"guest-pi");
    c.send(b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":987654321}}");
    let (delimited, v) = c.recv_raw();
    assert!(delimited);
    assert_eq!(v, json!({"return": 987654321}));

    assert_eq!(
        c.call(json!({"execute": "guest-ping"})),
        json!({"return": {}})
    );
    assert_eq!(
        c.call(json!({"execute": "guest-sync", "arguments": {"id": 5}, "id": "req-1"})),
        json!({"return": 5, "id": "req-1"})
    );

    let info = c.call(json!({"execute": "guest-info"}));
    let names: Vec<&str> = info["return"]["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "guest-exec",
        "guest-get-fsinfo",
        "guest-fsfreeze-thaw",
        "neuroflow-get-meminfo",
    ] {
        assert!(names.contains(&n), "{n}");
    }

    // Garbage, then a good request on the same stream.
    c.send(b"this is not json\n");
    for word in ["this", "is", "not", "json"] {
        let v = c.recv();
        assert_eq!(v["error"]["class"], "GenericError");
        assert_eq!(
            v["error"]["desc"],
            format!("JSON parse error, stray '{word}'")
        );
    }
    c.send(b"{\"execute\": }\n");
    assert_eq!(c.recv()["error"]["class"], "GenericError");
    assert_eq!(
        c.call(json!({"execute": "guest-ping"})),
        json!({"return": {}})
    );

    let v = c.call(json!({"execute": "guest-nope", "id": 9}));
    assert_eq!(
        v,
        json!({"error": {"class": "CommandNotFound", "desc": "The command guest-nope has not been found"}, "id": 9})
    );
    let v = c.call(json!({"execute": "guest-ping", "arguments": {"x": 1}}));
    assert_eq!(v["error"]["desc"], "Parameter 'x' is unexpected");

    // Several requests in one write, answered in order.
    c.send(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1}}{\"execute\":\"guest-sync\",\"arguments\":{\"id\":2}}");
    assert_eq!(c.recv()["return"], 1);
    assert_eq!(c.recv()["return"], 2);

    drop(c);
    assert_eq!(h.join().unwrap(), Outcome::Eof);
}

#[test]
fn exec_and_status_over_the_wire() {
    let (mut c, h) = start();
    let v = c.call(json!({"execute": "guest-exec", "arguments": {
        "path": "/bin/sh", "arg": ["-c", "echo hi; exit 3"], "capture-output": true}}));
    let pid = v["return"]["pid"].as_i64().unwrap();
    let start = Instant::now();
    let status = loop {
        let s = c.call(json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}));
        if s["return"]["exited"] == true {
            break s["return"].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(20));
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status["exitcode"], 3);
    assert_eq!(status["out-data"], "aGkK");
    assert_eq!(status["out-truncated"], false);
    // Empty captures are left out, as qemu-ga does.
    assert!(status.get("err-data").is_none());
    let v = c.call(json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}));
    assert_eq!(v["error"]["desc"], "Invalid parameter 'pid'");
    drop(c);
    h.join().unwrap();
}

#[test]
fn shutdown_replies_before_acting() {
    let (mut c, h) = start();
    let v = c.call(json!({"execute": "guest-shutdown", "arguments": {"mode": "reboot"}, "id": 1}));
    assert_eq!(v, json!({"return": {}, "id": 1}));
    // The loop hands the request to the caller instead of rebooting.
    assert_eq!(h.join().unwrap(), Outcome::Power(PowerMode::Reboot));
    let v = {
        let (mut c2, h2) = start();
        let v = c2.call(json!({"execute": "guest-shutdown", "arguments": {"mode": "sleep"}}));
        drop(c2);
        h2.join().unwrap();
        v
    };
    assert_eq!(
        v["error"]["desc"],
        "Parameter 'mode' expects \"halt\", \"powerdown\" or \"reboot\""
    );
    drop(c);
}

#[test]
fn file_roundtrip_over_the_wire() {
    let (mut c, h) = start();
    let path = std::env::temp_dir().join(format!("nfa-it-{}", std::process::id()));
    let p = path.to_string_lossy().to_string();
    let hnd = c.call(json!({"execute": "guest-file-open", "arguments": {"path": p, "mode": "w"}}))
        ["return"]
        .as_i64()
        .unwrap();
    let w = c.call(
        json!({"execute": "guest-file-write", "arguments": {"handle": hnd, "buf-b64": "aGVsbG8="}}),
    );
    assert_eq!(w["return"], json!({"count": 5, "eof": false}));
    assert_eq!(
        c.call(json!({"execute": "guest-file-close", "arguments": {"handle": hnd}}))["return"],
        json!({})
    );
    let hnd = c.call(json!({"execute": "guest-file-open", "arguments": {"path": p}}))["return"]
        .as_i64()
        .unwrap();
    let r = c.call(json!({"execute": "guest-file-read", "arguments": {"handle": hnd}}));
    assert_eq!(
        r["return"],
        json!({"count": 5, "buf-b64": "aGVsbG8=", "eof": true})
    );
    std::fs::remove_file(&path).unwrap();
    drop(c);
    h.join().unwrap();
}
