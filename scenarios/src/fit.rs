//! Least-squares fits of throughput against the number of nodes: Amdahl's
//! law and the Universal Scalability Law (USL).
//!
//! The USL models throughput at `N` nodes as
//! `X(N) = λN / (1 + σ(N−1) + κN(N−1))`: `λ` is one node's throughput, `σ`
//! the contention (the share of work that queues for something serial) and
//! `κ` the coherency cost (every node paying to agree with every other).
//! Amdahl's law is the `κ = 0` case, with `σ` called the serial fraction `p`.
//!
//! Both models are linear in `λ`, so for fixed `(σ, κ)` the best `λ` is
//! closed-form and the search is over `σ ∈ [0, 1]` and `κ ∈ [0, 1)` only:
//! a coarse grid (linear in `σ`, logarithmic in `κ`, with `κ = 0` included)
//! followed by a bounded Nelder–Mead refinement and a final coordinate
//! golden-section polish. Everything is deterministic: the same points give
//! the same coefficients, bit for bit.
//!
//! The fit reads one throughput per point; `rlab sweep` passes each point's
//! mean over its seeds. With the same number of seeds at every point this
//! gives the same coefficients as fitting every sample (the per-seed scatter
//! only adds a constant to the sum of squares), and R² then says how well
//! the curve explains the scaling rather than how noisy the seeds were.
//!
//! These formulas are the theory a sweep is compared with; no throughput in
//! a run is ever computed from them (see ARCHITECTURE.md).

use std::fmt;

/// One measured point: `n` nodes (or whatever the sweep's x-axis counts)
/// gave `throughput` (completed orders per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The x-axis value; must be finite and at least 1.
    pub n: f64,
    /// The measured throughput; must be finite and not negative.
    pub throughput: f64,
}

/// Why a fit could not be made.
#[derive(Debug, Clone, PartialEq)]
pub enum FitError {
    /// Fewer distinct `n` values than the model needs.
    TooFewPoints {
        /// Distinct `n` values given.
        distinct: usize,
        /// Distinct `n` values the model needs.
        needed: usize,
    },
    /// An `n` below 1 or not finite.
    BadN(f64),
    /// A negative or non-finite throughput.
    BadThroughput(f64),
    /// Every throughput is zero: there is nothing to fit.
    AllZero,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FitError::TooFewPoints { distinct, needed } => {
                write!(f, "needs at least {needed} distinct values of N, got {distinct}")
            }
            FitError::BadN(n) => write!(f, "N = {n} is not allowed (N must be a number ≥ 1)"),
            FitError::BadThroughput(x) => {
                write!(f, "throughput {x} is not allowed (must be a number ≥ 0)")
            }
            FitError::AllZero => write!(f, "every throughput is zero; nothing to fit"),
        }
    }
}

impl std::error::Error for FitError {}

/// Amdahl's law fitted to the points: `X(N) = λN / (1 + p(N−1))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmdahlFit {
    /// One node's throughput.
    pub lambda: f64,
    /// The serial fraction, in `[0, 1]`.
    pub p: f64,
    /// Coefficient of determination, `1 − SS_res / SS_tot`.
    pub r2: f64,
    /// The throughput approached as `N` grows, `λ / p`; `None` when `p = 0`
    /// (linear scaling has no ceiling).
    pub ceiling: Option<f64>,
}

impl AmdahlFit {
    /// The model's throughput at `n`.
    #[must_use]
    pub fn predict(&self, n: f64) -> f64 {
        usl(self.lambda, self.p, 0.0, n)
    }
}

/// The Universal Scalability Law fitted to the points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UslFit {
    /// One node's throughput.
    pub lambda: f64,
    /// Contention, in `[0, 1]`.
    pub sigma: f64,
    /// Coherency, in `[0, 1)`.
    pub kappa: f64,
    /// Coefficient of determination, `1 − SS_res / SS_tot`.
    pub r2: f64,
    /// Where throughput peaks, `sqrt((1 − σ) / κ)` (at least 1); `None`
    /// when `κ = 0`, which never turns retrograde.
    pub n_star: Option<f64>,
    /// The model's throughput at `n_star`.
    pub peak_throughput: Option<f64>,
}

impl UslFit {
    /// The model's throughput at `n`.
    #[must_use]
    pub fn predict(&self, n: f64) -> f64 {
        usl(self.lambda, self.sigma, self.kappa, n)
    }
}

/// The USL curve, which is Amdahl's law when `kappa = 0`.
#[must_use]
pub fn usl(lambda: f64, sigma: f64, kappa: f64, n: f64) -> f64 {
    lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// Fits Amdahl's law; needs at least two distinct values of `n`.
///
/// # Errors
/// [`FitError`] when the points cannot support a fit.
pub fn fit_amdahl(points: &[Sample]) -> Result<AmdahlFit, FitError> {
    check(points, 2)?;
    let objective = |p: f64| residual(points, p, 0.0).0;
    // Coarse grid, then golden section in the bracket around the best cell.
    let steps = 1000;
    let mut best_p = 0.0;
    let mut best = f64::INFINITY;
    for i in 0..=steps {
        let p = f64::from(i) / f64::from(steps);
        let value = objective(p);
        if value < best {
            best = value;
            best_p = p;
        }
    }
    let cell = 1.0 / f64::from(steps);
    let refined = golden_section(objective, (best_p - cell).max(0.0), (best_p + cell).min(1.0));
    let p = if objective(refined) <= best { refined } else { best_p };
    let (ss_res, lambda) = residual(points, p, 0.0);
    Ok(AmdahlFit {
        lambda,
        p,
        r2: r_squared(points, ss_res),
        ceiling: (p > 0.0).then(|| lambda / p),
    })
}

/// Fits the Universal Scalability Law; needs at least three distinct values
/// of `n` (three coefficients).
///
/// # Errors
/// [`FitError`] when the points cannot support a fit.
pub fn fit_usl(points: &[Sample]) -> Result<UslFit, FitError> {
    check(points, 3)?;
    let objective = |sigma: f64, kappa: f64| residual(points, sigma, kappa).0;

    // Coarse grid: σ linear in steps of 0.005; κ = 0 and 10^-9 .. 10^-0.05
    // in steps of 0.05 decades, because useful κ values span many orders of
    // magnitude (a few 1e-4 already bends a 64-node curve).
    let sigma_steps = 200;
    let mut kappas = vec![0.0];
    for e in 0..=179 {
        kappas.push(libm::pow(10.0, -9.0 + 0.05 * f64::from(e)));
    }
    let mut best = (f64::INFINITY, 0.0, 0.0);
    for i in 0..=sigma_steps {
        let sigma = f64::from(i) / f64::from(sigma_steps);
        for &kappa in &kappas {
            let value = objective(sigma, kappa);
            if value < best.0 {
                best = (value, sigma, kappa);
            }
        }
    }

    // Refine: Nelder–Mead over the box, then golden section per coordinate
    // until neither moves (the box edges, κ = 0 above all, are where many
    // real fits end up, and coordinate search lands on them exactly).
    let (mut sigma, mut kappa) = nelder_mead(&objective, best.1, best.2);
    if objective(sigma, kappa) > best.0 {
        (sigma, kappa) = (best.1, best.2);
    }
    for _ in 0..50 {
        let before = (sigma, kappa);
        let width_sigma = 0.01_f64.max(sigma * 0.5);
        let s = golden_section(
            |s| objective(s, kappa),
            (sigma - width_sigma).max(0.0),
            (sigma + width_sigma).min(1.0),
        );
        if objective(s, kappa) < objective(sigma, kappa) {
            sigma = s;
        }
        let k = golden_section(|k| objective(sigma, k), 0.0, (kappa * 4.0 + 1e-9).min(KAPPA_MAX));
        if objective(sigma, k) < objective(sigma, kappa) {
            kappa = k;
        }
        if before == (sigma, kappa) {
            break;
        }
    }
    // The USL contains Amdahl's law (κ = 0); its own 1-D optimum is a
    // candidate too, so the USL never fits worse than Amdahl.
    let amdahl = fit_amdahl(points)?;
    if objective(amdahl.p, 0.0) < objective(sigma, kappa) {
        (sigma, kappa) = (amdahl.p, 0.0);
    }
    // A κ this small is zero for any N a sweep reaches (it would move the
    // 64-node point by well under a millionth); calling it zero keeps
    // "no retrograde" honest instead of reporting an N* of millions.
    if kappa < 1e-12 && objective(sigma, 0.0) <= objective(sigma, kappa) * (1.0 + 1e-9) {
        kappa = 0.0;
    }

    let (ss_res, lambda) = residual(points, sigma, kappa);
    let n_star = (kappa > 0.0).then(|| libm::sqrt((1.0 - sigma) / kappa).max(1.0));
    Ok(UslFit {
        lambda,
        sigma,
        kappa,
        r2: r_squared(points, ss_res),
        n_star,
        peak_throughput: n_star.map(|n| usl(lambda, sigma, kappa, n)),
    })
}

/// The largest κ searched: the model allows `[0, 1)`.
const KAPPA_MAX: f64 = 1.0 - 1e-9;

fn check(points: &[Sample], needed: usize) -> Result<(), FitError> {
    for point in points {
        if !point.n.is_finite() || point.n < 1.0 {
            return Err(FitError::BadN(point.n));
        }
        if !point.throughput.is_finite() || point.throughput < 0.0 {
            return Err(FitError::BadThroughput(point.throughput));
        }
    }
    let mut ns: Vec<f64> = points.iter().map(|p| p.n).collect();
    ns.sort_by(f64::total_cmp);
    ns.dedup();
    if ns.len() < needed {
        return Err(FitError::TooFewPoints { distinct: ns.len(), needed });
    }
    if points.iter().all(|p| p.throughput == 0.0) {
        return Err(FitError::AllZero);
    }
    Ok(())
}

/// The residual sum of squares at `(sigma, kappa)` with the best `λ`, and
/// that `λ`. With `g_i = N_i / D_i` the model is `X_i = λ g_i`, so the best
/// `λ` is `Σ X g / Σ g²`.
fn residual(points: &[Sample], sigma: f64, kappa: f64) -> (f64, f64) {
    let mut xg = 0.0;
    let mut gg = 0.0;
    for point in points {
        let g = usl(1.0, sigma, kappa, point.n);
        xg += point.throughput * g;
        gg += g * g;
    }
    let lambda = xg / gg;
    let ss = points
        .iter()
        .map(|point| {
            let error = point.throughput - lambda * usl(1.0, sigma, kappa, point.n);
            error * error
        })
        .sum();
    (ss, lambda)
}

fn r_squared(points: &[Sample], ss_res: f64) -> f64 {
    let count = points.len() as f64;
    let mean = points.iter().map(|p| p.throughput).sum::<f64>() / count;
    let ss_tot: f64 = points.iter().map(|p| (p.throughput - mean) * (p.throughput - mean)).sum();
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        // Flat throughput: a perfect fit explains it fully; anything else
        // explains none of it. Never NaN.
        let scale = points.iter().map(|p| p.throughput * p.throughput).sum::<f64>();
        if ss_res <= scale * 1e-12 { 1.0 } else { 0.0 }
    }
}

/// Minimises a unimodal function on `[low, high]`.
fn golden_section(f: impl Fn(f64) -> f64, mut low: f64, mut high: f64) -> f64 {
    let ratio = (libm::sqrt(5.0) - 1.0) / 2.0;
    let mut c = high - ratio * (high - low);
    let mut d = low + ratio * (high - low);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..200 {
        if (high - low).abs() <= 1e-15 * (1.0 + low.abs()) {
            break;
        }
        if fc <= fd {
            high = d;
            d = c;
            fd = fc;
            c = high - ratio * (high - low);
            fc = f(c);
        } else {
            low = c;
            c = d;
            fc = fd;
            d = low + ratio * (high - low);
            fd = f(d);
        }
    }
    let mid = (low + high) / 2.0;
    // The ends are candidates too: the minimum often sits on the box edge.
    [low, mid, high].into_iter().fold(mid, |best, x| if f(x) < f(best) { x } else { best })
}

/// Nelder–Mead over `σ ∈ [0, 1]`, `κ ∈ [0, KAPPA_MAX]`, with every trial
/// point projected into the box. Starts from a simplex scaled to the grid
/// cell it was found in.
fn nelder_mead(f: &impl Fn(f64, f64) -> f64, sigma: f64, kappa: f64) -> (f64, f64) {
    let clamp = |p: [f64; 2]| [p[0].clamp(0.0, 1.0), p[1].clamp(0.0, KAPPA_MAX)];
    let eval = |p: [f64; 2]| f(p[0], p[1]);
    let kappa_step = if kappa > 0.0 { kappa * 0.2 } else { 1e-6 };
    let mut simplex =
        [[sigma, kappa], clamp([sigma + 0.005, kappa]), clamp([sigma, kappa + kappa_step])];
    if simplex[1] == simplex[0] {
        simplex[1] = clamp([sigma - 0.005, kappa]);
    }
    let mut values = simplex.map(eval);
    for _ in 0..2000 {
        // Order best to worst (stable, so ties stay deterministic).
        let mut order = [0, 1, 2];
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        simplex = order.map(|i| simplex[i]);
        values = order.map(|i| values[i]);
        let spread = values[2] - values[0];
        if spread <= 1e-18 * (1.0 + values[0].abs()) {
            break;
        }
        let centroid =
            [(simplex[0][0] + simplex[1][0]) / 2.0, (simplex[0][1] + simplex[1][1]) / 2.0];
        let along = |t: f64| {
            clamp([
                centroid[0] + t * (simplex[2][0] - centroid[0]),
                centroid[1] + t * (simplex[2][1] - centroid[1]),
            ])
        };
        let reflected = along(-1.0);
        let fr = eval(reflected);
        if fr < values[0] {
            let expanded = along(-2.0);
            let fe = eval(expanded);
            if fe < fr {
                (simplex[2], values[2]) = (expanded, fe);
            } else {
                (simplex[2], values[2]) = (reflected, fr);
            }
        } else if fr < values[1] {
            (simplex[2], values[2]) = (reflected, fr);
        } else {
            let contracted = if fr < values[2] { along(-0.5) } else { along(0.5) };
            let fc = eval(contracted);
            if fc < values[2].min(fr) {
                (simplex[2], values[2]) = (contracted, fc);
            } else {
                for i in 1..3 {
                    simplex[i] = clamp([
                        (simplex[0][0] + simplex[i][0]) / 2.0,
                        (simplex[0][1] + simplex[i][1]) / 2.0,
                    ]);
                    values[i] = eval(simplex[i]);
                }
            }
        }
    }
    let best = (0..3).fold(0, |best, i| if values[i] < values[best] { i } else { best });
    (simplex[best][0], simplex[best][1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

    fn curve(lambda: f64, sigma: f64, kappa: f64, noise: f64) -> Vec<Sample> {
        NS.iter()
            .enumerate()
            .map(|(i, &n)| {
                // Deterministic ±noise, alternating in sign and varying in size.
                let wobble = [0.8, -1.0, 0.5, -0.7, 1.0, -0.4, 0.9][i] * noise;
                Sample { n, throughput: usl(lambda, sigma, kappa, n) * (1.0 + wobble) }
            })
            .collect()
    }

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    #[test]
    fn recovers_exact_usl_coefficients() {
        for (lambda, sigma, kappa) in
            [(100.0, 0.05, 0.001), (250.0, 0.02, 0.0002), (40.0, 0.3, 0.01)]
        {
            let fit = fit_usl(&curve(lambda, sigma, kappa, 0.0)).unwrap();
            assert!(close(fit.sigma, sigma, 1e-3), "{fit:?}");
            assert!(close(fit.kappa, kappa, 1e-3 * kappa.max(1e-3)), "{fit:?}");
            assert!(close(fit.lambda / lambda, 1.0, 1e-3), "{fit:?}");
            assert!(fit.r2 > 0.999_999, "{fit:?}");
            let n_star = libm::sqrt((1.0 - sigma) / kappa);
            assert!(close(fit.n_star.unwrap() / n_star, 1.0, 1e-3), "{fit:?}");
            let peak = usl(lambda, sigma, kappa, n_star);
            assert!(close(fit.peak_throughput.unwrap() / peak, 1.0, 1e-3), "{fit:?}");
        }
    }

    #[test]
    fn recovers_exact_amdahl_coefficients_and_finds_no_retrograde() {
        for (lambda, p) in [(100.0, 0.1), (30.0, 0.0), (500.0, 0.9)] {
            let points = curve(lambda, p, 0.0, 0.0);
            let amdahl = fit_amdahl(&points).unwrap();
            assert!(close(amdahl.p, p, 1e-3), "{amdahl:?}");
            assert!(close(amdahl.lambda / lambda, 1.0, 1e-3), "{amdahl:?}");
            assert_eq!(amdahl.ceiling.is_some(), p > 0.0);
            let usl_fit = fit_usl(&points).unwrap();
            assert!(close(usl_fit.sigma, p, 1e-3), "{usl_fit:?}");
            assert!(usl_fit.kappa < 1e-6, "{usl_fit:?}");
        }
    }

    #[test]
    fn pure_linear_scaling_has_no_ceiling_and_no_peak() {
        let points: Vec<Sample> = NS.iter().map(|&n| Sample { n, throughput: 10.0 * n }).collect();
        let usl_fit = fit_usl(&points).unwrap();
        assert_eq!((usl_fit.sigma, usl_fit.kappa), (0.0, 0.0));
        assert_eq!((usl_fit.n_star, usl_fit.peak_throughput), (None, None));
        assert_eq!(fit_amdahl(&points).unwrap().ceiling, None);
    }

    #[test]
    fn recovers_noisy_coefficients_within_a_few_percent() {
        let (lambda, sigma, kappa) = (120.0, 0.06, 0.0008);
        // ±2% noise on every point moves the coefficients by a few percent
        // (measured: λ 0.4%, σ 1.6%, κ 4%, N* 2%).
        let fit = fit_usl(&curve(lambda, sigma, kappa, 0.02)).unwrap();
        assert!(close(fit.lambda / lambda, 1.0, 0.02), "{fit:?}");
        assert!(close(fit.sigma / sigma, 1.0, 0.05), "{fit:?}");
        assert!(close(fit.kappa / kappa, 1.0, 0.1), "{fit:?}");
        let n_star = libm::sqrt((1.0 - sigma) / kappa);
        assert!(close(fit.n_star.unwrap() / n_star, 1.0, 0.05), "{fit:?}");
        assert!(fit.r2 > 0.99, "{fit:?}");

        let amdahl = fit_amdahl(&curve(80.0, 0.1, 0.0, 0.02)).unwrap();
        assert!(close(amdahl.p / 0.1, 1.0, 0.05), "{amdahl:?}");
        assert!(close(amdahl.lambda / 80.0, 1.0, 0.02), "{amdahl:?}");
    }

    #[test]
    fn flat_throughput_is_fully_serial_with_r2_one() {
        let points: Vec<Sample> = NS.iter().map(|&n| Sample { n, throughput: 50.0 }).collect();
        let amdahl = fit_amdahl(&points).unwrap();
        assert!(close(amdahl.p, 1.0, 1e-9) && amdahl.r2 == 1.0, "{amdahl:?}");
        let usl_fit = fit_usl(&points).unwrap();
        assert!(usl_fit.r2.is_finite() && usl_fit.r2 > 0.999, "{usl_fit:?}");
    }

    #[test]
    fn degenerate_input_is_an_error_not_nan() {
        let one = [Sample { n: 1.0, throughput: 10.0 }];
        assert_eq!(fit_usl(&one), Err(FitError::TooFewPoints { distinct: 1, needed: 3 }));
        assert_eq!(fit_amdahl(&one), Err(FitError::TooFewPoints { distinct: 1, needed: 2 }));
        let repeated = [Sample { n: 2.0, throughput: 10.0 }, Sample { n: 2.0, throughput: 11.0 }];
        assert!(matches!(fit_amdahl(&repeated), Err(FitError::TooFewPoints { distinct: 1, .. })));
        let zeros: Vec<Sample> = NS.iter().map(|&n| Sample { n, throughput: 0.0 }).collect();
        assert_eq!(fit_usl(&zeros), Err(FitError::AllZero));
        assert_eq!(fit_amdahl(&zeros), Err(FitError::AllZero));
        for bad_n in [0.0, 0.5, -3.0, f64::NAN, f64::INFINITY] {
            let mut points = curve(10.0, 0.1, 0.0, 0.0);
            points[2].n = bad_n;
            assert!(matches!(fit_usl(&points), Err(FitError::BadN(_))));
            assert!(matches!(fit_amdahl(&points), Err(FitError::BadN(_))));
        }
        let mut points = curve(10.0, 0.1, 0.0, 0.0);
        points[3].throughput = f64::NAN;
        assert!(matches!(fit_usl(&points), Err(FitError::BadThroughput(_))));
        assert!(FitError::AllZero.to_string().contains("zero"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Laws of any fit of valid points: coefficients inside their
        /// ranges, nothing NaN, R² at most 1, and the USL (which contains
        /// Amdahl as κ = 0) never explains less than Amdahl does.
        #[test]
        fn fits_stay_in_range_and_usl_is_never_worse(
            throughputs in proptest::collection::vec(0.0_f64..5_000.0, 3..10),
            first_is_positive in 1.0_f64..5_000.0,
        ) {
            let mut points: Vec<Sample> = throughputs
                .iter()
                .enumerate()
                .map(|(i, &throughput)| Sample { n: (1u32 << i) as f64, throughput })
                .collect();
            points[0].throughput = first_is_positive;
            let amdahl = fit_amdahl(&points).unwrap();
            let usl_fit = fit_usl(&points).unwrap();
            for value in [amdahl.lambda, amdahl.p, amdahl.r2, usl_fit.lambda, usl_fit.sigma, usl_fit.kappa, usl_fit.r2] {
                proptest::prop_assert!(value.is_finite());
            }
            proptest::prop_assert!((0.0..=1.0).contains(&amdahl.p));
            proptest::prop_assert!((0.0..=1.0).contains(&usl_fit.sigma));
            proptest::prop_assert!((0.0..1.0).contains(&usl_fit.kappa));
            proptest::prop_assert!(amdahl.r2 <= 1.0 + 1e-12 && usl_fit.r2 <= 1.0 + 1e-12);
            proptest::prop_assert!(usl_fit.r2 >= amdahl.r2 - 1e-9, "{usl_fit:?} vs {amdahl:?}");
            if let Some(n_star) = usl_fit.n_star {
                proptest::prop_assert!(n_star >= 1.0 && usl_fit.peak_throughput.unwrap().is_finite());
            }
        }
    }

    #[test]
    fn fits_are_deterministic() {
        let points = curve(77.0, 0.04, 0.0003, 0.03);
        assert_eq!(fit_usl(&points), fit_usl(&points));
        assert_eq!(fit_amdahl(&points), fit_amdahl(&points));
    }
}
