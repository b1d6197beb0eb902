//! Shared code of the examples: the synthetic population the simulator drives.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod simulation;
