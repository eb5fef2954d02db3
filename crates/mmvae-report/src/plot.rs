//! Charts drawn with `plotters`: a scatter of 2-D points coloured by class
//! with one marker per modality (the t-SNE of latent means), and line charts
//! (training curves). Each renders to SVG text (for the HTML report) or to
//! PNG bytes. Text is set in a subset of DejaVu Sans embedded in the binary,
//! so no system font is needed.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::sync::Once;

use crate::error::{ReportError, Result};

static FONT: Once = Once::new();

fn font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");
        // The font is built in; registering it cannot fail at run time
        // unless the file is corrupt, which the tests would show.
        let _ = register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

fn plot_err<E: std::fmt::Debug>(e: E) -> ReportError {
    ReportError::Plot(format!("{e:?}"))
}

/// Colour of class `c`: the 10 "tab10" colours, then evenly spaced hues.
pub fn class_colour(c: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    if c < TAB10.len() {
        let (r, g, b) = TAB10[c];
        return RGBColor(r, g, b);
    }
    let (r, g, b) = HSLColor(((c * 37) % 360) as f64 / 360.0, 0.65, 0.45).rgb();
    RGBColor(r, g, b)
}

/// One point of a scatter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScatterPoint {
    pub xy: [f64; 2],
    pub class: usize,
    /// Index into [`Scatter::groups`]: 0 drawn as filled circles, 1 as
    /// triangles, 2 as crosses.
    pub group: usize,
}

/// A scatter plot of classed points.
#[derive(Debug, Clone)]
pub struct Scatter {
    pub title: String,
    pub points: Vec<ScatterPoint>,
    pub class_names: Vec<String>,
    /// Names of the marker groups (e.g. `["image", "text"]`).
    pub groups: Vec<String>,
}

fn range(v: impl Iterator<Item = f64> + Clone) -> std::ops::Range<f64> {
    let lo = v.clone().fold(f64::INFINITY, f64::min);
    let hi = v.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad)..(hi + pad)
}

fn draw_scatter<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    s: &Scatter,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    // Legend column on the right when classes are few enough to name.
    let named = s.class_names.len() <= 30;
    let (plot, legend) = if named {
        let w = root.dim_in_pixel().0;
        root.split_horizontally(w.saturating_sub(170))
    } else {
        let w = root.dim_in_pixel().0;
        root.split_horizontally(w)
    };
    let mut chart = ChartBuilder::on(&plot)
        .caption(&s.title, ("sans-serif", 20))
        .margin(10)
        .build_cartesian_2d(
            range(s.points.iter().map(|p| p.xy[0])),
            range(s.points.iter().map(|p| p.xy[1])),
        )?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .disable_y_axis()
        .draw()?;
    for g in 0..s.groups.len().max(1) {
        chart.draw_series(s.points.iter().filter(|p| p.group == g).map(|p| {
            let c = class_colour(p.class);
            let at = (p.xy[0], p.xy[1]);
            match g {
                0 => Circle::new(at, 3, c.filled()).into_dyn(),
                1 => TriangleMarker::new(at, 4, c.filled()).into_dyn(),
                _ => Cross::new(at, 3, c.stroke_width(1)).into_dyn(),
            }
        }))?;
    }
    if named {
        let style = ("sans-serif", 13).into_font().color(&BLACK);
        let mut y = 40;
        for (g, name) in s.groups.iter().enumerate() {
            let at = (18, y);
            match g {
                0 => legend.draw(&Circle::new(at, 4, BLACK.filled()))?,
                1 => legend.draw(&TriangleMarker::new(at, 5, BLACK.filled()))?,
                _ => legend.draw(&Cross::new(at, 4, BLACK.stroke_width(1)))?,
            }
            legend.draw(&Text::new(name.clone(), (30, y - 7), style.clone()))?;
            y += 20;
        }
        y += 10;
        for (c, name) in s.class_names.iter().enumerate() {
            legend.draw(&Rectangle::new(
                [(12, y - 5), (24, y + 5)],
                class_colour(c).filled(),
            ))?;
            legend.draw(&Text::new(name.clone(), (30, y - 7), style.clone()))?;
            y += 17;
        }
    }
    root.present()
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Lines {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

fn draw_lines<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    l: &Lines,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let all = || l.series.iter().flat_map(|s| s.points.iter());
    let mut chart = ChartBuilder::on(&root)
        .caption(&l.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(range(all().map(|p| p.0)), range(all().map(|p| p.1)))?;
    chart
        .configure_mesh()
        .x_desc(&l.x_label)
        .y_desc(&l.y_label)
        .label_style(("sans-serif", 12))
        .draw()?;
    for (k, s) in l.series.iter().enumerate() {
        let c = class_colour(k);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 2, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()
}

/// What can be drawn.
pub trait Chart {
    fn draw_svg(&self, size: (u32, u32)) -> Result<String>;
    fn draw_png(&self, size: (u32, u32)) -> Result<Vec<u8>>;
}

macro_rules! chart_impl {
    ($t:ty, $f:ident) => {
        impl Chart for $t {
            fn draw_svg(&self, size: (u32, u32)) -> Result<String> {
                font();
                let mut out = String::new();
                {
                    let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
                    $f(root, self).map_err(plot_err)?;
                }
                Ok(out)
            }

            fn draw_png(&self, size: (u32, u32)) -> Result<Vec<u8>> {
                font();
                let (w, h) = size;
                let mut rgb = vec![255u8; (w * h * 3) as usize];
                {
                    let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                    $f(root, self).map_err(plot_err)?;
                }
                png(w, h, rgb)
            }
        }
    };
}

chart_impl!(Scatter, draw_scatter);
chart_impl!(Lines, draw_lines);

/// PNG bytes of an 8-bit RGB buffer.
fn png(w: u32, h: u32, rgb: Vec<u8>) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| ReportError::Plot("pixel buffer of the wrong size".into()))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(plot_err)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scatter() -> Scatter {
        let points = (0..60)
            .map(|i| ScatterPoint {
                xy: [
                    (i % 3) as f64 * 10.0 + (i as f64 * 0.37).sin(),
                    (i as f64 * 0.11).cos(),
                ],
                class: i % 3,
                group: (i / 3) % 2,
            })
            .collect();
        Scatter {
            title: "t-SNE of latent means".into(),
            points,
            class_names: vec!["zero".into(), "one".into(), "two".into()],
            groups: vec!["image".into(), "text".into()],
        }
    }

    #[test]
    fn scatter_renders_to_png_with_the_class_colours() {
        let bytes = scatter().draw_png((500, 300)).unwrap();
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (500, 300));
        // Every class colour appears (the markers are drawn), as does
        // text-dark ink (the title and legend).
        for c in 0..3 {
            let RGBColor(r, g, b) = class_colour(c);
            assert!(
                img.pixels().any(|p| p.0 == [r, g, b]),
                "class {c} colour missing"
            );
        }
        assert!(img.pixels().any(|p| p.0.iter().all(|&v| v < 60)));
    }

    #[test]
    fn svg_names_the_title_legend_and_series() {
        let svg = scatter().draw_svg((500, 300)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for t in ["t-SNE of latent means", "zero", "two", "image", "text"] {
            assert!(svg.contains(t), "{t}");
        }
        let lines = Lines {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "nats".into(),
            series: vec![
                Series {
                    name: "train".into(),
                    points: vec![(1.0, 5.0), (2.0, 3.0), (3.0, 2.5)],
                },
                Series {
                    name: "validation".into(),
                    points: vec![(1.0, 5.5), (2.0, 3.5), (3.0, 3.0)],
                },
            ],
        };
        let svg = lines.draw_svg((400, 250)).unwrap();
        for t in ["train", "validation", "epoch", "nats", "<polyline"] {
            assert!(svg.contains(t), "{t}");
        }
        assert!(lines.draw_png((400, 250)).is_ok());
    }

    #[test]
    fn palette_colours_are_distinct() {
        let c: std::collections::BTreeSet<_> = (0..40)
            .map(|k| {
                let RGBColor(r, g, b) = class_colour(k);
                (r, g, b)
            })
            .collect();
        assert!(c.len() >= 38, "{}", c.len());
    }
}
