//! Small, deterministic statistics for reading simulation output.
//!
//! A single simulated run gives one long, autocorrelated sequence of
//! observations (for example each customer's time in system). To put a
//! confidence interval on its mean, `batch_means_ci95` uses the method of
//! batch means: long contiguous batches have nearly independent means, to
//! which the Student t interval then applies.
//!
//! Sums are compensated and the mean is refined with a second pass, so a
//! large shared offset (late timestamps, say) costs little precision and
//! constant data gives exactly zero spread.

use serde::{Serialize, Serializer};

/// The arithmetic mean of `xs`, or NaN when `xs` is empty.
///
/// Computed in two passes: a compensated (Neumaier) sum gives a first
/// estimate, then the compensated mean of the residuals corrects it. The
/// correction makes the mean of n copies of y come out as exactly y, which
/// a single rounded sum divided by n does not guarantee.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let count = xs.len() as f64;
    let estimate = compensated_sum(xs.iter().copied()) / count;
    if !estimate.is_finite() {
        return estimate;
    }
    estimate + compensated_sum(xs.iter().map(|x| x - estimate)) / count
}

/// The unbiased sample variance of `xs` (denominator n − 1), or NaN when
/// there are fewer than two values.
///
/// Uses the corrected two-pass algorithm (Chan, Golub and LeVeque):
/// Σ(x − m)² − (Σ(x − m))²/n, over n − 1. Subtracting the mean first avoids
/// the catastrophic cancellation of the one-pass Σx² − n·m² formula when the
/// values share a large offset (times late in a long run, say), and the
/// second term cancels what rounding left in the mean.
pub fn sample_variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let count = xs.len() as f64;
    let centre = mean(xs);
    let sum_of_squares = compensated_sum(xs.iter().map(|x| (x - centre) * (x - centre)));
    let sum_of_deviations = compensated_sum(xs.iter().map(|x| x - centre));
    let variance = (sum_of_squares - sum_of_deviations * sum_of_deviations / count) / (count - 1.0);
    // Mathematically never negative (Cauchy–Schwarz); rounding could make it
    // −0 or a hair below. Written out rather than `max(0.0)`, which would
    // turn a NaN (from NaN data) into a misleading 0.
    if variance < 0.0 { 0.0 } else { variance }
}

/// The 0.975 quantile of Student's t distribution with
/// `degrees_of_freedom` degrees of freedom: the multiplier of a two-sided
/// 95% confidence interval.
///
/// Degrees of freedom 1 to 30, 40, 60 and 120 come from a table of exact
/// values. In between, and beyond 120 towards the normal quantile
/// 1.959964, the value is interpolated linearly in 1/df, along which the
/// quantile is very nearly straight; the error is below 6e-5 everywhere.
/// Zero degrees of freedom give infinity: with no information about the
/// spread, no finite interval is justified.
pub fn student_t_975(degrees_of_freedom: u32) -> f64 {
    if degrees_of_freedom == 0 {
        return f64::INFINITY;
    }
    if let Some(&value) = T_975_BY_DF.get(degrees_of_freedom as usize - 1) {
        return value;
    }
    let df = f64::from(degrees_of_freedom);
    for pair in T_975_ANCHORS.windows(2) {
        let (low_df, low_t) = pair[0];
        let (high_df, high_t) = pair[1];
        if degrees_of_freedom == high_df {
            return high_t;
        }
        if degrees_of_freedom < high_df {
            let low_inverse = 1.0 / f64::from(low_df);
            let high_inverse = 1.0 / f64::from(high_df);
            let weight = (low_inverse - 1.0 / df) / (low_inverse - high_inverse);
            return low_t + weight * (high_t - low_t);
        }
    }
    // Past the last anchor, 1/df runs from 1/120 down to 0, where t equals z.
    let (last_df, last_t) = T_975_ANCHORS[T_975_ANCHORS.len() - 1];
    NORMAL_975 + (last_t - NORMAL_975) * f64::from(last_df) / df
}

/// A closed interval \[low, high\], such as a confidence interval.
///
/// It serialises as the two-element array `[low, high]`, the shape the JSON
/// report uses for fields like `ci95_time_in_system`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The lower end, included.
    pub low: f64,
    /// The upper end, included.
    pub high: f64,
}

impl Interval {
    /// Whether `x` lies in the interval, ends included.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }

    /// Half the interval's width: the "±" of a confidence interval.
    pub fn half_width(&self) -> f64 {
        (self.high - self.low) / 2.0
    }

    /// The centre of the interval: the point estimate of a symmetric
    /// confidence interval.
    pub fn midpoint(&self) -> f64 {
        self.low + self.half_width()
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        [self.low, self.high].serialize(serializer)
    }
}

/// A 95% confidence interval for the steady-state mean of `observations`,
/// by the method of batch means.
///
/// The observations (with the warm-up already removed by the caller) are cut
/// into `batch_count` contiguous batches of equal size ⌊n/b⌋; the few left
/// over at the end are dropped so every batch mean has the same variance.
/// If the batches are long compared with the correlation time of the
/// sequence, their means are close to independent and normal, so the
/// interval is the grand mean ± t(0.975, b − 1)·s/√b, where s is the sample
/// standard deviation of the b batch means. Ten to thirty batches is the
/// usual advice: fewer widen the t multiplier, more shorten the batches
/// until they are correlated.
///
/// Returns `None` with fewer than two batches or fewer observations than
/// batches (no spread can be estimated), and when the data are not finite.
pub fn batch_means_ci95(observations: &[f64], batch_count: usize) -> Option<Interval> {
    if batch_count < 2 || observations.len() < batch_count {
        return None;
    }
    let batch_size = observations.len() / batch_count;
    let batch_means: Vec<f64> =
        observations.chunks_exact(batch_size).take(batch_count).map(mean).collect();
    let grand_mean = mean(&batch_means);
    let degrees_of_freedom = u32::try_from(batch_count - 1).unwrap_or(u32::MAX);
    let standard_error = libm::sqrt(sample_variance(&batch_means) / batch_count as f64);
    let half_width = student_t_975(degrees_of_freedom) * standard_error;
    if !(grand_mean.is_finite() && half_width.is_finite()) {
        return None;
    }
    Some(Interval { low: grand_mean - half_width, high: grand_mean + half_width })
}

/// t(0.975, df) for df = 1..=30, index df − 1. Computed to 12 significant
/// digits from the regularised incomplete beta function (mpmath), and
/// matching the printed tables (e.g. Abramowitz & Stegun table 26.10).
const T_975_BY_DF: [f64; 30] = [
    12.7062047362,
    4.30265272975,
    3.18244630528,
    2.77644510520,
    2.57058183564,
    2.44691185114,
    2.36462425159,
    2.30600413520,
    2.26215716280,
    2.22813885199,
    2.20098516009,
    2.17881282967,
    2.16036865646,
    2.14478668792,
    2.13144954556,
    2.11990529922,
    2.10981557783,
    2.10092204024,
    2.09302405441,
    2.08596344727,
    2.07961384473,
    2.07387306790,
    2.06865761042,
    2.06389856163,
    2.05953855275,
    2.05552943864,
    2.05183051648,
    2.04840714180,
    2.04522964213,
    2.04227245630,
];

/// Exact t(0.975, df) at the classic table rows beyond 30, from the same
/// source; [`student_t_975`] interpolates between them in 1/df.
const T_975_ANCHORS: [(u32, f64); 4] =
    [(30, 2.04227245630), (40, 2.02107539031), (60, 2.00029782201), (120, 1.97993040508)];

/// The standard normal 0.975 quantile, the limit of t as df → ∞.
const NORMAL_975: f64 = 1.959_963_984_540_054;

/// Neumaier's compensated summation: carries the rounding error of each
/// addition separately, so the result is as if summed in about twice the
/// precision, independent of how the magnitudes are ordered.
fn compensated_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut sum = 0.0_f64;
    let mut compensation = 0.0_f64;
    for value in values {
        let next = sum + value;
        if sum.abs() >= value.abs() {
            compensation += (sum - next) + value;
        } else {
            compensation += (value - next) + sum;
        }
        sum = next;
    }
    // Once the sum is infinite or NaN the compensation is NaN; the plain sum
    // is then the honest answer.
    if sum.is_finite() { sum + compensation } else { sum }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 64-bit linear congruential generator (Knuth's MMIX constants), kept
    /// here so the coverage test needs no RNG crate and gives the same
    /// numbers everywhere.
    struct Lcg(u64);

    impl Lcg {
        /// A uniform draw in [0, 1) from the top 53 bits, the good ones of an LCG.
        fn next_unit(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1_u64 << 53) as f64
        }

        /// A roughly standard normal draw: the sum of 12 uniforms minus 6
        /// (Irwin–Hall) has mean 0 and variance exactly 1.
        fn next_normalish(&mut self) -> f64 {
            (0..12).map(|_| self.next_unit()).sum::<f64>() - 6.0
        }
    }

    #[test]
    fn mean_and_variance_known_values() {
        // Goal: the textbook example 2,4,4,4,5,5,7,9 has mean 5 and sample variance 32/7.
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), 5.0);
        assert!((sample_variance(&xs) - 32.0 / 7.0).abs() < 1e-15);
        assert_eq!(sample_variance(&[1.0, 3.0]), 2.0);
    }

    #[test]
    fn variance_survives_a_large_offset() {
        // Goal: values sharing an offset of 1e9 keep their variance (30), which Σx² − n·m² would lose.
        let xs = [1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0];
        assert_eq!(mean(&xs), 1e9 + 10.0);
        assert!((sample_variance(&xs) - 30.0).abs() < 1e-9, "{}", sample_variance(&xs));
    }

    #[test]
    fn constant_data_has_exact_mean_and_zero_variance() {
        // Goal: n copies of y average to exactly y (0.1 is not exact in binary, so rounding is tested).
        for count in [1, 3, 10, 1000, 4321] {
            let xs = vec![0.1; count];
            assert_eq!(mean(&xs), 0.1);
            if count > 1 {
                assert_eq!(sample_variance(&xs), 0.0);
            }
        }
    }

    #[test]
    fn degenerate_inputs_give_nan() {
        // Goal: undefined statistics say so with NaN instead of a plausible number.
        assert!(mean(&[]).is_nan());
        assert!(sample_variance(&[]).is_nan());
        assert!(sample_variance(&[4.0]).is_nan());
        assert!(sample_variance(&[1.0, f64::NAN, 2.0]).is_nan());
    }

    #[test]
    fn t_quantiles_match_the_table() {
        // Goal: spot-check t(0.975, df) to 3 decimals against printed tables.
        let expected = [
            (1, 12.706),
            (2, 4.303),
            (5, 2.571),
            (10, 2.228),
            (19, 2.093),
            (29, 2.045),
            (30, 2.042),
            (40, 2.021),
            (60, 2.000),
            (120, 1.980),
        ];
        for (degrees_of_freedom, value) in expected {
            let actual = student_t_975(degrees_of_freedom);
            assert!((actual - value).abs() < 5e-4, "df={degrees_of_freedom}: {actual} vs {value}");
        }
        assert!((student_t_975(1_000_000) - 1.959964).abs() < 5e-6);
        assert!((student_t_975(u32::MAX) - NORMAL_975).abs() < 1e-9);
        assert_eq!(student_t_975(0), f64::INFINITY);
    }

    #[test]
    fn t_quantiles_beyond_the_table_match_cornish_fisher() {
        // Goal: the 1/df interpolation past df = 30 stays within 1e-4 of the Cornish–Fisher
        // expansion (Abramowitz & Stegun 26.7.5, four terms), itself within 3e-8 of exact there.
        let z = NORMAL_975;
        // Odd powers by multiplication: `powi` may round differently across platforms.
        let z2 = z * z;
        let (z3, z5, z7, z9) = (z * z2, z * z2 * z2, z * z2 * z2 * z2, z * z2 * z2 * z2 * z2);
        let g1 = (z3 + z) / 4.0;
        let g2 = (5.0 * z5 + 16.0 * z3 + 3.0 * z) / 96.0;
        let g3 = (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / 384.0;
        let g4 = (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / 92160.0;
        for degrees_of_freedom in (31..=2000).chain([5000, 10_000, 100_000]) {
            let v = f64::from(degrees_of_freedom);
            let reference = z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v);
            let actual = student_t_975(degrees_of_freedom);
            assert!(
                (actual - reference).abs() < 1e-4,
                "df={degrees_of_freedom}: {actual} vs {reference}"
            );
        }
    }

    #[test]
    fn t_quantiles_fall_towards_the_normal() {
        // Goal: more degrees of freedom never widen the interval, and t never drops below z.
        let mut previous = student_t_975(1);
        for degrees_of_freedom in 2..=20_000 {
            let value = student_t_975(degrees_of_freedom);
            assert!(value <= previous, "df={degrees_of_freedom}: {value} > {previous}");
            assert!(value > NORMAL_975);
            previous = value;
        }
    }

    #[test]
    fn interval_helpers() {
        // Goal: contains() includes both ends; half_width and midpoint describe mean ± h.
        let interval = Interval { low: 1.0, high: 4.0 };
        assert!(interval.contains(1.0));
        assert!(interval.contains(4.0));
        assert!(interval.contains(2.5));
        assert!(!interval.contains(0.999));
        assert!(!interval.contains(f64::NAN));
        assert_eq!(interval.half_width(), 1.5);
        assert_eq!(interval.midpoint(), 2.5);
    }

    #[test]
    fn batch_means_refuses_too_little_data() {
        // Goal: with under two batches, or fewer observations than batches, there is no interval.
        let xs = [1.0, 2.0, 3.0];
        assert_eq!(batch_means_ci95(&xs, 0), None);
        assert_eq!(batch_means_ci95(&xs, 1), None);
        assert_eq!(batch_means_ci95(&xs, 4), None);
        assert_eq!(batch_means_ci95(&[], 2), None);
        assert_eq!(batch_means_ci95(&[1.0, f64::INFINITY], 2), None);
        assert!(batch_means_ci95(&xs, 3).is_some());
    }

    #[test]
    fn batch_means_drops_the_remainder() {
        // Goal: 1..=10 in 3 batches uses 1..=9 (means 2, 5, 8), so the interval is 5 ± t(2)·3/√3.
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        let interval = batch_means_ci95(&xs, 3).unwrap();
        let half_width = student_t_975(2) * 3.0 / libm::sqrt(3.0);
        assert!((interval.midpoint() - 5.0).abs() < 1e-12);
        assert!((interval.half_width() - half_width).abs() < 1e-12);
    }

    #[test]
    fn batch_means_of_constant_data_is_a_point() {
        // Goal: constant observations give the zero-width interval [y, y] exactly.
        let xs = vec![0.7; 1003];
        let interval = batch_means_ci95(&xs, 20).unwrap();
        assert_eq!(interval, Interval { low: 0.7, high: 0.7 });
        assert_eq!(interval.half_width(), 0.0);
        assert!(interval.contains(0.7));
    }

    #[test]
    fn batch_means_covers_the_true_mean_about_95_percent_of_the_time() {
        // Goal: a real coverage check. 100 independent replications of 1,000 iid draws
        // (mean 5, sd 2) in 20 batches; at least 90 intervals must contain 5, and the average
        // half-width must match the theory, so a needlessly wide interval cannot pass either.
        let true_mean = 5.0;
        let standard_deviation = 2.0;
        let (replications, observations_per_run, batch_count) = (100, 1000, 20);
        let mut generator = Lcg(0x5eed_5eed_5eed_5eed);
        let mut covered = 0;
        let mut half_width_sum = 0.0;
        for _ in 0..replications {
            let xs: Vec<f64> = (0..observations_per_run)
                .map(|_| true_mean + standard_deviation * generator.next_normalish())
                .collect();
            let interval = batch_means_ci95(&xs, batch_count).unwrap();
            covered += usize::from(interval.contains(true_mean));
            half_width_sum += interval.half_width();
        }
        assert!(covered >= 90, "only {covered} of {replications} intervals covered the mean");
        // E[s] = c4(20)·σ_batch with c4(20) ≈ 0.98693 and σ_batch = σ/√50.
        let expected_half_width = student_t_975(19) * 0.98693 * standard_deviation
            / libm::sqrt(f64::from(observations_per_run));
        let mean_half_width = half_width_sum / f64::from(replications);
        assert!(
            (mean_half_width / expected_half_width - 1.0).abs() < 0.1,
            "mean half-width {mean_half_width}, expected about {expected_half_width}"
        );
    }

    proptest! {
        // Goal: the mean lies between the extremes, the variance is non-negative, and shifting
        // all data by a constant moves the mean by it and leaves the variance alone.
        #[test]
        fn mean_and_variance_behave_under_shifts(
            xs in prop::collection::vec(-1e6_f64..1e6, 2..200),
            shift in -1e6_f64..1e6,
        ) {
            let low = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let high = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let centre = mean(&xs);
            prop_assert!(low <= centre && centre <= high);
            let variance = sample_variance(&xs);
            prop_assert!(variance >= 0.0);
            let shifted: Vec<f64> = xs.iter().map(|x| x + shift).collect();
            // Adding the shift rounds each value by up to an ulp of 2e6, so compare loosely.
            prop_assert!((mean(&shifted) - (centre + shift)).abs() < 1e-8);
            prop_assert!((sample_variance(&shifted) - variance).abs() <= 1e-8 * variance.max(1.0) + 1e-6);
        }
    }
}
