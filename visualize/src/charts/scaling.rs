//! Throughput versus the number of nodes: measured points with their
//! spread, the fitted Amdahl and USL curves, and the linear ideal.
//!
//! One series per architecture, in its own colour, on shared axes: the
//! measured means as dots with ± one standard deviation as error bars, the
//! fitted USL as a solid line, the fitted Amdahl curve dashed, the linear
//! ideal `λN` (from the USL's λ) dotted, and the USL's peak `N*` marked
//! when it lies on the chart.

use super::canvas::{Chart, ChartError};
use plotters::coord::Shift;
use plotters::prelude::*;
use scenarios::fit;
use scenarios::scenario::Architecture;
use scenarios::sweep::SweepReport;

/// One architecture's part of the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingSeries {
    /// The architecture (names the series and picks its colour).
    pub architecture: Architecture,
    /// Measured points: `(n, mean, standard deviation)`.
    pub measured: Vec<(f64, f64, f64)>,
    /// The fitted USL, `(λ, σ, κ)`, if there is one.
    pub usl: Option<(f64, f64, f64)>,
    /// The USL's peak `(N*, X(N*))`, if it has one.
    pub peak: Option<(f64, f64)>,
    /// The fitted Amdahl law, `(λ, p)`, if there is one.
    pub amdahl: Option<(f64, f64)>,
}

/// The throughput-versus-N chart of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingChart {
    /// The title: scenario and seeds.
    pub title: String,
    /// The x-axis label.
    pub x_label: String,
    /// One series per architecture.
    pub series: Vec<ScalingSeries>,
}

impl ScalingChart {
    /// The chart of a sweep report.
    #[must_use]
    pub fn from_report(report: &SweepReport) -> ScalingChart {
        let seeds = if report.seeds == 1 {
            format!("seed {}", report.seed_base)
        } else {
            format!(
                "seeds {}..{}",
                report.seed_base,
                report.seed_base + u64::from(report.seeds) - 1
            )
        };
        let x_path = report.vary.first().map_or("", |vary| vary.path.as_str());
        let x_label = if x_path.ends_with("nodes") || x_path.ends_with("instances") {
            format!("nodes (N) — {x_path}")
        } else {
            format!("N — {x_path}")
        };
        let series = report
            .architectures
            .iter()
            .enumerate()
            .map(|(column, &architecture)| {
                let fits = report.fit.get(architecture.name());
                let usl = fits.and_then(|fits| fits.usl.as_ref());
                ScalingSeries {
                    architecture,
                    measured: report
                        .points
                        .iter()
                        .map(|point| {
                            let row = &point.architectures[column];
                            (point.n, row.throughput_mean, row.throughput_stddev)
                        })
                        .collect(),
                    usl: usl.map(|usl| (usl.lambda, usl.sigma, usl.kappa)),
                    peak: usl.and_then(|usl| usl.n_star.zip(usl.peak_throughput)),
                    amdahl: fits
                        .and_then(|fits| fits.amdahl.as_ref())
                        .map(|amdahl| (amdahl.lambda, amdahl.p)),
                }
            })
            .collect();
        ScalingChart {
            title: format!("{}: throughput vs N ({seeds})", report.scenario),
            x_label,
            series,
        }
    }

    /// The axes' ranges: x from 0 to a little past the largest N; y from 0
    /// to a little above the highest measured or fitted value on that range
    /// (the ideal line is clipped, not allowed to flatten everything else).
    fn ranges(&self) -> (f64, f64) {
        let x_max = self
            .series
            .iter()
            .flat_map(|series| series.measured.iter().map(|point| point.0))
            .fold(1.0_f64, f64::max)
            * 1.05;
        let mut y_max: f64 = 0.0;
        for series in &self.series {
            for &(_, mean, spread) in &series.measured {
                y_max = y_max.max(mean + spread);
            }
            for (n, y) in self.curve_points(series) {
                if n <= x_max {
                    y_max = y_max.max(y);
                }
            }
        }
        (x_max, if y_max > 0.0 { y_max * 1.15 } else { 1.0 })
    }

    /// The fitted USL curve of `series`, sampled finely from N = 1.
    fn curve_points(&self, series: &ScalingSeries) -> Vec<(f64, f64)> {
        let Some((lambda, sigma, kappa)) = series.usl else { return Vec::new() };
        self.sampled(|n| fit::usl(lambda, sigma, kappa, n))
    }

    fn sampled(&self, model: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        let x_max = self
            .series
            .iter()
            .flat_map(|series| series.measured.iter().map(|point| point.0))
            .fold(1.0_f64, f64::max)
            * 1.05;
        let steps = 200;
        (0..=steps)
            .map(|i| {
                let n = 1.0 + (x_max - 1.0) * f64::from(i) / f64::from(steps);
                (n, model(n))
            })
            .collect()
    }
}

/// κ for a label: 0 as such, otherwise in scientific notation.
fn kappa_text(kappa: f64) -> String {
    if kappa == 0.0 { "0".to_string() } else { format!("{kappa:.2e}") }
}

/// The colour of each architecture, the same on every chart.
fn colour(architecture: Architecture) -> RGBColor {
    match architecture {
        Architecture::Microlith => RGBColor(200, 55, 45),
        Architecture::Reactive => RGBColor(230, 140, 20),
        Architecture::Microsystem => RGBColor(40, 110, 190),
    }
}

impl Chart for ScalingChart {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        area.fill(&WHITE)?;
        let (x_max, y_max) = self.ranges();
        // A swept field may go below zero (a clock step, say): keep every
        // measured point on the chart. Fits exist only for N >= 1.
        let x_min = self
            .series
            .iter()
            .flat_map(|series| series.measured.iter().map(|point| point.0))
            .fold(0.0_f64, f64::min);
        // The legend sits in its own strip under the chart, so it never
        // hides a measured point: one row per architecture on the left,
        // the key to the line styles on the right.
        let (width, height) = area.dim_in_pixel();
        let rows = i32::try_from(self.series.len().max(4)).unwrap_or(4);
        let strip = rows * 20 + 12;
        let (plot, legend) = area.split_vertically(i32::try_from(height).unwrap_or(0) - strip);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x_min..x_max, 0.0..y_max)
            .map_err(|error| ChartError(error.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc("throughput (orders/s)")
            .x_label_formatter(&|n| format!("{n}"))
            .y_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        // Keeps a line inside the plotting area: plotters would draw the
        // ideal line past the top edge.
        let clip = |points: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
            points.into_iter().filter(|&(_, y)| y.is_finite() && y <= y_max).collect()
        };
        for (index, series) in self.series.iter().enumerate() {
            let colour = colour(series.architecture);
            let name = series.architecture.name();
            let measured_style = colour.filled();
            // Error bars drawn as paths (a stem and two caps): plotters'
            // own ErrorBar needs a feature the workspace does not enable.
            let cap = x_max * 0.006;
            chart.draw_series(series.measured.iter().filter(|point| point.2 > 0.0).flat_map(
                |&(n, mean, spread)| {
                    let (low, high) = ((mean - spread).max(0.0), mean + spread);
                    [
                        PathElement::new(vec![(n, low), (n, high)], colour.stroke_width(1)),
                        PathElement::new(
                            vec![(n - cap, low), (n + cap, low)],
                            colour.stroke_width(1),
                        ),
                        PathElement::new(
                            vec![(n - cap, high), (n + cap, high)],
                            colour.stroke_width(1),
                        ),
                    ]
                },
            ))?;
            // One legend entry per architecture, carrying its coefficients;
            // the line styles are explained once, in grey, below.
            let mut label = name.to_string();
            let mut fitted = Vec::new();
            if let Some((_, sigma, kappa)) = series.usl {
                fitted.push(format!("USL σ={sigma:.3} κ={}", kappa_text(kappa)));
            }
            if let Some((_, p)) = series.amdahl {
                fitted.push(format!("Amdahl p={p:.3}"));
            }
            if !fitted.is_empty() {
                label = format!("{label}: {}", fitted.join(", "));
            }
            chart.draw_series(
                series
                    .measured
                    .iter()
                    .map(|&(n, mean, _)| Circle::new((n, mean), 4, measured_style)),
            )?;
            let y = 6 + 20 * i32::try_from(index).unwrap_or(0) + 10;
            legend.draw(&PathElement::new(vec![(80, y), (100, y)], colour.stroke_width(2)))?;
            legend.draw(&Circle::new((90, y), 4, measured_style))?;
            legend.draw(&Text::new(label, (108, y - 7), ("sans-serif", 14).into_font()))?;
            if let Some((lambda, sigma, kappa)) = series.usl {
                let usl = clip(self.sampled(|n| fit::usl(lambda, sigma, kappa, n)));
                chart.draw_series(LineSeries::new(usl, colour.stroke_width(2)))?;
                let ideal = clip(self.sampled(|n| lambda * n));
                chart.draw_series(DottedLineSeries::new(ideal, 0, 5, move |point| {
                    Circle::new(point, 1, colour.filled())
                }))?;
            }
            if let Some((lambda, p)) = series.amdahl {
                let amdahl = clip(self.sampled(|n| fit::usl(lambda, p, 0.0, n)));
                chart.draw_series(DashedLineSeries::new(amdahl, 8, 5, colour.stroke_width(1)))?;
            }
            if let Some((n_star, peak)) = series.peak.filter(|&(n, _)| n <= x_max) {
                chart.draw_series(std::iter::once(Cross::new(
                    (n_star, peak),
                    7,
                    colour.stroke_width(2),
                )))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!("N*={n_star:.1}"),
                    (n_star, peak),
                    ("sans-serif", 14).into_font().color(&colour),
                )))?;
            }
        }
        let grey = RGBColor(110, 110, 110);
        let x = i32::try_from(width).unwrap_or(0) * 62 / 100;
        let row = |i: i32| 6 + 20 * i + 10;
        let font = ("sans-serif", 14).into_font();
        legend.draw(&PathElement::new(vec![(x + 10, row(0) - 6), (x + 10, row(0) + 6)], grey))?;
        legend.draw(&Circle::new((x + 10, row(0)), 4, grey.filled()))?;
        legend
            .draw(&PathElement::new(vec![(x, row(1)), (x + 20, row(1))], grey.stroke_width(2)))?;
        legend.draw(&PathElement::new(vec![(x, row(2)), (x + 7, row(2))], grey))?;
        legend.draw(&PathElement::new(vec![(x + 12, row(2)), (x + 19, row(2))], grey))?;
        for dot in [2, 8, 14, 20] {
            legend.draw(&Circle::new((x + dot, row(3)), 1, grey.filled()))?;
        }
        for (i, text) in [
            "measured mean ± sd",
            "USL fit (solid)",
            "Amdahl fit (dashed)",
            "linear ideal λN (dotted)",
        ]
        .into_iter()
        .enumerate()
        {
            let y = row(i32::try_from(i).unwrap_or(0));
            legend.draw(&Text::new(text, (x + 28, y - 7), font.clone()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charts::render_svg_string;

    fn chart() -> ScalingChart {
        let usl = (100.0, 0.05, 0.002);
        let measured = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
            .iter()
            .map(|&n| (n, fit::usl(usl.0, usl.1, usl.2, n), 3.0))
            .collect();
        ScalingChart {
            title: "demo: throughput vs N (seed 1)".to_string(),
            x_label: "nodes (N)".to_string(),
            series: vec![ScalingSeries {
                architecture: Architecture::Microsystem,
                measured,
                usl: Some(usl),
                peak: Some((21.8, 740.0)),
                amdahl: Some((95.0, 0.1)),
            }],
        }
    }

    #[test]
    fn svg_has_title_axes_legend_and_peak() {
        let svg = render_svg_string(&chart(), (800, 500)).unwrap();
        for text in [
            "demo: throughput vs N (seed 1)",
            "nodes (N)",
            "throughput (orders/s)",
            "microsystem: USL σ=0.050 κ=2.00e-3, Amdahl p=0.100",
            "measured mean ± sd",
            "linear ideal λN (dotted)",
            "N*=21.8",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        assert_eq!(svg, render_svg_string(&chart(), (800, 500)).unwrap(), "deterministic");
    }

    #[test]
    fn y_range_ignores_the_ideal_line() {
        let (x_max, y_max) = chart().ranges();
        assert!((x_max - 32.0 * 1.05).abs() < 1e-9);
        // The ideal line reaches 3360 at x_max; the fitted peak is ~740.
        assert!(y_max > 740.0 && y_max < 900.0, "{y_max}");
    }
}
