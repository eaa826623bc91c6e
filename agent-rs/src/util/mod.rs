//! Small self-contained helpers (kept in-tree to keep the binary small).

pub mod base64;
pub mod sha512;
pub mod sha512crypt;
pub mod text;
