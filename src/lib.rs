//! csi-provider-aws: an AWS Secrets Manager and Parameter Store provider for the Kubernetes
//! Secrets Store CSI driver.
//!
//! Modules follow the data's path: the gRPC service ([`service`]) turns a request into
//! [`params`], [`mount`] resolves identity and reads AWS through [`aws`], renders files
//! ([`jmes`]) and writes them ([`write`]) or returns them; [`versions`] reports what was mounted.

pub mod admin;
pub mod app;
pub mod authority;
pub mod aws;
pub mod cache;
pub mod cli;
pub mod client;
pub mod codes;
pub mod connections;
pub mod doctor;
pub mod error_text;
pub mod fetch;
pub mod identity;
pub mod jmes;
pub mod k8s;
pub mod metrics;
pub mod mount;
pub mod net;
pub mod params;
pub mod render;
pub mod secret;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod write;

/// The driver's provider API (`v1alpha1`), generated from `proto/provider.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("v1alpha1");
}

/// The name this provider reports in `Version` and in its user agent.
pub const RUNTIME_NAME: &str = "csi-provider-aws";
/// The stack of every runtime thread. Bounded recursion (jmesPath, YAML, JSON) needs far less
/// (see `jmes::MAX_OPERATORS`); the margin over tokio's 2 MiB default costs only address space.
pub const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// The crate version, reported in `Version` and in the user agent.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");
