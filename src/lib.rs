//! csi-provider-aws: an AWS Secrets Manager and Parameter Store provider for the Kubernetes
//! Secrets Store CSI driver.
//!
//! # Module map
//!
//! Modules follow the data's path. Each owns one concern and imports only the modules listed
//! beside it, all of them on a lower layer: no module imports one above it or beside it, and
//! nothing below `cli` imports `cli` (each flag group lives beside the code it configures, and
//! [`app`] builds the running parts from the parsed flags).
//!
//! | layer | module | owns | may import |
//! |---|---|---|---|
//! | 0 | `sync`, [`clock`] | the poison-ignoring lock; time, injected (the real clock in production) | — |
//! | 0 | [`secret`], [`codes`], [`units`] | redacting byte newtypes; stable error codes; duration and size flag values | — |
//! | 0 | [`connections`], [`authority`] | the socket's connection bound; driver v1.5's path-shaped `:authority` | — |
//! | 1 | [`jmes`] | jmesPath extraction | `secret` |
//! | 1 | [`write`](mod@write) | the atomic `..data` swap into a target path, target checks | `codes`, `secret`, `sync` |
//! | 1 | [`params`] | SecretProviderClass attributes, `objects` descriptors, file names, the `objects` memo | `codes`, `jmes`, `secret`, `sync` |
//! | 2 | [`read`] | the vocabulary of a read: items, answers, errors, route, service, the per-mount scope, call keys | `codes`, `params`, `secret`, `sync` |
//! | 3 | [`net`] | the network path to AWS without SDK types: addresses, allowlist, resolver, proxy, CA bundle, `NetworkArgs` | `params`, `read` |
//! | 3 | [`k8s`] | the only user of `kube`: service accounts, node region | `params`, `sync` |
//! | 3 | [`telemetry`] | logging set-up, `LogArgs` (typed level and format) | — |
//! | 4 | [`aws`] | the only user of AWS SDK types: clients, endpoints (`EndpointFlag`), STS, reading Secrets Manager and Parameter Store, error classification, call counting, audit | `clock`, `codes`, `net`, `params`, `read`, `secret`, `sync` |
//! | 4 | [`cache`] | the identity-scoped value cache | `clock`, `read`, `sync` |
//! | 4 | [`render`] | answers → files and object versions | `jmes`, `params`, `read`, `secret`, `write` |
//! | 4 | [`metrics`] | the Prometheus registry | `cache`, `read` |
//! | 5 | [`identity`] | the pod's credentials (IRSA, Pod Identity), their cache, where a mount's credentials come from | `aws`, `clock`, `codes`, `k8s`, `params`, `read`, `sync` |
//! | 5 | [`fetch`] | reading through the cache, coalescing identical reads in flight | `aws`, `cache`, `read`, `sync` |
//! | 6 | [`mount`] | one `Mount`: parameters → region → credentials → fetch (failover) → render → write | `codes`, `fetch`, `identity`, `k8s`, `net`, `params`, `read`, `render`, `sync`, `write` |
//! | 7 | [`service`], [`admin`] | the gRPC service (protobuf ⇄ domain, error → status); `/metrics`, `/healthz`, `/readyz`, `MetricsAddr` | `codes`, `metrics`, `mount`, `pb`, `render`; `metrics` |
//! | 8 | [`server`] | the socket's lifecycle: bind, serve, drain, exit | `admin`, `authority`, `connections`, `net`, `pb`, `service` |
//! | 8 | [`doctor`], [`client`] | `doctor` (and `DoctorArgs`); the `mount` client (and `MountArgs`) | `aws`, `k8s`, `net`, `read`, `telemetry`, `units`; `params`, `pb`, `secret`, `telemetry`, `units`, `write` |
//! | 9 | [`cli`] | the command line: subcommands, serve flags (composing the groups above) | `admin`, `aws`, `client`, `doctor`, `net`, `telemetry`, `units` |
//! | 10 | [`app`] | wiring the serve flags into a running provider | anything below |
//!
//! [`pb`] (generated protobuf types) is imported only by `service`, `server` and `client`.

pub mod admin;
pub mod app;
pub mod authority;
pub mod aws;
pub mod cache;
pub mod cli;
pub mod client;
pub mod clock;
pub mod codes;
pub mod connections;
pub mod doctor;
pub mod fetch;
pub mod identity;
pub mod jmes;
pub mod k8s;
pub mod metrics;
pub mod mount;
pub mod net;
pub mod params;
pub mod read;
pub mod render;
pub mod secret;
pub mod server;
pub mod service;
mod sync;
pub mod telemetry;
pub mod units;
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
