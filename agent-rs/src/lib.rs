//! NeuroFlow guest agent: a QEMU Guest Agent (QGA) protocol server.
//!
//! Layers, bottom up: [`framing`] splits the byte stream into JSON texts
//! (with 0xFF resync), [`command`] turns a request into a typed
//! [`command::Command`], [`handlers`] run one command each, [`agent`] ties
//! these together as bytes-in/bytes-out, and [`serve`] drives an agent
//! over any `Read + Write` channel. [`device`] and [`signals`] are the
//! Linux-specific parts used by the binary.

pub mod agent;
pub mod args;
pub mod command;
pub mod device;
pub mod error;
pub mod framing;
pub mod handlers;
pub mod serve;
pub mod signals;
pub mod util;

pub use agent::Agent;
pub use error::{AgentError, ErrorClass};
