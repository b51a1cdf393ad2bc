//! The process's one tokio runtime: registry checks, inspects, native pushes and the plan's batch
//! check all run on it.
//!
//! It is made by the first caller that needs it, never at import (`import imagespec` starts no
//! threads), and kept for the life of the process: a runtime per call would start threads and
//! lose the connection pools every time.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// The process's one runtime, created by the first check (never at import).
pub fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("imagespec-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Registry(format!("cannot start the I/O runtime: {e}")))
}
