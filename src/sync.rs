//! Locking that outlives a panic: a mutex poisoned by a panicking holder is used as it is. Every
//! lock in the crate guards state that stays consistent between statements (maps, counters), so
//! the data a panic left behind is as good as any.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poison.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
