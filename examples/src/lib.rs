//! Shared code of the examples: reaching the server, admin calls, and the synthetic population
//! the simulator drives.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod server;
pub mod simulation;
