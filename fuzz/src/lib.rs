//! The fuzz targets' bodies ([`targets`], shared with `cargo test`) and what the libFuzzer
//! binaries need besides ([`signals`]).

pub mod signals;
pub mod targets;

pub use targets::*;
