#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod check;
pub mod json;
pub mod model;

pub use check::{Report, Trace, TraceStep, check};
pub use model::{Params, Violation};
