//! One module per command family; [`dispatch`] maps a [`Command`] to its
//! handler.

pub mod capture;
pub mod exec;
pub mod file;
pub mod freeze;
pub mod fsinfo;
pub mod info;
pub mod mounts;
pub mod net;
pub mod password;
pub mod shutdown;
pub mod stats;

use crate::agent::State;
use crate::command::Command;
use crate::error::HandlerResult;
use serde_json::{json, Value};

pub fn dispatch(state: &mut State, cmd: Command) -> HandlerResult {
    match cmd {
        Command::Sync(a) | Command::SyncDelimited(a) => Ok(json!(a.id)),
        Command::Ping => Ok(json!({})),
        Command::Info => Ok(info::guest_info(state.freeze.is_frozen())),
        Command::GetTime => info::get_time(),
        Command::GetOsInfo => Ok(info::get_osinfo()),
        Command::GetHostName => info::get_host_name(),
        Command::GetLoad => info::get_load(),
        Command::GetUptime => info::get_uptime(),
        Command::GetFsInfo => fsinfo::get_fsinfo(),
        Command::GetMemoryBlockInfo => stats::get_memory_block_info(),
        Command::GetCpuStats => stats::get_cpustats(),
        Command::GetDiskStats => stats::get_diskstats(),
        Command::GetMeminfo => stats::get_meminfo(),
        Command::NetworkGetInterfaces => net::get_interfaces(),
        Command::FsfreezeStatus => Ok(Value::from(state.freeze.status())),
        Command::FsfreezeFreeze => state.freeze.freeze(None),
        Command::FsfreezeFreezeList(a) => state.freeze.freeze(a.mountpoints.as_deref()),
        Command::FsfreezeThaw => Ok(json!(state.freeze.thaw())),
        Command::Exec(a) => state.exec.spawn(a),
        Command::ExecStatus(a) => state.exec.status(a.pid),
        Command::SetUserPassword(a) => password::set_user_password(a),
        Command::Shutdown(a) => shutdown::request(state, a),
        Command::FileOpen(a) => state.files.open(a),
        Command::FileClose(a) => state.files.close(a.handle),
        Command::FileRead(a) => state.files.read(a),
        Command::FileWrite(a) => state.files.write(a),
        Command::FileSeek(a) => state.files.seek(a),
        Command::FileFlush(a) => state.files.flush(a.handle),
    }
}
