//! Time, injected: the value cache, the batch policy and the credential cache read the clock
//! they are handed, so tests (and a fleet simulator) can drive time. Production hands them
//! [`system`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A source of the current time, monotonic and wall-clock.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current monotonic instant.
    fn now(&self) -> Instant;
    /// The current wall-clock time (compared with credential expiry times).
    fn system_now(&self) -> SystemTime;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The real clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: it starts at the real time of its creation and
/// [`ManualClock::advance`] moves both of its readings together.
#[derive(Debug)]
pub struct ManualClock {
    instant: Instant,
    system: SystemTime,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the real time now.
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock { instant: Instant::now(), system: SystemTime::now(), offset: Mutex::default() })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *crate::sync::lock(&self.offset) += by;
    }

    fn offset(&self) -> Duration {
        *crate::sync::lock(&self.offset)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.instant + self.offset()
    }

    fn system_now(&self) -> SystemTime {
        self.system + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_both_readings_together() {
        let clock = ManualClock::new();
        let (instant, system) = (clock.now(), clock.system_now());
        assert_eq!((clock.now(), clock.system_now()), (instant, system));
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - instant, Duration::from_secs(90));
        assert_eq!(clock.system_now().duration_since(system).ok(), Some(Duration::from_secs(90)));
    }
}
