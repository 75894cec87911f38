#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config_params;
mod connection_params;
mod context;
mod descriptor;
mod discovery;
pub mod error;
mod factory;
mod lifecycle;
mod memory_discovery;
mod references;

pub use config_params::ConfigParams;
pub use connection_params::ConnectionParams;
pub use context::Context;
pub use descriptor::Descriptor;
pub use discovery::Discovery;
pub use error::{Error, ErrorKind, Result, codes};
pub use factory::{Factory, FactoryRegistry, cannot_create};
pub use lifecycle::{Configurable, Openable, Referenceable, Unreferenceable};
pub use memory_discovery::MemoryDiscovery;
pub use references::{Component, References};
