//! Jitter: a small seeded generator (xorshift64*) for spreading refreshes and backoffs, so that
//! nodes started together do not act together. Not for anything secret.

use std::hash::{BuildHasher, RandomState};

/// A seeded source of fractions in `[0, 1)`.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from `seed` (the same seed gives the same sequence: the fleet simulator).
    pub fn new(seed: u64) -> Self {
        Jitter(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A generator seeded from the process's random hasher keys.
    pub fn random_seed() -> u64 {
        RandomState::new().hash_one(std::time::SystemTime::now())
    }

    /// The next fraction in `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let out = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (out >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_stay_in_range_and_spread() {
        let mut j = Jitter::new(1);
        let xs: Vec<f64> = (0..1000).map(|_| j.fraction()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let low = xs.iter().filter(|x| **x < 0.5).count();
        assert!((400..600).contains(&low), "{low}");
    }
}
