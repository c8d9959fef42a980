//! Load and soak on the real binary (issue 11): the provider as on a node (IRSA, each pod its own
//! token, service accounts on the Kubernetes API stand-in, moto behind the recording proxy as AWS,
//! targets on tmpfs), driven over one connection as the driver does.
//!
//! - [`burst::five_hundred_concurrent_mounts`] (runs in `cargo test`): 500 pods mount at once,
//!   then re-sync at once; every target holds a complete, correct set, no mount fails, the AWS and
//!   Kubernetes calls are counted, the provider's RSS and descriptors stay bounded and its log has
//!   no warning.
//! - [`soak::soak`] (`#[ignore]`d; `scripts/soak.sh`, default 600 s, and `scripts/test.sh soak`,
//!   60 s): pods re-sync in a loop while a rotator changes the values in moto every few seconds and
//!   reader threads check that every read sees one consistent set; RSS and descriptors are
//!   sampled and must stay flat.
//!
//! Each test prints its figures and writes them to `<target>/tmp/load/<test>.md`.

#[path = "../integration/support/mod.rs"]
mod support;

mod burst;
mod figures;
mod pods;
mod process;
mod readers;
mod set;
mod soak;
