//! The workload: which orders arrive, with what contents, and when.
//!
//! Everything here draws only from the workload streams of the seed, so
//! all three architectures in one comparison see the identical sequence of
//! orders (common random numbers): ids, lines, prices, declined cards and,
//! for an open loop, arrival times.

use crate::domain::{CardOutcome, CustomerId, Line, Lines, OrderId, PlaceOrder, ProductId};
use crate::scenario::{Arrivals, RateChange, Workload};
use sim::{Purpose, Seed, SimDuration, SimTime, Stream};

/// The stream number (within [`Purpose::Model`]) for order contents, kept
/// apart from arrival times so a change of rate leaves contents alone.
const CONTENTS_STREAM: u32 = 0x0c0_0001;

/// Generates order contents in a fixed sequence.
pub struct OrderSource {
    stream: Stream,
    workload: Workload,
    /// Cumulative popularity of products (Zipf), for inverse-transform
    /// sampling by binary search.
    popularity: Vec<f64>,
    next_id: u64,
    /// The lines being drawn, reused from order to order so each order
    /// allocates only its shared [`Lines`].
    drawing: Vec<Line>,
}

impl OrderSource {
    /// The source for `seed`.
    pub fn new(workload: &Workload, seed: Seed) -> OrderSource {
        let mut weights: Vec<f64> = (1..=workload.products)
            .map(|rank| 1.0 / libm::pow(f64::from(rank), workload.zipf_exponent))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut running = 0.0;
        for weight in &mut weights {
            running += *weight / total;
            *weight = running;
        }
        OrderSource {
            stream: Stream::new(seed, Purpose::Model(CONTENTS_STREAM)),
            workload: workload.clone(),
            popularity: weights,
            next_id: 1,
            drawing: Vec::new(),
        }
    }

    /// The price of a product: fixed per product, spread over the range.
    pub fn price(workload: &Workload, product: ProductId) -> u64 {
        let span = workload.price_cents_max - workload.price_cents_min + 1;
        // A fixed mix of the id (splitmix64's finaliser) so prices do not
        // follow popularity.
        let mut z = u64::from(product.0).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        workload.price_cents_min + z % span
    }

    /// The next order.
    pub fn next_order(&mut self) -> PlaceOrder {
        let workload = &self.workload;
        let line_count = workload.lines_min
            + self.stream.below(u64::from(workload.lines_max - workload.lines_min) + 1) as u32;
        let lines = &mut self.drawing;
        lines.clear();
        for _ in 0..line_count {
            let u = self.stream.unit();
            let index = self.popularity.partition_point(|cumulative| *cumulative <= u);
            let product = ProductId(index.min(self.popularity.len() - 1) as u32);
            let quantity = 1 + self.stream.below(u64::from(workload.quantity_max)) as u32;
            match lines.iter_mut().find(|line| line.product == product) {
                Some(line) => line.quantity += quantity,
                None => lines.push(Line {
                    product,
                    quantity,
                    unit_price_cents: OrderSource::price(workload, product),
                }),
            }
        }
        let card = if self.stream.chance(workload.decline_rate) {
            CardOutcome::Decline
        } else {
            CardOutcome::Approve
        };
        let order = OrderId(self.next_id);
        self.next_id += 1;
        let customer = CustomerId(self.stream.below(1_000_000) as u32);
        PlaceOrder { order, customer, lines: Lines::from(&self.drawing[..]), card }
    }
}

/// The open-loop rate at `at`, following the profile.
pub fn rate_at(base_per_s: f64, profile: &[RateChange], at: SimDuration) -> f64 {
    let mut rate = base_per_s;
    for change in profile {
        if at < change.at {
            break;
        }
        let before = rate;
        let since = at.as_nanos() - change.at.as_nanos();
        if let Some(lasting) = change.lasting
            && since >= change.ramp.as_nanos() + lasting.as_nanos()
        {
            // A burst that is over: back to the rate before it.
            rate = before;
            continue;
        }
        rate = if change.ramp > SimDuration::ZERO && since < change.ramp.as_nanos() {
            let fraction = since as f64 / change.ramp.as_nanos() as f64;
            before + (change.rate_per_s - before) * fraction
        } else {
            change.rate_per_s
        };
    }
    rate.max(0.0)
}

/// The arrival times of an open loop over `duration`, by thinning a
/// Poisson process at the profile's highest rate (Lewis and Shedler, 1979),
/// so any profile shape gets exact non-homogeneous Poisson arrivals.
pub fn open_arrivals(workload: &Workload, duration: SimDuration, seed: Seed) -> Vec<SimTime> {
    let Arrivals::Open { rate_per_s, profile } = &workload.arrivals else {
        return Vec::new();
    };
    let peak = profile.iter().map(|change| change.rate_per_s).fold(*rate_per_s, f64::max);
    if peak <= 0.0 {
        return Vec::new();
    }
    let mut stream = Stream::new(seed, Purpose::Workload);
    let mut arrivals = Vec::with_capacity((peak * duration.as_secs_f64()) as usize + 16);
    let mut now_ns = 0.0f64;
    let end_ns = duration.as_nanos() as f64;
    loop {
        now_ns += -libm::log(stream.unit_open_zero()) / peak * 1e9;
        if now_ns >= end_ns {
            break;
        }
        let at = SimDuration::from_nanos_f64(now_ns);
        let rate = rate_at(*rate_per_s, profile, at);
        if stream.unit() * peak < rate {
            arrivals.push(SimTime::ZERO + at);
        }
    }
    arrivals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn contents_are_the_same_for_the_same_seed_and_respect_the_bounds() {
        let workload = Scenario::default_named("t").workload;
        let mut first = OrderSource::new(&workload, Seed(3));
        let mut second = OrderSource::new(&workload, Seed(3));
        for _ in 0..200 {
            let order = first.next_order();
            assert_eq!(order, second.next_order());
            assert!(!order.lines.is_empty() && order.lines.len() <= workload.lines_max as usize);
            for line in order.lines.iter() {
                assert!(line.product.0 < workload.products);
                assert!(
                    (workload.price_cents_min..=workload.price_cents_max)
                        .contains(&line.unit_price_cents)
                );
            }
        }
    }

    #[test]
    fn zipf_popularity_favours_low_ranks() {
        let mut workload = Scenario::default_named("t").workload;
        workload.zipf_exponent = 1.2;
        workload.lines_min = 1;
        workload.lines_max = 1;
        let mut source = OrderSource::new(&workload, Seed(1));
        let hits =
            (0..5_000).filter(|_| source.next_order().lines[0].product == ProductId(0)).count();
        // With s = 1.2 over 100 products the top product's share is
        // 1 / H(100, 1.2) = 0.2775 (the generalised harmonic number, summed
        // by hand): 1,388 of 5,000 expected, with a standard deviation of 32.
        assert!((1_290..1_490).contains(&hits), "top product drawn {hits} times of 5000");
    }

    #[test]
    fn open_arrivals_follow_the_rate_profile() {
        let mut workload = Scenario::default_named("t").workload;
        workload.arrivals = Arrivals::Open {
            rate_per_s: 100.0,
            profile: vec![RateChange {
                at: SimDuration::from_secs(10),
                rate_per_s: 300.0,
                ramp: SimDuration::ZERO,
                lasting: None,
            }],
        };
        let arrivals = open_arrivals(&workload, SimDuration::from_secs(20), Seed(9));
        let early = arrivals.iter().filter(|t| t.as_nanos() < 10_000_000_000).count();
        let late = arrivals.len() - early;
        assert!((900..1_100).contains(&early), "{early}");
        assert!((2_800..3_200).contains(&late), "{late}");
        assert!(arrivals.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn a_burst_returns_to_the_earlier_rate() {
        let profile = vec![RateChange {
            at: SimDuration::from_secs(5),
            rate_per_s: 500.0,
            ramp: SimDuration::ZERO,
            lasting: Some(SimDuration::from_secs(1)),
        }];
        assert_eq!(rate_at(100.0, &profile, SimDuration::from_millis(5_500)), 500.0);
        assert_eq!(rate_at(100.0, &profile, SimDuration::from_secs(7)), 100.0);
    }
}
