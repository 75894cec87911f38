//! The meta-protocol client (being written).
