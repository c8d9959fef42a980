//! Plumbing of the re-sync benchmark: the fake AWS/Kubernetes endpoint and the provider process.

pub mod fake;
pub mod provider;
