//! SVG plots (plotters) shared by every report: lines, bars and box plots.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

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

/// Vertical bars with category labels; an optional dashed horizontal reference line.
pub fn bar_plot(title: &str, y_label: &str, bars: &[(String, f64)], reference: Option<(f64, &str)>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let (_, mut y1) = range(bars.iter().map(|b| b.1).chain(reference.map(|r| r.0)));
        let y0 = bars.iter().map(|b| b.1).fold(0.0f64, f64::min);
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        let n = bars.len().max(1);
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(90)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..n as f64, y0..y1)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| labels.get(x.floor() as usize).filter(|_| x.fract() < 1e-9 || true).cloned().unwrap_or_default())
            .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
            .y_desc(y_label)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                Rectangle::new([(i as f64 + 0.15, 0.0f64.max(y0)), (i as f64 + 0.85, b.1)], colour(0).filled())
            }))
            .map_err(|e| anyhow!("{e}"))?;
        if let Some((v, name)) = reference {
            chart
                .draw_series(DashedLineSeries::new(vec![(0.0, v), (n as f64, v)], 6, 4, ShapeStyle::from(&BLACK).stroke_width(1)))
                .map_err(|e| anyhow!("{e}"))?
                .label(name.to_string())
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// Box plots (min, q1, median, q3, max) per category.
pub fn box_plot(title: &str, y_label: &str, boxes: &[(String, crate::metrics::ChangeDistribution)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let y1 = boxes.iter().map(|b| b.1.max).fold(0.0f64, f64::max).max(1e-3) * 1.05;
        let n = boxes.len().max(1);
        let labels: Vec<String> = boxes.iter().map(|b| b.0.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(90)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..n as f64, 0f64..y1)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| labels.get(x.floor() as usize).cloned().unwrap_or_default())
            .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
            .y_desc(y_label)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (i, (_, d)) in boxes.iter().enumerate() {
            let x = i as f64;
            let c = colour(0);
            chart.draw_series(std::iter::once(Rectangle::new([(x + 0.25, d.q1), (x + 0.75, d.q3)], c.mix(0.3).filled()))).map_err(|e| anyhow!("{e}"))?;
            chart.draw_series(std::iter::once(Rectangle::new([(x + 0.25, d.q1), (x + 0.75, d.q3)], c.stroke_width(1)))).map_err(|e| anyhow!("{e}"))?;
            for seg in [
                vec![(x + 0.25, d.median), (x + 0.75, d.median)],
                vec![(x + 0.5, d.q3), (x + 0.5, d.max)],
                vec![(x + 0.5, d.q1), (x + 0.5, d.min)],
                vec![(x + 0.4, d.max), (x + 0.6, d.max)],
            ] {
                chart.draw_series(std::iter::once(PathElement::new(seg, BLACK.stroke_width(1)))).map_err(|e| anyhow!("{e}"))?;
            }
            chart.draw_series(std::iter::once(Circle::new((x + 0.5, d.mean), 3, RED.filled()))).map_err(|e| anyhow!("{e}"))?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(svg)
}
