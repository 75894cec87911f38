#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![allow(dead_code)] // while the lock layer is being written on top of the client

mod client;
