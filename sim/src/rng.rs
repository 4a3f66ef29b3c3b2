//! Seeded randomness: one master [`Seed`], one ChaCha stream per purpose.
//!
//! Every random draw in a run comes from a [`Stream`] derived from the master
//! seed. Purposes never share a stream, so changing the fault schedule (which
//! draws from [`Purpose::Faults`]) leaves the workload's arrivals untouched,
//! and variants compared side by side see the same arrivals (common random
//! numbers). This is the only module that names `rand_chacha`.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The master seed of a run. There is deliberately no `Default`: a library
/// caller must choose a seed, and only the command line may pick one at random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seed(pub u64);

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a stream of random numbers is used for. Each purpose maps to its own
/// ChaCha stream number, so purposes are statistically independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Purpose {
    /// Arrivals and request contents.
    Workload,
    /// Link latency, loss, duplication and reordering.
    Network,
    /// Randomly injected faults (swarm testing).
    Faults,
    /// Tie-breaking between simultaneous events, where a model asks for it.
    Scheduler,
    /// A process's own decisions; indexed by the process id.
    Process(u32),
    /// Free streams for models built on the engine (service times of a
    /// queueing station, for instance), indexed by the model.
    Model(u32),
}

impl Purpose {
    /// The ChaCha stream number of this purpose. Fixed forever: changing it
    /// changes every trace hash.
    fn stream_number(self) -> u64 {
        match self {
            Purpose::Workload => 1,
            Purpose::Network => 2,
            Purpose::Faults => 3,
            Purpose::Scheduler => 4,
            Purpose::Process(id) => (1 << 32) | u64::from(id),
            Purpose::Model(id) => (2 << 32) | u64::from(id),
        }
    }
}

/// One independent stream of random numbers.
#[derive(Clone, Debug)]
pub struct Stream {
    rng: ChaCha8Rng,
}

impl Stream {
    /// The stream for `purpose` under `seed`.
    pub fn new(seed: Seed, purpose: Purpose) -> Stream {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.0);
        rng.set_stream(purpose.stream_number());
        Stream { rng }
    }

    /// A uniformly distributed `u64`.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A uniform float in the half-open interval `[0, 1)`, with 53 random
    /// bits (the standard conversion; exact on every platform).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform float in the open interval `(0, 1]`, safe to take the
    /// logarithm of.
    #[inline]
    pub fn unit_open_zero(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..bound` (Lemire's method, unbiased).
    /// `bound` must be positive.
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0) has no valid answer");
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.rng.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// `true` with probability `p` (clamped to `[0, 1]`). Draws nothing when
    /// `p` is zero, so a disabled fault costs no randomness and leaves the
    /// stream's later draws unchanged.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_independent_and_reproducible() {
        let seed = Seed(42);
        let mut workload = Stream::new(seed, Purpose::Workload);
        let mut network = Stream::new(seed, Purpose::Network);
        let mut workload_again = Stream::new(seed, Purpose::Workload);
        let first = workload.next_u64();
        assert_eq!(first, workload_again.next_u64());
        assert_ne!(first, network.next_u64());
        assert_ne!(
            Stream::new(seed, Purpose::Process(0)).next_u64(),
            Stream::new(seed, Purpose::Model(0)).next_u64()
        );
    }

    #[test]
    fn below_stays_in_range_and_unit_in_interval() {
        let mut stream = Stream::new(Seed(7), Purpose::Scheduler);
        for bound in [1, 2, 3, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(stream.below(bound) < bound);
            }
        }
        for _ in 0..1000 {
            let u = stream.unit();
            assert!((0.0..1.0).contains(&u));
            let v = stream.unit_open_zero();
            assert!(v > 0.0 && v <= 1.0);
        }
    }
}
