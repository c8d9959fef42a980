//! The integration tests, one test crate: the real binary over the real socket, against moto and
//! HTTP stand-ins (`support`). One crate builds the shared support once and links once, where a
//! crate per file rebuilt and relinked it for each. Run one file's tests with
//! `cargo test --test integration NAME::` (e.g. `identity::`).
//!
//! The load and soak suite (`tests/load/`) stays a crate of its own: it measures the provider
//! alone, one test at a time (`scripts/soak.sh`).

mod support;

mod all_features;
mod assume_role;
mod doctor;
mod error_text;
mod faults;
mod features;
mod fuzz_regressions;
mod harness;
mod identity;
mod metrics;
mod mount;
mod mount_client;
mod networking;
mod resync;
mod rotation_events;
mod server;
