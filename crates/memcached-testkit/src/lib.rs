#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod error;
mod proxy;
mod server;
mod target;

pub use error::TestkitError;
pub use proxy::{FaultProxy, ReplyRewriter};
pub use server::{MemcachedServer, ServerBuilder, memcached_available};
pub use target::{HOST_VAR, PORT_VAR, ServerTarget};
