//! Shared code of the examples: reaching the server, admin calls, the synthetic population the
//! simulator drives, and the learned-personalization scenario (`learning`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod learning;
pub mod server;
pub mod simulation;
