//! csi-provider-aws: an AWS Secrets Manager and Parameter Store provider for the Kubernetes
//! Secrets Store CSI driver.
//!
//! # Module map
//!
//! Modules follow the data's path (the public ones are what `main`, the fuzz targets and the
//! tests call; the rest is `pub(crate)`). Each owns one concern and imports only the modules listed
//! beside it, all of them on a lower layer: no module imports one above it or beside it, and
//! nothing below `cli` imports `cli` (each flag group lives beside the code it configures, and
//! `app` builds the running parts from the parsed flags).
//!
//! | layer | module | owns | may import |
//! |---|---|---|---|
//! | 0 | `sync`, `secret`, `codes`, `units`, `error_text` | the poison-ignoring lock and per-key gates (concurrent callers of one key take turns); redacting byte newtypes; stable error codes; duration, size and provider-name flag values; an error and its causes as text | — |
//! | 0 | `jitter` | a seeded generator of fractions (TTL jitter, backoff jitter) | — |
//! | 0 | `connections`, `authority`, `telemetry` | the socket's connection bound; driver v1.5's path-shaped `:authority`; logging set-up and `LogArgs` (typed level and format) | — |
//! | 1 | `clock` | time, injected (the real clock in production, a manual one in tests) | `sync` |
//! | 1 | `jmes` | jmesPath extraction | `secret` |
//! | 1 | `write` | the atomic `..data` swap into a target path, target checks | `codes`, `secret`, `sync` |
//! | 2 | `params` | SecretProviderClass attributes, `objects` descriptors, file names, the `objects` memo | `codes`, `jmes`, `secret`, `sync` |
//! | 3 | `decode` | `objectEncoding`: base64, hex, utf-8 | `params`, `secret` |
//! | 3 | `read` | the vocabulary of a read: items, answers, errors, route, service, the per-mount scope, call keys | `codes`, `params`, `secret`, `sync` |
//! | 4 | `net` | the network path to AWS without SDK types: addresses, allowlist, resolver, proxy, CA bundle, `NetworkArgs` | `params`, `read` |
//! | 4 | `budget` | this node's share of the account-wide AWS quotas: planned calls admitted per (account and Region, API), re-sync refreshes queued at its pace, adaptive backoff after throttling | `clock`, `jitter`, `read`, `sync` |
//! | 4 | `k8s` | the only user of `kube`: service accounts (cached on the clock, refreshed ahead of expiry), node region | `clock`, `params`, `sync` |
//! | 5 | `aws` | the only user of AWS SDK types: clients, endpoints (`EndpointFlag`), STS, reading Secrets Manager and Parameter Store, error classification, call counting, audit | `budget`, `clock`, `codes`, `error_text`, `net`, `params`, `read`, `secret`, `sync` |
//! | 5 | `cache` | the identity-scoped value cache (per-store TTLs, jitter, the stale window) | `clock`, `jitter`, `params`, `read`, `sync` |
//! | 5 | `events` | `--rotation-events`: the `SecretRotated` event on a pod, rate limited per node, fire and forget | `clock`, `k8s`, `sync` |
//! | 5 | `render` | answers → files and object versions (`objectEncoding`, `jsonKeys`, bulk items) | `decode`, `jmes`, `params`, `read`, `secret`, `write` |
//! | 6 | `metrics` | the Prometheus registry, process metrics | `budget`, `cache`, `codes`, `events`, `read` |
//! | 6 | `identity` | the pod's credentials (IRSA, Pod Identity), their cache, where a mount's credentials come from; `assumeRoleArn` (role chaining, `--allowed-assume-role`) | `aws`, `clock`, `codes`, `k8s`, `params`, `read`, `sync` |
//! | 6 | `fetch` | reading through the cache, coalescing identical reads in flight, the budget's admission, stale-if-throttled; the `Reader` it reads through | `aws`, `budget`, `cache`, `codes`, `read`, `sync` |
//! | 7 | `fleet` | the fleet simulator: N nodes' fetchers on tokio's paused clock against a simulated AWS | `aws`, `budget`, `cache`, `clock`, `codes`, `fetch`, `jitter`, `params`, `read`, `secret`, `sync` |
//! | 7 | `mount` | one `Mount`: parameters → region → credentials → fetch (failover) → render → write → rotation event | `budget`, `codes`, `events`, `fetch`, `identity`, `k8s`, `net`, `params`, `read`, `render`, `sync`, `write` |
//! | 7 | `admin` | `/metrics`, `/healthz`, `/readyz`, `MetricsAddr` | `metrics` |
//! | 8 | `service` | the gRPC service: protobuf ⇄ domain, error → status | `codes`, `metrics`, `mount`, `pb`, `render`, `telemetry` |
//! | 9 | `server` | the socket's lifecycle: bind, serve, drain, exit | `admin`, `authority`, `connections`, `net`, `pb`, `service` |
//! | 9 | `client` | the `mount` client and its `MountArgs` | `error_text`, `params`, `pb`, `secret`, `telemetry`, `units`, `write` |
//! | 10 | `doctor` | `doctor` and its `DoctorArgs` | `aws`, `client`, `clock`, `k8s`, `net`, `read`, `telemetry`, `units` |
//! | 11 | `cli` | the command line: subcommands, serve flags (composing the groups above) | `admin`, `aws`, `budget`, `client`, `doctor`, `identity`, `net`, `telemetry`, `units` |
//! | 12 | `app` | wiring the serve flags into a running provider | anything below |
//!
//! `pb` (generated protobuf types) is imported only by `service`, `server` and `client`.

pub(crate) mod admin;
pub mod app;
#[doc(hidden)] // entry points of the fuzz targets, not API
pub mod authority;
pub(crate) mod aws;
pub(crate) mod budget;
pub(crate) mod cache;
pub mod cli;
pub mod client;
pub mod clock;
#[doc(hidden)] // the error codes the hidden entry points return, not API
pub mod codes;
pub(crate) mod connections;
pub(crate) mod decode;
pub mod doctor;
pub(crate) mod error_text;
pub(crate) mod events;
pub(crate) mod fetch;
#[doc(hidden)] // the fleet simulator's entry point (scripts/bench.sh fleet), not API
pub mod fleet;
#[doc(hidden)] // the agent-answer parser the fuzz targets call, not API
pub mod identity;
mod jitter;
#[doc(hidden)] // entry points of the fuzz targets, not API
pub mod jmes;
pub(crate) mod k8s;
pub(crate) mod metrics;
pub(crate) mod mount;
pub(crate) mod net;
#[doc(hidden)] // entry points of the fuzz targets, not API
pub mod params;
pub(crate) mod read;
pub(crate) mod render;
#[doc(hidden)] // the redacting types the hidden entry points return, not API
pub mod secret;
pub(crate) mod server;
pub(crate) mod service;
mod sync;
pub mod telemetry;
pub(crate) mod units;
pub(crate) mod write;

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
