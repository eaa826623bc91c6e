//! The commands we understand (the table guest-info reports) and how a
//! request's `execute`/`arguments` pair becomes a [`Command`]; the argument
//! structs live in [`crate::args`].

use crate::args::*;
use crate::error::AgentError;
use serde_json::{Map, Value};

/// Static facts about one command, reported by `guest-info`.
pub struct CommandInfo {
    pub name: &'static str,
    /// Whether a success produces a reply (false only for qemu-ga's
    /// guest-shutdown; we do reply to it, see handlers::shutdown).
    pub success_response: bool,
    /// Still allowed while filesystems are frozen. qemu-ga allows only
    /// ping/info/sync/fsfreeze-status/thaw; we add the read-only commands
    /// that touch nothing but /proc and /sys.
    pub when_frozen: bool,
}

const fn info(name: &'static str, when_frozen: bool) -> CommandInfo {
    CommandInfo {
        name,
        success_response: true,
        when_frozen,
    }
}

pub const COMMANDS: &[CommandInfo] = &[
    info("guest-sync-delimited", true),
    info("guest-sync", true),
    info("guest-ping", true),
    info("guest-info", true),
    info("guest-get-time", true),
    info("guest-get-osinfo", false),
    info("guest-get-host-name", true),
    info("guest-get-fsinfo", false),
    info("guest-get-memory-block-info", true),
    info("guest-get-load", true),
    info("guest-get-cpustats", true),
    info("guest-get-diskstats", true),
    info("guest-network-get-interfaces", true),
    info("guest-fsfreeze-status", true),
    info("guest-fsfreeze-freeze", false),
    info("guest-fsfreeze-freeze-list", false),
    info("guest-fsfreeze-thaw", true),
    info("guest-exec", false),
    info("guest-exec-status", false),
    info("guest-set-user-password", false),
    info("guest-shutdown", false),
    info("guest-file-open", false),
    info("guest-file-close", false),
    info("guest-file-read", false),
    info("guest-file-write", false),
    info("guest-file-seek", false),
    info("guest-file-flush", false),
    info("neuroflow-get-meminfo", true),
    info("neuroflow-get-uptime", true),
];

pub fn lookup(name: &str) -> Option<&'static CommandInfo> {
    COMMANDS.iter().find(|c| c.name == name)
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Sync(SyncArgs),
    SyncDelimited(SyncArgs),
    Ping,
    Info,
    GetTime,
    GetOsInfo,
    GetHostName,
    GetFsInfo,
    GetMemoryBlockInfo,
    GetLoad,
    GetCpuStats,
    GetDiskStats,
    NetworkGetInterfaces,
    FsfreezeStatus,
    FsfreezeFreeze,
    FsfreezeFreezeList(FreezeListArgs),
    FsfreezeThaw,
    Exec(ExecArgs),
    ExecStatus(PidArgs),
    SetUserPassword(SetUserPasswordArgs),
    Shutdown(ShutdownArgs),
    FileOpen(FileOpenArgs),
    FileClose(HandleArgs),
    FileRead(FileReadArgs),
    FileWrite(FileWriteArgs),
    FileSeek(FileSeekArgs),
    FileFlush(HandleArgs),
    GetMeminfo,
    GetUptime,
}

impl Command {
    /// Builds the command `name` from its (optional) arguments object.
    pub fn parse(name: &str, args: Option<Map<String, Value>>) -> Result<Command, AgentError> {
        let a = Value::Object(args.unwrap_or_default());
        use Command as C;
        Ok(match name {
            "guest-sync" => C::Sync(de(a)?),
            "guest-sync-delimited" => C::SyncDelimited(de(a)?),
            "guest-fsfreeze-freeze-list" => C::FsfreezeFreezeList(de(a)?),
            "guest-exec" => C::Exec(de(a)?),
            "guest-exec-status" => C::ExecStatus(de(a)?),
            "guest-set-user-password" => C::SetUserPassword(de(a)?),
            "guest-shutdown" => C::Shutdown(de(a)?),
            "guest-file-open" => C::FileOpen(de(a)?),
            "guest-file-close" => C::FileClose(de(a)?),
            "guest-file-read" => C::FileRead(de(a)?),
            "guest-file-write" => C::FileWrite(de(a)?),
            "guest-file-seek" => C::FileSeek(de(a)?),
            "guest-file-flush" => C::FileFlush(de(a)?),
            _ => {
                let cmd = match name {
                    "guest-ping" => C::Ping,
                    "guest-info" => C::Info,
                    "guest-get-time" => C::GetTime,
                    "guest-get-osinfo" => C::GetOsInfo,
                    "guest-get-host-name" => C::GetHostName,
                    "guest-get-fsinfo" => C::GetFsInfo,
                    "guest-get-memory-block-info" => C::GetMemoryBlockInfo,
                    "guest-get-load" => C::GetLoad,
                    "guest-get-cpustats" => C::GetCpuStats,
                    "guest-get-diskstats" => C::GetDiskStats,
                    "guest-network-get-interfaces" => C::NetworkGetInterfaces,
                    "guest-fsfreeze-status" => C::FsfreezeStatus,
                    "guest-fsfreeze-freeze" => C::FsfreezeFreeze,
                    "guest-fsfreeze-thaw" => C::FsfreezeThaw,
                    "neuroflow-get-meminfo" => C::GetMeminfo,
                    "neuroflow-get-uptime" => C::GetUptime,
                    _ => return Err(AgentError::not_found(name)),
                };
                none(a)?;
                cmd
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorClass;
    use serde_json::json;

    /// The `arguments` member of a request, as the parser receives it (shared with args.rs tests).
    pub(crate) fn args(v: Value) -> Option<Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    #[test]
    fn parses_arguments() {
        assert_eq!(
            Command::parse("guest-sync", args(json!({"id": 42}))).unwrap(),
            Command::Sync(SyncArgs { id: 42 })
        );
        let c = Command::parse(
            "guest-exec",
            args(json!({"path": "/bin/sh", "arg": ["-c", "true"], "capture-output": true})),
        )
        .unwrap();
        let Command::Exec(e) = c else { panic!() };
        assert_eq!(e.path, "/bin/sh");
        assert_eq!(e.capture_output, Some(CaptureOutput::Flag(true)));
        let c = Command::parse(
            "guest-exec",
            args(json!({"path": "x", "capture-output": "merged"})),
        )
        .unwrap();
        let Command::Exec(e) = c else { panic!() };
        assert_eq!(e.capture_output, Some(CaptureOutput::Mode("merged".into())));
        let c = Command::parse(
            "guest-file-seek",
            args(json!({"handle": 1, "offset": 0, "whence": "end"})),
        )
        .unwrap();
        assert!(matches!(
            c,
            Command::FileSeek(FileSeekArgs {
                whence: Whence::Name(_),
                ..
            })
        ));
        assert_eq!(Command::parse("guest-ping", None).unwrap(), Command::Ping);
        assert_eq!(
            Command::parse("guest-ping", args(json!({}))).unwrap(),
            Command::Ping
        );
    }

    #[test]
    fn unknown_command() {
        let e = Command::parse("guest-frobnicate", None).unwrap_err();
        assert_eq!(e.class, ErrorClass::CommandNotFound);
        assert_eq!(e.desc, "The command guest-frobnicate has not been found");
        assert!(lookup("guest-frobnicate").is_none());
    }

    #[test]
    fn table_and_parser_agree() {
        for c in COMMANDS {
            // Every listed command is known to the parser (it may still
            // want arguments, but must not be CommandNotFound).
            if let Err(e) = Command::parse(c.name, None) {
                assert_eq!(e.class, ErrorClass::GenericError, "{}", c.name);
            }
        }
        let names: std::collections::HashSet<_> = COMMANDS.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), COMMANDS.len(), "duplicate names");
    }
}
