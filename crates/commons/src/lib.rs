#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config_params;
mod connection_params;
mod connection_resolver;
mod container;
mod context;
mod credential_params;
mod credential_resolver;
mod credential_store;
mod credential_store_factory;
mod descriptor;
mod discovery;
mod discovery_factory;
pub mod error;
mod factory;
mod lifecycle;
mod memory_credential_store;
mod memory_discovery;
mod opener;
mod placeholders;
mod references;

pub use config_params::ConfigParams;
pub use connection_params::{ConnectionParams, host_port};
pub use connection_resolver::{ConnectionResolver, no_connection_error};
pub use container::Container;
pub use context::Context;
pub use credential_params::CredentialParams;
pub use credential_resolver::CredentialResolver;
pub use credential_store::CredentialStore;
pub use credential_store_factory::{
    CREDENTIAL_STORE_FACTORY_DESCRIPTOR, DefaultCredentialStoreFactory,
    MEMORY_CREDENTIAL_STORE_DESCRIPTOR,
};
pub use descriptor::Descriptor;
pub use discovery::Discovery;
pub use discovery_factory::{
    DISCOVERY_FACTORY_DESCRIPTOR, DefaultDiscoveryFactory, MEMORY_DISCOVERY_DESCRIPTOR,
};
pub use error::{Error, ErrorKind, Result, codes};
pub use factory::{Factory, FactoryRegistry, cannot_create};
pub use lifecycle::{Configurable, Openable, Referenceable, Unreferenceable};
pub use memory_credential_store::MemoryCredentialStore;
pub use memory_discovery::MemoryDiscovery;
pub use opener::{Closer, Opener};
pub use placeholders::expand_env;
pub use references::{Component, References};
