//! Locking that outlives a panic: a mutex poisoned by a panicking holder is used as it is. Every
//! lock in the crate guards state that stays consistent between statements (maps, counters), so
//! the data a panic left behind is as good as any.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poison.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One async gate per key, kept only while someone holds or waits for it: concurrent callers for
/// one key take turns, so the first does the work (a lookup, an STS call) and the rest, checking
/// the cache again once it is their turn, find its result instead of repeating it.
pub(crate) struct Gates<K> {
    gates: Mutex<std::collections::HashMap<K, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl<K> Default for Gates<K> {
    fn default() -> Self {
        Gates { gates: Mutex::new(std::collections::HashMap::new()) }
    }
}

impl<K> std::fmt::Debug for Gates<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates").field("in_flight", &lock(&self.gates).len()).finish()
    }
}

impl<K: std::hash::Hash + Eq + Clone> Gates<K> {
    /// A place in the line for `key`; hold [`Turn::wait`]'s guard while doing the work.
    pub(crate) fn enter(&self, key: &K) -> Turn<'_, K> {
        let gate = lock(&self.gates).entry(key.clone()).or_default().clone();
        Turn { gates: self, key: key.clone(), gate }
    }

    /// Keys with someone holding or waiting for their gate.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.gates).len()
    }
}

/// A place in one key's line. The last one out (finished or cancelled) removes the gate, so the
/// map holds only keys in flight.
pub(crate) struct Turn<'a, K: std::hash::Hash + Eq + Clone> {
    gates: &'a Gates<K>,
    key: K,
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl<K: std::hash::Hash + Eq + Clone> Turn<'_, K> {
    /// Waits until it is this caller's turn; the turn lasts as long as the guard.
    pub(crate) async fn wait(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.gate.lock().await
    }
}

impl<K: std::hash::Hash + Eq + Clone> Drop for Turn<'_, K> {
    fn drop(&mut self) {
        let mut gates = lock(&self.gates.gates);
        // This place and the map's own: nobody else is waiting.
        if std::sync::Arc::strong_count(&self.gate) == 2 {
            gates.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Twenty callers of one key take turns (never two at once), a second key is not held up by
    /// the first, and once everyone is done the map is empty again.
    #[tokio::test]
    async fn one_turn_at_a_time_per_key_and_nothing_left_behind() {
        let gates = Arc::new(Gates::<&'static str>::default());
        let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let first = gates.enter(&"a");
        let held = first.wait().await;
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let (gates, inside, most) = (gates.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let turn = gates.enter(&"a");
                    let _guard = turn.wait().await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let other = gates.enter(&"b");
        drop(other.wait().await);
        drop(other);
        assert_eq!(gates.in_flight(), 1, "only \"a\" is held");
        drop(held);
        drop(first);
        for task in waiting {
            task.await.expect("no panic");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two turns of one key at once");
        assert_eq!(gates.in_flight(), 0, "the last one out removed the gate");
    }
}
