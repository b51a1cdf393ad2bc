//! Shared plumbing, below every other module: what several layers need and none of them owns.
//!
//! Arrows point down only: nothing here knows about specs, registries, plans or engines, so any
//! module may use it without making a cycle.
//!
//! * [`dirs`]: the cache folder, one rule for every cache.
//! * [`exec`]: the program runner (output streamed and redacted, timeout, the process-wide
//!   cancel flag Ctrl-C sets) and `which`.
//! * [`fs`]: folders and files only this user can read or change: the one temporary folder
//!   type and the atomic writer of every cache.
//! * [`runtime`]: the process's one tokio runtime, made on first use.

pub mod dirs;
pub mod exec;
pub mod fs;
pub mod runtime;
