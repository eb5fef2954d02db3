//! Report sections for any set of modalities: the conditional coherence
//! matrix as a heat map, and a cross-generation grid (each modality given
//! alone → every modality).

use base64::Engine as _;
use mmvae_data::captions::CaptionSet;
use mmvae_data::imageio::{self, Image};
use mmvae_data::ImageLabelSet;
use mmvae_model::infer::{Draw, Loaded};
use mmvae_model::io::batch::{CaptionSource, HostBatch};
use mmvae_model::objective::Subset;
use mmvae_model::predict::Prediction;

use crate::error::Result;
use crate::html::escape;

/// The background of a cell holding `v` in `[0, 1]`: from pale red (0)
/// through pale yellow to green (1).
fn heat(v: f64) -> String {
    let hue = 120.0 * v.clamp(0.0, 1.0);
    format!("hsl({hue:.0}, 70%, 78%)")
}

/// A table cell showing a fraction as a percentage on its heat colour, or
/// a dash where there is none.
fn heat_cell(v: Option<&serde_json::Value>) -> String {
    match v.and_then(|v| v.as_f64()) {
        Some(v) => format!(
            "<td style=\"background:{}\">{:.1}%</td>",
            heat(v),
            100.0 * v
        ),
        None => "<td>–</td>".into(),
    }
}

/// The coherence matrix of an `eval.json` (`coherence_matrix`) as an HTML
/// heat map, rows the given subsets, columns the generated modalities, and
/// the mean by number of inputs; a note where the evaluation has none.
pub fn coherence_section(eval: Option<&serde_json::Value>) -> String {
    let Some(cm) = eval.and_then(|e| e.get("coherence_matrix")) else {
        return "<p class=\"note\">No coherence matrix yet: run <code>mmvae eval --checkpoint DIR --metrics coherence</code> and build the report again.</p>".into();
    };
    let Some(cells) = cm.get("cells").and_then(|c| c.as_object()) else {
        return "<p class=\"note\">The coherence matrix is empty.</p>".into();
    };
    let mut outputs: Vec<&String> = Vec::new();
    for row in cells.values().filter_map(|r| r.as_object()) {
        for k in row.keys() {
            if !outputs.contains(&k) {
                outputs.push(k);
            }
        }
    }
    // Rows by number of inputs, then by name.
    let mut rows: Vec<(&String, &serde_json::Value)> = cells.iter().collect();
    rows.sort_by_key(|(k, _)| (k.matches('+').count(), (*k).clone()));
    let mut s = String::from(
        "<p>Fraction of test items whose generated modality (column) shows the item's class, given the modalities of the row (read by the evaluation classifier, the caption parser, or the label itself).</p><table id=\"coherence-matrix\" class=\"heat\"><tr><th>given \\ generated</th>",
    );
    for o in &outputs {
        s.push_str(&format!("<th>{}</th>", escape(o)));
    }
    s.push_str("</tr>");
    for (given, row) in rows {
        s.push_str(&format!("<tr><th>{}</th>", escape(given)));
        for o in &outputs {
            s.push_str(&heat_cell(row.get(o.as_str())));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    if let Some(by) = cm.get("by_inputs").and_then(|b| b.as_object()) {
        let parts: Vec<String> = by
            .iter()
            .filter_map(|(k, v)| Some(format!("{k}: {:.2}%", 100.0 * v.as_f64()?)))
            .collect();
        s.push_str(&format!(
            "<p id=\"coherence-by-inputs\">Mean by number of inputs (outputs outside the inputs) — {}. Joint coherence of prior samples: {:.2}%.</p>",
            parts.join(", "),
            100.0 * cm.get("joint").and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
        ));
    }
    s.push_str(&attribute_table(cm));
    s.push_str(&fid_table(cm));
    s
}

/// Each image output's Fréchet distance by number of inputs and of prior
/// samples (`coherence_matrix.fid`), with the mean over outputs; empty
/// where the evaluation measured none.
fn fid_table(cm: &serde_json::Value) -> String {
    let Some(fid) = cm.get("fid") else {
        return String::new();
    };
    let by = |v: Option<&serde_json::Value>| v.and_then(|b| b.as_object()).cloned();
    let (Some(per), Some(mean)) = (by(fid.get("by_output")), by(fid.get("by_inputs"))) else {
        return String::new();
    };
    let ks: Vec<&String> = mean.keys().collect();
    let number = |v: Option<&serde_json::Value>| match v.and_then(|v| v.as_f64()) {
        Some(x) => format!("<td>{x:.1}</td>"),
        None => "<td>–</td>".into(),
    };
    let mut s = format!(
        "<p>Fréchet distance of each generated image modality to the test items' own images of it, by number of inputs (the mean over the subsets without it) and from prior samples; in the {}, lower is better.</p><table id=\"fid-by-modality\"><tr><th>generated</th>",
        escape(fid.get("features").and_then(|f| f.as_str()).unwrap_or("classifier features"))
    );
    for k in &ks {
        s.push_str(&format!("<th>given {}</th>", escape(k)));
    }
    s.push_str("<th>prior</th></tr>");
    let prior = fid.get("prior");
    for (name, row) in &per {
        s.push_str(&format!("<tr><th>{}</th>", escape(name)));
        for k in &ks {
            s.push_str(&number(row.get(k.as_str())));
        }
        s.push_str(&number(prior.and_then(|p| p.get(name.as_str()))));
        s.push_str("</tr>");
    }
    s.push_str("<tr><th>mean</th>");
    for k in &ks {
        s.push_str(&number(mean.get(k.as_str())));
    }
    s.push_str(&number(fid.get("prior_mean")));
    s.push_str("</tr></table>");
    s
}

/// Each attribute of each output generated from one input
/// (`coherence_matrix.by_slot`) as a heat map; empty where the evaluation
/// has none (datasets with one attribute).
fn attribute_table(cm: &serde_json::Value) -> String {
    let Some(by) = cm.get("by_slot").and_then(|b| b.as_object()) else {
        return String::new();
    };
    let mut slots: Vec<&String> = Vec::new();
    let mut rows = Vec::new();
    for (given, outputs) in by.iter().filter(|(g, _)| !g.contains('+')) {
        for (output, per) in outputs.as_object().into_iter().flatten() {
            let Some(per) = per.as_object() else { continue };
            for k in per.keys() {
                if !slots.contains(&k) {
                    slots.push(k);
                }
            }
            rows.push((given, output, per));
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<p>Each attribute on its own, for every output generated from one input: what an output keeps of the item where it misses some attribute.</p><table id=\"coherence-by-attribute\" class=\"heat\"><tr><th>given → generated</th>",
    );
    for k in &slots {
        s.push_str(&format!("<th>{}</th>", escape(k)));
    }
    s.push_str("</tr>");
    for (given, output, per) in rows {
        s.push_str(&format!(
            "<tr><th>{} → {}</th>",
            escape(given),
            escape(output)
        ));
        for k in &slots {
            s.push_str(&heat_cell(per.get(k.as_str())));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    s
}

fn data_uri(img: &Image) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(imageio::encode_png(img))
    )
}

/// One prediction as HTML: a row of images, or a list of texts.
fn prediction_html(p: &Prediction) -> Result<String> {
    Ok(match p {
        Prediction::Images(imgs) => {
            let grid = imageio::make_grid(imgs, imgs.len())?;
            format!(
                "<img class=\"pixelated\" style=\"height:{}px\" src=\"{}\" alt=\"generated images\">",
                grid.height,
                data_uri(&grid)
            )
        }
        Prediction::Captions(c) | Prediction::Labels(c) => {
            let items: Vec<String> = c.iter().map(|t| escape(t)).collect();
            format!("<span class=\"texts\">{}</span>", items.join(" · "))
        }
    })
}

/// For `items` test items: each modality given alone (its row shows what
/// was given, then every modality generated from it), one draw per item.
pub fn cross_generation_section(m: &Loaded, test: &ImageLabelSet, items: usize) -> Result<String> {
    let model = &m.model;
    let idx: Vec<usize> = (0..items.min(test.len())).collect();
    let source = CaptionSource {
        captioner: m.captioner(),
        set: CaptionSet::Train,
        stream: 0x7E57,
    };
    let hb = HostBatch::gather(&model.layout(), test, &idx, source, &m.checkpoint.vocab);
    let batch = hb.to_device(&m.device);
    // What each modality of the items holds: itself reconstructed is not
    // the input, so the inputs come from the data.
    let given_row: Vec<Prediction> = model
        .names
        .iter()
        .map(
            |name| match test.view_of(name).filter(|_| is_image(m, name)) {
                Some(v) => Prediction::Images(
                    idx.iter()
                        .map(|&i| {
                            Image::from_bytes(
                                test.channels,
                                test.cols,
                                test.rows,
                                test.view_image(v, i),
                            )
                        })
                        .collect(),
                ),
                _ => Prediction::Captions(if is_label(m, name) {
                    let source = test.kind.label_source(name);
                    let names = test.kind.label_names(source);
                    hb.labels
                        .iter()
                        .map(|&l| {
                            let v = test.kind.label_value(source, l);
                            names.get(v).cloned().unwrap_or_else(|| v.to_string())
                        })
                        .collect()
                } else {
                    hb.captions.clone()
                }),
            },
        )
        .collect();
    let mut s = format!(
        "<p>{} test items; row <i>m</i> generates every modality from modality <i>m</i> alone (one draw each). The first row shows the items.</p><table id=\"cross-generation\"><tr><th>given \\ generated</th>",
        idx.len()
    );
    for n in &model.names {
        s.push_str(&format!("<th>{}</th>", escape(n)));
    }
    s.push_str("</tr><tr><th>the items</th>");
    for p in &given_row {
        s.push_str(&format!("<td>{}</td>", prediction_html(p)?));
    }
    s.push_str("</tr>");
    for (g, name) in model.names.iter().enumerate() {
        let preds = m.cross_generate(&batch, Subset::single(g), Draw::Sample);
        s.push_str(&format!("<tr><th>{}</th>", escape(name)));
        for p in &preds {
            s.push_str(&format!("<td>{}</td>", prediction_html(p)?));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    Ok(s)
}

fn is_image(m: &Loaded, name: &str) -> bool {
    m.model.index_of(name).is_some_and(|i| {
        matches!(
            m.model.experts[i],
            mmvae_model::modality::expert::Expert::Image(_)
        )
    })
}

fn is_label(m: &Loaded, name: &str) -> bool {
    m.model.index_of(name).is_some_and(|i| {
        matches!(
            m.model.experts[i],
            mmvae_model::modality::expert::Expert::Label(_)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heat_map_lists_every_subset_and_output_with_its_colour() {
        let eval = serde_json::json!({
            "coherence_matrix": {
                "cells": {
                    "a": { "a": 1.0, "b": 0.5 },
                    "b": { "a": 0.0, "b": 0.9 },
                    "a+b": { "a": 0.95, "b": 0.9 }
                },
                "by_inputs": { "1": 0.25, "2": 0.925 },
                "joint": 0.4,
                "by_slot": {
                    "a": { "b": { "shape": 0.75, "size": 1.0 } },
                    "a+b": { "a": { "shape": 0.5, "size": 0.5 } }
                }
            }
        });
        let html = coherence_section(Some(&eval));
        // Single inputs before pairs.
        let (a, ab) = (
            html.find("<th>a</th><td").unwrap(),
            html.find("<th>a+b</th>").unwrap(),
        );
        assert!(a < ab, "{html}");
        assert!(
            html.contains("background:hsl(60, 70%, 78%)\">50.0%"),
            "{html}"
        );
        assert!(
            html.contains("background:hsl(0, 70%, 78%)\">0.0%"),
            "{html}"
        );
        assert!(
            html.contains("1: 25.00%, 2: 92.50%") && html.contains("40.00%"),
            "{html}"
        );
        // Each attribute, single inputs only.
        assert!(
            html.contains("<th>a → b</th><td style=\"background:hsl(90, 70%, 78%)\">75.0%</td>"),
            "{html}"
        );
        assert!(!html.contains("a+b → a"), "{html}");
        let mut plain = eval.clone();
        plain["coherence_matrix"]
            .as_object_mut()
            .unwrap()
            .remove("by_slot");
        assert!(!coherence_section(Some(&plain)).contains("coherence-by-attribute"));
        assert!(coherence_section(None).contains("mmvae eval"));
        assert!(!html.contains("fid-by-modality"), "no distances measured");
    }

    #[test]
    fn the_fid_table_lists_each_image_output_by_inputs_and_prior() {
        let eval = serde_json::json!({
            "coherence_matrix": {
                "cells": { "a": { "b": 0.5 }, "b": { "a": 0.5 } },
                "fid": {
                    "features": "test <features>",
                    "by_output": { "a": { "1": 12.34 }, "b": { "1": 40.0 } },
                    "by_inputs": { "1": 26.17 },
                    "prior": { "a": 50.0 },
                    "prior_mean": 50.0
                }
            }
        });
        let html = coherence_section(Some(&eval));
        assert!(html.contains("id=\"fid-by-modality\""), "{html}");
        assert!(html.contains("test &lt;features&gt;"), "{html}");
        assert!(html.contains("<th>given 1</th><th>prior</th>"), "{html}");
        assert!(
            html.contains("<tr><th>a</th><td>12.3</td><td>50.0</td></tr>"),
            "{html}"
        );
        assert!(
            html.contains("<tr><th>b</th><td>40.0</td><td>–</td></tr>"),
            "{html}"
        );
        assert!(
            html.contains("<tr><th>mean</th><td>26.2</td><td>50.0</td></tr>"),
            "{html}"
        );
    }
}
