//! `--rotation-events`: a Kubernetes Event (reason `SecretRotated`) on the pod when a re-sync
//! swapped in a changed set, naming the objects and their new versions, never a value.
//!
//! Sending is fire and forget: a mount never waits for it and never fails because of it. Events
//! are rate limited per node (a token bucket: `--rotation-events-qps` sustained,
//! `--rotation-events-burst` at once) so a fleet-wide rotation cannot flood the API server, and
//! at most [`MAX_IN_FLIGHT`] are being sent at once; past either, an event is dropped and
//! counted ([`EventObserver`]).

use crate::clock::SharedClock;
use crate::k8s::{K8s, PodEvent};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The event reason.
pub const REASON: &str = "SecretRotated";
/// Events being sent at once, at most.
pub const MAX_IN_FLIGHT: usize = 16;
/// The longest message (the `events.k8s.io` note limit; `core/v1` is looser).
const MAX_MESSAGE: usize = 1024;
/// The longest object name quoted in a message.
const MAX_NAME_SHOWN: usize = 128;
/// How long one send may take before it is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one event: `sent`, `failed`, `rate_limited`, `overloaded`.
pub trait EventObserver: Send + Sync + std::fmt::Debug {
    fn event(&self, outcome: &'static str);
}

/// One rotation to announce: a pod whose name, namespace and UID were validated and match the
/// target path, and the objects whose files changed with their new versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    /// The volume (from the target path), when known.
    pub volume: Option<String>,
    /// `(objectName, new version)`, in `objects` order.
    pub objects: Vec<(String, String)>,
}

/// Announces rotations. Shared by every mount.
#[derive(Debug)]
pub struct RotationEvents {
    k8s: Arc<K8s>,
    node: Option<String>,
    bucket: std::sync::Mutex<Bucket>,
    in_flight: Arc<AtomicUsize>,
    observer: Option<Arc<dyn EventObserver>>,
    clock: SharedClock,
}

#[derive(Debug)]
struct Bucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes a token if one is there (never waits).
    fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl RotationEvents {
    /// Events through `k8s` from `node`, `qps` sustained and `burst` at once, counted by
    /// `observer`, timed on `clock`.
    pub fn new(
        k8s: Arc<K8s>,
        node: Option<String>,
        qps: f64,
        burst: u32,
        observer: Option<Arc<dyn EventObserver>>,
        clock: SharedClock,
    ) -> Self {
        let burst = f64::from(burst.max(1));
        let bucket = Bucket { qps: qps.max(0.0), burst, tokens: burst, last: clock.now() };
        RotationEvents { k8s, node, bucket: std::sync::Mutex::new(bucket), in_flight: Arc::default(), observer, clock }
    }

    /// Sends the event for `rotation` in the background, or drops it (rate limit, too many in
    /// flight). Returns at once.
    pub fn announce(&self, rotation: Rotation) {
        if rotation.objects.is_empty() {
            return;
        }
        if !crate::sync::lock(&self.bucket).try_take(self.clock.now()) {
            tracing::debug!(pod = %rotation.pod, "rotation event dropped: over the per-node rate");
            return self.count("rate_limited");
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(pod = %rotation.pod, "rotation event dropped: too many being sent");
            return self.count("overloaded");
        }
        let event = PodEvent {
            message: message(&rotation),
            namespace: rotation.namespace,
            pod: rotation.pod,
            uid: rotation.uid,
            reason: REASON,
            node: self.node.clone(),
        };
        let (k8s, in_flight, observer) = (self.k8s.clone(), self.in_flight.clone(), self.observer.clone());
        tokio::spawn(async move {
            let outcome = match tokio::time::timeout(SEND_TIMEOUT, k8s.create_pod_event(&event)).await {
                Ok(Ok(())) => "sent",
                Ok(Err(e)) => {
                    tracing::warn!(pod = %format!("{}/{}", event.namespace, event.pod), error = %e, "rotation event not sent");
                    "failed"
                }
                Err(_) => {
                    tracing::warn!(pod = %format!("{}/{}", event.namespace, event.pod), "rotation event not sent: timed out");
                    "failed"
                }
            };
            in_flight.fetch_sub(1, Ordering::AcqRel);
            if let Some(observer) = observer {
                observer.event(outcome);
            }
        });
    }

    fn count(&self, outcome: &'static str) {
        if let Some(observer) = &self.observer {
            observer.event(outcome);
        }
    }
}

/// `Rotated 2 objects in volume secrets: "db" (version 3), "api" (version a1b2)`, cut to
/// [`MAX_MESSAGE`] bytes with `and N more`.
pub fn message(rotation: &Rotation) -> String {
    let count = rotation.objects.len();
    let noun = if count == 1 { "object" } else { "objects" };
    let mut text = match &rotation.volume {
        Some(volume) => format!("Rotated {count} {noun} in volume {volume}:"),
        None => format!("Rotated {count} {noun}:"),
    };
    for (i, (name, version)) in rotation.objects.iter().enumerate() {
        let mut entry = String::new();
        let shown: String = name.chars().take(MAX_NAME_SHOWN).collect();
        let cut = if shown.len() < name.len() { "…" } else { "" };
        let _ = write!(entry, "{} {shown:?}{cut} (version {version})", if i == 0 { "" } else { "," });
        let rest = format!(" and {} more", count - i);
        if text.len() + entry.len() + rest.len() + 16 > MAX_MESSAGE {
            text.push_str(&rest);
            break;
        }
        text.push_str(&entry);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(objects: &[(&str, &str)]) -> Rotation {
        Rotation {
            namespace: "shop".into(),
            pod: "web-0".into(),
            uid: "uid-1".into(),
            volume: Some("secrets".into()),
            objects: objects.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn the_message_names_objects_and_versions_and_is_bounded() {
        assert_eq!(
            message(&rotation(&[("db", "3"), ("api", "a1b2")])),
            r#"Rotated 2 objects in volume secrets: "db" (version 3), "api" (version a1b2)"#
        );
        assert_eq!(message(&rotation(&[("db", "3")])), r#"Rotated 1 object in volume secrets: "db" (version 3)"#);
        let names: Vec<String> = (0..200).map(|i| format!("secret-{i:03}-{}", "n".repeat(40))).collect();
        let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
        let text = message(&rotation(&many));
        assert!(text.len() <= MAX_MESSAGE, "{} bytes", text.len());
        assert!(text.ends_with(" more") && text.starts_with("Rotated 200 objects"), "{text}");
        let long = "x".repeat(2000);
        assert!(message(&rotation(&[(&long, "1")])).len() < 300);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket { qps: 1.0, burst: 2.0, tokens: 2.0, last: start };
        assert!(bucket.try_take(start) && bucket.try_take(start));
        assert!(!bucket.try_take(start), "the burst is spent");
        assert!(!bucket.try_take(start + Duration::from_millis(500)));
        assert!(bucket.try_take(start + Duration::from_millis(1000)), "one more a second later");
        assert!(!bucket.try_take(start + Duration::from_millis(1000)));
    }
}
