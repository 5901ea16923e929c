//! SVG plots (plotters) shared by every report: lines, bars and box plots.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

fn colour(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[i % PALETTE.len()]
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

/// A line plot; `log_x` plots x on a log10 scale (learning-rate range test).
pub fn line_plot(title: &str, x_label: &str, y_label: &str, series: &[Series], log_x: bool) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let tx = |x: f64| if log_x { x.max(1e-12).log10() } else { x };
        let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| tx(p.0))));
        let (y0, y1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc(if log_x { format!("{x_label} (log10)") } else { x_label.to_string() })
            .y_desc(y_label)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, s) in series.iter().enumerate() {
            let style = ShapeStyle::from(&colour(i)).stroke_width(2);
            let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (tx(p.0), p.1)).filter(|p| p.1.is_finite()).collect();
            let c = colour(i);
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts, 6, 4, style))
                    .map_err(|e| anyhow!("{e}"))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
            } else {
                chart
                    .draw_series(LineSeries::new(pts, style))
                    .map_err(|e| anyhow!("{e}"))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c));
            }
        }
        if series.len() > 1 {
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// One bar: a named value and its spread (standard deviation over repeated models; 0 draws none).
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub sd: f64,
}

impl Bar {
    pub fn new(label: impl Into<String>, value: f64, sd: f64) -> Self {
        Bar { label: label.into(), value, sd }
    }
}

/// The value axis of a bar plot: it holds every bar, whisker and the reference; it starts at
/// zero for non-negative data (shares: whiskers never pull it below zero) unless all values sit
/// high (AUROC), where it zooms in so differences show.
fn bar_axis(bars: &[Bar], reference: Option<f64>) -> (f64, f64) {
    let non_negative = bars.iter().all(|b| b.value >= 0.0);
    let low = |b: &Bar| if non_negative { (b.value - b.sd).max(0.0) } else { b.value - b.sd };
    let (lo, hi) = range(bars.iter().flat_map(|b| [b.value, low(b), b.value + b.sd]).chain(reference));
    let x0 = if lo > 0.5 && hi <= 1.05 {
        lo
    } else if non_negative {
        0.0
    } else {
        lo.min(0.0)
    };
    (x0, if hi <= x0 { x0 + 1.0 } else { hi })
}

/// Horizontal bars, one per named category (long names stay readable), with ± sd whiskers and
/// an optional dashed reference value.
pub fn bar_plot(title: &str, x_label: &str, bars: &[Bar], reference: Option<(f64, &str)>) -> Result<String> {
    let mut svg = String::new();
    {
        let n = bars.len().max(1);
        let height = (90 + 22 * n) as u32;
        let root = SVGBackend::with_string(&mut svg, (820, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let (x0, x1) = bar_axis(bars, reference.map(|r| r.0));
        let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(280)
            .build_cartesian_2d(x0..x1, (0..n).into_segmented())
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| match y {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc(x_label)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let mut r = Rectangle::new([(x0, SegmentValue::Exact(i)), (b.value, SegmentValue::Exact(i + 1))], colour(0).filled());
                r.set_margin(3, 3, 0, 0);
                r
            }))
            .map_err(|e| anyhow!("{e}"))?;
        // Whiskers at the bar's centre line: value ± sd, with caps.
        chart
            .draw_series(bars.iter().enumerate().filter(|(_, b)| b.sd > 0.0).map(|(i, b)| {
                let (lo, hi) = ((b.value - b.sd).max(x0), b.value + b.sd);
                ErrorBar::new_horizontal(SegmentValue::CenterOf(i), lo, b.value, hi, BLACK.stroke_width(1), 8)
            }))
            .map_err(|e| anyhow!("{e}"))?;
        if let Some((v, name)) = reference {
            chart
                .draw_series(DashedLineSeries::new(vec![(v, SegmentValue::Exact(0)), (v, SegmentValue::Exact(n))], 6, 4, ShapeStyle::from(&BLACK).stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(name.to_string())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// Horizontal box plots (min, q1, median, q3, max; red dot: mean), one per named category.
pub fn box_plot(title: &str, x_label: &str, boxes: &[(String, crate::metrics::ChangeDistribution)]) -> Result<String> {
    let mut svg = String::new();
    {
        let n = boxes.len().max(1);
        let height = (90 + 24 * n) as u32;
        let root = SVGBackend::with_string(&mut svg, (820, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let x1 = boxes.iter().map(|b| b.1.max).fold(0.0f64, f64::max).max(1e-3) * 1.05;
        let labels: Vec<String> = boxes.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(280)
            .build_cartesian_2d(0f64..x1, 0f64..n as f64)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(x_label)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, (_, d)) in boxes.iter().enumerate() {
            let y = n as f64 - i as f64 - 0.5;
            let c = colour(0);
            let err = |e: plotters::drawing::DrawingAreaErrorKind<std::io::Error>| anyhow!("{e}");
            chart.draw_series(std::iter::once(Rectangle::new([(d.q1, y - 0.3), (d.q3, y + 0.3)], c.mix(0.3).filled()))).map_err(err)?;
            chart.draw_series(std::iter::once(Rectangle::new([(d.q1, y - 0.3), (d.q3, y + 0.3)], c.stroke_width(1)))).map_err(err)?;
            for seg in [
                vec![(d.median, y - 0.3), (d.median, y + 0.3)],
                vec![(d.q3, y), (d.max, y)],
                vec![(d.q1, y), (d.min, y)],
                vec![(d.max, y - 0.15), (d.max, y + 0.15)],
            ] {
                chart.draw_series(std::iter::once(PathElement::new(seg, BLACK.stroke_width(1)))).map_err(err)?;
            }
            chart.draw_series(std::iter::once(Circle::new((d.mean, y), 3, RED.filled()))).map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(labels[i].clone(), (0.0, y), TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center)))))
                .map_err(err)?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_get_whiskers_and_shares_keep_a_zero_origin() {
        let bars = |sd: f64| vec![Bar::new("a", 2.0, sd), Bar::new("b", 9.0, sd)];
        let plain = bar_plot("t", "% of images", &bars(0.0), None).unwrap();
        let whiskered = bar_plot("t", "% of images", &bars(3.0), None).unwrap();
        // Each whisker marks its mean with a circle.
        let circles = |svg: &str| svg.matches("<circle").count();
        assert_eq!((circles(&plain), circles(&whiskered)), (0, 2));
        // The lower whisker of "a" (2 - 3) must not pull a share's axis below zero.
        // The lower whisker of "a" (2 - 3) must not pull a share's axis below zero...
        let (x0, x1) = bar_axis(&bars(3.0), None);
        assert_eq!(x0, 0.0);
        assert!(x1 >= 12.0, "the upper whisker of b (9 + 3) is on the axis");
        // ... but data with a negative value keeps its negative axis, and AUROC bars zoom in.
        assert!(bar_axis(&[Bar::new("a", -2.0, 1.0), Bar::new("b", 9.0, 1.0)], None).0 < -3.0);
        let (lo, hi) = bar_axis(&[Bar::new("a", 0.85, 0.01), Bar::new("b", 0.9, 0.01)], Some(0.88));
        assert!(lo > 0.8 && lo < 0.84 && hi > 0.91 && hi < 1.0, "{lo} {hi}");
    }
}
