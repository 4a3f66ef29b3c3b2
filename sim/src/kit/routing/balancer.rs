//! Load balancing over a changing set of backends.

use super::RouteTarget;
use crate::kit::ConfigError;
use crate::process::{Ctx, Message};
use crate::rng::Stream;
use crate::trace::Component;
use std::fmt;
use std::str::FromStr;

/// How a [`Balancer`] chooses a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    /// Each backend in turn, in id order.
    RoundRobin,
    /// A uniformly random backend.
    Random,
    /// A backend with the fewest requests in progress (ties in turn).
    LeastOutstanding,
    /// Two backends drawn at random; the one with fewer requests in
    /// progress (Mitzenmacher, "The Power of Two Choices in Randomized Load
    /// Balancing", 2001): nearly as good as least-outstanding, without
    /// looking at every backend.
    PowerOfTwoChoices,
}

impl Strategy {
    /// Every strategy, in the order of their names in error messages.
    pub const ALL: [Strategy; 4] = [
        Strategy::RoundRobin,
        Strategy::Random,
        Strategy::LeastOutstanding,
        Strategy::PowerOfTwoChoices,
    ];

    /// The name parsed by [`FromStr`]: `round-robin`, `random`,
    /// `least-outstanding` or `p2c`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::Random => "random",
            Strategy::LeastOutstanding => "least-outstanding",
            Strategy::PowerOfTwoChoices => "p2c",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = ConfigError;

    /// Parses a strategy name; an unknown one is a [`ConfigError`] for
    /// `balancer.strategy` listing the known names.
    fn from_str(text: &str) -> Result<Strategy, ConfigError> {
        Strategy::ALL.into_iter().find(|strategy| strategy.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Strategy::ALL.iter().map(|strategy| strategy.name()).collect();
            ConfigError::new("balancer.strategy", text, format!("one of {}", names.join(", ")))
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot<B> {
    backend: B,
    outstanding: u32,
    picked_count: u64,
}

/// Chooses a backend for each request and tracks the requests in
/// progress at each.
///
/// The pure core is [`Balancer::pick`], [`Balancer::begin`] and
/// [`Balancer::end`]; [`Balancer::dispatch`] and [`Balancer::complete`]
/// do the same from a process, with its random stream, and trace.
///
/// Trace events (component [`Component::Routing`]; key: the backend's
/// [`RouteTarget::stable_id`]): `picked` (value: its requests in progress
/// after this one began), `unavailable` (no backend; key 0),
/// `backend_added` and `backend_removed` (value: backends afterwards).
///
/// ```
/// use sim::kit::routing::{Balancer, Strategy};
/// use sim::{ProcessId, Purpose, Seed, Stream};
///
/// let strategy: Strategy = "least-outstanding".parse().unwrap();
/// let mut balancer = Balancer::with_backends(strategy, [ProcessId(1), ProcessId(2)]);
/// let mut rng = Stream::new(Seed(1), Purpose::Model(0));
/// let first = balancer.pick(&mut rng).unwrap();
/// balancer.begin(first);
/// // The other backend now has fewer requests in progress.
/// let second = balancer.pick(&mut rng).unwrap();
/// assert_ne!(first, second);
/// assert!("fastest".parse::<Strategy>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balancer<B> {
    strategy: Strategy,
    /// Sorted by backend, so membership alone decides the order.
    slots: Vec<Slot<B>>,
    /// Where round robin (and least-outstanding's tie-breaking) goes next.
    cursor: usize,
}

impl<B: RouteTarget> Balancer<B> {
    /// A balancer with no backends yet.
    pub fn new(strategy: Strategy) -> Balancer<B> {
        Balancer { strategy, slots: Vec::new(), cursor: 0 }
    }

    /// A balancer over `backends`.
    pub fn with_backends(strategy: Strategy, backends: impl IntoIterator<Item = B>) -> Balancer<B> {
        let mut balancer = Balancer::new(strategy);
        for backend in backends {
            balancer.add(backend);
        }
        balancer
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The backends, in id order.
    pub fn backends(&self) -> impl Iterator<Item = B> + '_ {
        self.slots.iter().map(|slot| slot.backend)
    }

    /// How many backends there are.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no backends.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Requests in progress at `backend`, if it is a member.
    pub fn outstanding(&self, backend: B) -> Option<u32> {
        self.position(backend).ok().map(|index| self.slots[index].outstanding)
    }

    /// How often `backend` was picked, if it is a member.
    pub fn picked_count(&self, backend: B) -> Option<u64> {
        self.position(backend).ok().map(|index| self.slots[index].picked_count)
    }

    /// Adds a backend; returns false if it was already a member.
    pub fn add(&mut self, backend: B) -> bool {
        let Err(index) = self.position(backend) else { return false };
        self.slots.insert(index, Slot { backend, outstanding: 0, picked_count: 0 });
        // Keep the cursor on the backend it pointed at.
        if index < self.cursor {
            self.cursor += 1;
        }
        true
    }

    /// Removes a backend; returns false if it was not a member. Requests
    /// still in progress there are forgotten.
    pub fn remove(&mut self, backend: B) -> bool {
        let Ok(index) = self.position(backend) else { return false };
        self.slots.remove(index);
        if index < self.cursor {
            self.cursor -= 1;
        }
        true
    }

    /// Chooses a backend by the strategy, drawing from `rng` if it needs
    /// randomness; `None` if there are no backends. Does not count the
    /// request as begun: call [`Balancer::begin`] when it is sent.
    pub fn pick(&mut self, rng: &mut Stream) -> Option<B> {
        let count = self.slots.len();
        if count == 0 {
            return None;
        }
        let index = match self.strategy {
            Strategy::RoundRobin => {
                let index = self.cursor % count;
                self.cursor = index + 1;
                index
            }
            Strategy::Random => rng.below(count as u64) as usize,
            Strategy::LeastOutstanding => {
                let start = self.cursor % count;
                let index = (0..count)
                    .map(|offset| (start + offset) % count)
                    .min_by_key(|&index| self.slots[index].outstanding)
                    .expect("at least one backend");
                self.cursor = index + 1;
                index
            }
            Strategy::PowerOfTwoChoices => {
                let (first, second) = two_choices(count, rng);
                // On a tie the first draw wins, so the pick is never the
                // more loaded of the two.
                if self.slots[second].outstanding < self.slots[first].outstanding {
                    second
                } else {
                    first
                }
            }
        };
        self.slots[index].picked_count += 1;
        Some(self.slots[index].backend)
    }

    /// A request to `backend` began; returns false if it is not a member.
    pub fn begin(&mut self, backend: B) -> bool {
        let Ok(index) = self.position(backend) else { return false };
        let slot = &mut self.slots[index];
        slot.outstanding = slot.outstanding.saturating_add(1);
        true
    }

    /// A request to `backend` ended; returns false if it is not a member
    /// or had nothing in progress (a reply to a request begun before it
    /// was removed and added again, for instance).
    pub fn end(&mut self, backend: B) -> bool {
        let Ok(index) = self.position(backend) else { return false };
        let slot = &mut self.slots[index];
        if slot.outstanding == 0 {
            return false;
        }
        slot.outstanding -= 1;
        true
    }

    /// Picks with the process's random stream, begins the request, and
    /// traces `picked` (or `unavailable` when there is no backend).
    pub fn dispatch<M: Message>(&mut self, ctx: &mut Ctx<'_, M>) -> Option<B> {
        let Some(backend) = self.pick(ctx.rng()) else {
            ctx.trace(Component::Routing, "unavailable", 0, 0);
            ctx.count("routing.unavailable", 1);
            return None;
        };
        self.begin(backend);
        let outstanding = self.outstanding(backend).unwrap_or(0);
        ctx.trace(Component::Routing, "picked", backend.stable_id(), i64::from(outstanding));
        ctx.count("routing.picked", 1);
        Some(backend)
    }

    /// Ends a request to `backend` (see [`Balancer::end`]).
    pub fn complete<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, backend: B) -> bool {
        let ended = self.end(backend);
        if ended {
            ctx.count("routing.completed", 1);
        }
        ended
    }

    /// Adds a backend and traces `backend_added`.
    pub fn add_traced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, backend: B) -> bool {
        let added = self.add(backend);
        if added {
            ctx.trace(Component::Routing, "backend_added", backend.stable_id(), self.len() as i64);
        }
        added
    }

    /// Removes a backend and traces `backend_removed`.
    pub fn remove_traced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, backend: B) -> bool {
        let removed = self.remove(backend);
        if removed {
            ctx.trace(
                Component::Routing,
                "backend_removed",
                backend.stable_id(),
                self.len() as i64,
            );
        }
        removed
    }

    fn position(&self, backend: B) -> Result<usize, usize> {
        self.slots.binary_search_by(|slot| slot.backend.cmp(&backend))
    }
}

/// Two distinct indices below `count`, uniformly: the second is drawn from
/// the `count − 1` others. With one backend both are it.
pub(crate) fn two_choices(count: usize, rng: &mut Stream) -> (usize, usize) {
    if count == 1 {
        return (0, 0);
    }
    let first = rng.below(count as u64) as usize;
    let mut second = rng.below(count as u64 - 1) as usize;
    if second >= first {
        second += 1;
    }
    (first, second)
}
