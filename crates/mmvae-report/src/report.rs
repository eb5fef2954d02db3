//! `mmvae report`: one self-contained HTML page about a checkpoint — its
//! config, training curves, metrics, text → image grids per class,
//! image → text examples, consistency examples (matches and near-misses),
//! retrieval examples, a latent interpolation and a t-SNE of the latent
//! means. Everything that needs the model is computed here, seeded; the
//! metrics table comes from a saved `eval.json` (and `consistency.json`).

use mmvae_data::captions::CaptionSet;
use mmvae_data::imageio::{self, Image};
use mmvae_data::ImageLabelSet;
use mmvae_model::eval::consistency::{self, Calibration};
use mmvae_model::modality::ModalityKind;

use crate::image_text::{
    consistency_section, image_to_text_section, interpolation_section, retrieval_section,
    text_to_image_section,
};
use crate::modalities;
use mmvae_model::infer::Loaded;
use mmvae_model::io::batch::{CaptionSource, HostBatch};
use mmvae_model::io::data::TEST_STREAM;
use std::path::Path;

use crate::error::{ReportError, Result};
use crate::html::{escape, table, Page};
use crate::plot::{Chart, Lines, Scatter, ScatterPoint, Series};
use crate::tsne::{self, TsneConfig};

/// What goes into a report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Test items in the t-SNE (each gives an image and a caption point).
    pub tsne_items: usize,
    pub tsne: TsneConfig,
    /// Images per class in the text → image grids.
    pub per_class: usize,
    /// At most this many classes get a grid.
    pub max_classes: usize,
    /// Rows of the example tables.
    pub examples: usize,
    /// Test items the retrieval examples search.
    pub retrieval_pool: usize,
    pub seed: u64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            tsne_items: 500,
            tsne: TsneConfig::default(),
            per_class: 8,
            max_classes: 30,
            examples: 12,
            retrieval_pool: 200,
            seed: 0,
        }
    }
}

/// Saved results a report shows next to what it computes.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    /// `mmvae eval`'s JSON.
    pub eval: Option<serde_json::Value>,
    pub calibration: Option<Calibration>,
    /// `metrics.jsonl` of the training run, one value per epoch.
    pub epochs: Vec<serde_json::Value>,
}

impl Saved {
    /// Read what exists: `eval.json` and `consistency.json` in the
    /// checkpoint (or `eval` if given), `metrics.jsonl` beside the
    /// checkpoint folder. A file that exists but cannot be parsed is an
    /// error naming it; a missing one is left out.
    pub fn read(m: &Loaded, eval: Option<&Path>) -> Result<Saved> {
        let dir = &m.checkpoint.dir;
        let eval_path = eval.map(Path::to_path_buf).or_else(|| {
            [dir.join("eval.json"), dir.join("../eval.json")]
                .into_iter()
                .find(|p| p.is_file())
        });
        let eval = match eval_path {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| ReportError::file(&p, e))?;
                Some(serde_json::from_str(&text).map_err(|e| ReportError::file(&p, e))?)
            }
            None => None,
        };
        let calibration = if consistency::calibration_path(dir).is_file() {
            Some(Calibration::load(m)?)
        } else {
            None
        };
        let jsonl = dir.join("../metrics.jsonl");
        let mut epochs = Vec::new();
        if jsonl.is_file() {
            let text = std::fs::read_to_string(&jsonl).map_err(|e| ReportError::file(&jsonl, e))?;
            for (k, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                epochs.push(
                    serde_json::from_str(line)
                        .map_err(|e| ReportError::file(&jsonl, format!("line {}: {e}", k + 1)))?,
                );
            }
        }
        Ok(Saved {
            eval,
            calibration,
            epochs,
        })
    }
}

pub(crate) fn png(img: &Image) -> Vec<u8> {
    imageio::encode_png(img)
}

/// Nearest-neighbour enlargement by an integer factor.
pub(crate) fn upscale(img: &Image, k: usize) -> Image {
    let (w, h) = (img.width * k, img.height * k);
    let mut pixels = Vec::with_capacity(img.channels * w * h);
    for c in 0..img.channels {
        let plane = &img.pixels[c * img.width * img.height..];
        for y in 0..h {
            for x in 0..w {
                pixels.push(plane[(y / k) * img.width + x / k]);
            }
        }
    }
    Image {
        channels: img.channels,
        width: w,
        height: h,
        pixels,
    }
}

/// A grid of images as PNG; small images (≤ 32 px) are shown twice as large.
pub(crate) fn grid_png(images: &[Image], cols: usize) -> Result<Vec<u8>> {
    let grid = imageio::make_grid(images, cols)?;
    let k = if images[0].width <= 32 { 2 } else { 1 };
    Ok(png(&upscale(&grid, k)))
}

/// `n` test items drawn from a seeded shuffle of the split (which may store
/// its items class by class or cycle through the classes), in split order.
pub(crate) fn spread(len: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = mmvae_data::dataset::shuffled(len, 0)
        .into_iter()
        .take(n)
        .collect();
    v.sort();
    v
}

pub(crate) fn test_image(test: &ImageLabelSet, i: usize) -> Image {
    Image::from_bytes(test.channels, test.cols, test.rows, test.image(i))
}

pub(crate) fn source(m: &Loaded) -> CaptionSource {
    CaptionSource {
        captioner: m.captioner(),
        set: CaptionSet::Train,
        stream: TEST_STREAM,
    }
}

/// Numeric leaves of a JSON value as (dotted path, value), `settings` and
/// per-slot breakdowns left out.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_string(), x));
            }
        }
        serde_json::Value::Array(a) => {
            for (k, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{}]", k + 1), x, out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                if k == "settings" || k == "per_slot" || k == "strict_by_value" {
                    continue;
                }
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        _ => {}
    }
}

fn config_section(m: &Loaded) -> String {
    let st = &m.checkpoint.state;
    let toml = std::fs::read_to_string(m.checkpoint.dir.join("config.toml")).unwrap_or_default();
    format!(
        "<p>dataset <b>{}</b>, {} epoch(s), {} steps, {:.0} s of training; validation loss {:.3} (best {:.3}).</p><pre id=\"config-toml\">{}</pre>",
        escape(&st.dataset.to_string()),
        st.epoch,
        st.step,
        st.elapsed_s,
        st.val_loss,
        st.best_val_loss,
        escape(&toml)
    )
}

fn curves_section(saved: &Saved) -> Result<String> {
    if saved.epochs.is_empty() {
        return Ok("<p class=\"note\">No metrics.jsonl beside the checkpoint folder.</p>".into());
    }
    let series = |split: &str, key: &str, name: &str| Series {
        name: name.to_string(),
        points: saved
            .epochs
            .iter()
            .filter_map(|e| Some((e["epoch"].as_f64()?, e[split][key].as_f64()?)))
            .collect(),
    };
    let charts = [
        Lines {
            title: "negative ELBO objective".into(),
            x_label: "epoch".into(),
            y_label: "nats per item".into(),
            series: vec![
                series("train", "loss", "train"),
                series("val", "loss", "validation"),
            ],
        },
        Lines {
            title: "validation image terms".into(),
            x_label: "epoch".into(),
            y_label: "nats per image".into(),
            series: vec![
                series("val", "nll/image", "image | image, text"),
                series("val", "cross/text->image", "image | text"),
            ],
        },
        Lines {
            title: "validation text terms".into(),
            x_label: "epoch".into(),
            y_label: "nats per caption".into(),
            series: vec![
                series("val", "nll/text", "text | image, text"),
                series("val", "cross/image->text", "text | image"),
            ],
        },
    ];
    let mut s = String::new();
    for c in charts
        .iter()
        .filter(|c| c.series.iter().any(|s| !s.points.is_empty()))
    {
        s.push_str(&c.draw_svg((520, 300))?);
    }
    Ok(s)
}

fn metrics_section(saved: &Saved) -> String {
    let mut s = String::new();
    match &saved.eval {
        Some(e) => {
            let mut rows = Vec::new();
            flatten("", e, &mut rows);
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .filter(|(k, _)| k != "seed" && k != "test_items")
                .map(|(k, v)| vec![k, format!("{v:.4}")])
                .collect();
            s.push_str(&format!(
                "<p>From <code>mmvae eval</code> on {} test items, seed {} (settings: <code>{}</code>).</p>",
                e["test_items"],
                e["seed"],
                escape(&e["settings"].to_string())
            ));
            if let Some(source) = e["text_to_image_latent"].as_str() {
                s.push_str(&format!(
                    "<p id=\"t2i-source\">Text→image latents: {}.</p>",
                    escape(source)
                ));
            }
            s.push_str(&table("metrics-table", &["metric", "value"], &rows));
        }
        None => s.push_str(
            "<p class=\"note\">No eval.json yet: run <code>mmvae eval --checkpoint DIR</code> and build the report again.</p>",
        ),
    }
    if let Some(c) = &saved.calibration {
        let rows: Vec<Vec<String>> = c
            .test
            .iter()
            .map(|(score, r)| {
                vec![
                    score.name().to_string(),
                    format!(
                        "{:.4}",
                        c.thresholds.get(score).copied().unwrap_or(f32::NAN)
                    ),
                    format!("{:.4}", r.random.f1),
                    format!("{:.4}", r.random.auroc),
                    format!("{:.4}", r.hard.auroc),
                ]
            })
            .collect();
        s.push_str(&format!(
            "<p>Consistency checking on {} test pairs per kind, thresholds fitted on {} validation items (default score: {}).</p>",
            c.test_items,
            c.val_items,
            c.default_score.name()
        ));
        s.push_str(&table(
            "consistency-table",
            &[
                "score",
                "threshold",
                "F1 (random)",
                "AUROC (random)",
                "AUROC (hard)",
            ],
            &rows,
        ));
    }
    s
}

/// The t-SNE scatter of image and caption latent means of `items` test items.
pub fn tsne_scatter(
    m: &Loaded,
    test: &ImageLabelSet,
    items: usize,
    cfg: &TsneConfig,
) -> Result<Scatter> {
    let idx = spread(test.len(), items);
    if idx.len() < 2 {
        return Err(ReportError::Invalid(format!(
            "a t-SNE needs at least 2 test items, there are {}",
            idx.len()
        )));
    }
    let hb = HostBatch::gather(
        &m.model.layout(),
        test,
        &idx,
        source(m),
        &m.checkpoint.vocab,
    );
    let captions = hb.captions.clone();
    let labels = hb.labels.clone();
    let images = hb.to_device(&m.device).images();
    let (mx, my) = m.latent_means(images, &captions)?;
    let n = mx.len();
    let mut all = mx;
    all.extend(my);
    let y = tsne::embed(&all, cfg)?;
    let points = y
        .iter()
        .enumerate()
        .map(|(k, xy)| ScatterPoint {
            xy: *xy,
            class: labels[k % n],
            group: k / n,
        })
        .collect();
    Ok(Scatter {
        title: format!("t-SNE of latent means ({n} test items)"),
        points,
        class_names: test.kind.class_names(),
        groups: vec!["q(z|image)".into(), "q(z|caption)".into()],
    })
}

/// The t-SNE of the image and caption posteriors' means, with its caption.
fn tsne_section(m: &Loaded, test: &ImageLabelSet, opts: &ReportOptions) -> Result<String> {
    let scatter = tsne_scatter(
        m,
        test,
        opts.tsne_items,
        &TsneConfig {
            seed: opts.seed,
            ..opts.tsne
        },
    )?;
    Ok(format!(
        "<p>Posterior means of q(z|image) (circles) and q(z|caption) (triangles), coloured by class; perplexity {}.</p>{}",
        opts.tsne.perplexity,
        scatter.draw_svg((900, 620))?
    ))
}

/// Build the report page.
pub fn build(
    m: &Loaded,
    test: &ImageLabelSet,
    saved: &Saved,
    opts: &ReportOptions,
) -> Result<String> {
    m.seed(opts.seed);
    let kind = m.checkpoint.config.data.dataset;
    let mut page = Page::new(&format!(
        "mmvae report: {} ({})",
        kind,
        m.checkpoint.dir.display()
    ));
    page.section("model", "Model and training", config_section(m));
    page.section("curves", "Training curves", curves_section(saved)?);
    page.section("metrics", "Metrics", metrics_section(saved));
    // Sections that need several classes or items say why they are empty
    // instead of failing the whole page.
    let or_note = |r: Result<String>| {
        r.unwrap_or_else(|e| {
            format!(
                "<p class=\"note\">Not shown: {}</p>",
                escape(&e.to_string())
            )
        })
    };
    page.section(
        "coherence-matrix-section",
        "Conditional coherence",
        modalities::coherence_section(saved.eval.as_ref()),
    );
    page.section(
        "cross-generation-section",
        "Cross-generation",
        or_note(modalities::cross_generation_section(m, test, 8)),
    );
    let has = |k| m.model.index_of_kind(k).is_some();
    if !(has(ModalityKind::Image) && has(ModalityKind::Text)) {
        // The image ↔ caption sections need both.
        return Ok(page.render());
    }
    page.section(
        "text-to-image",
        "Text → image",
        text_to_image_section(m, test, opts)?,
    );
    page.section(
        "image-to-text",
        "Image → text",
        image_to_text_section(m, test, opts)?,
    );
    page.section(
        "consistency",
        "Consistency checks",
        or_note(consistency_section(m, test, saved, opts)),
    );
    page.section(
        "retrieval",
        "Retrieval",
        or_note(retrieval_section(m, test, opts)),
    );
    page.section(
        "interpolation-section",
        "Latent interpolation",
        interpolation_section(m, test)?,
    );
    page.section("tsne", "Latent space (t-SNE)", tsne_section(m, test, opts)?);
    Ok(page.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscale_repeats_pixels() {
        let img = Image {
            channels: 2,
            width: 2,
            height: 1,
            pixels: vec![0.1, 0.2, 0.3, 0.4],
        };
        let u = upscale(&img, 2);
        assert_eq!((u.width, u.height), (4, 2));
        assert_eq!(
            u.pixels,
            vec![0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.3, 0.3, 0.4, 0.4]
        );
    }

    #[test]
    fn flatten_lists_numeric_leaves_without_settings() {
        let v = serde_json::json!({
            "seed": 1,
            "settings": {"batch_size": 500},
            "text_to_image": {"strict": 0.5, "per_slot": {"digit": 0.5}},
            "caption_bleu": [0.9, 0.8],
            "dataset": "mnist"
        });
        let mut out = Vec::new();
        flatten("", &v, &mut out);
        assert_eq!(
            out,
            vec![
                ("caption_bleu[1]".to_string(), 0.9),
                ("caption_bleu[2]".to_string(), 0.8),
                ("seed".to_string(), 1.0),
                ("text_to_image.strict".to_string(), 0.5),
            ]
        );
    }

    #[test]
    fn spread_mixes_classes_of_a_cycled_split() {
        assert_eq!(spread(3, 5), vec![0, 1, 2]);
        let v = spread(3000, 300);
        assert_eq!(v.len(), 300);
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        let classes: std::collections::BTreeSet<usize> = v.iter().map(|i| i % 30).collect();
        assert!(classes.len() >= 29);
    }
}
