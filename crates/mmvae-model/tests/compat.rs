//! Checkpoints written before modalities were data (format 1: an image and
//! a caption, weights named `image_encoder`, `text_decoder`, …) load, and
//! the objective computed on them equals, on the same noise, the values the
//! two-modality code computed (`tests/fixtures/v1/losses.json`, written by
//! that code: every fusion, unimodal target and alignment, the image-only
//! latent, a learned pixel scale, the caption cycle, IWAE and DReG).

use mmvae_model::burn::prelude::*;
use mmvae_model::config::LossConfig;
use mmvae_model::io::checkpoint;
use mmvae_model::objective::TargetWeights;
use serde::Deserialize;
use std::path::Path;

mod common;

use common::image_text_batch;

#[derive(Deserialize)]
struct Case {
    case: String,
    checkpoint: String,
    total: f32,
    report: Vec<f32>,
    image_logits_sum: f32,
    loss: serde_json::Value,
}

const SIDE: usize = 4;

fn close(a: f32, b: f32, what: &str) {
    assert!(
        (a - b).abs() <= 2e-5 * a.abs().max(b.abs()).max(1.0),
        "{what}: {a} now, {b} in format 1"
    );
}

#[test]
fn format_1_checkpoints_load_and_give_the_same_objective() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let cases: Vec<Case> =
        serde_json::from_slice(&std::fs::read(root.join("losses.json")).unwrap()).unwrap();
    assert_eq!(cases.len(), 15);
    let device = Device::flex();
    for c in &cases {
        let (ck, model) = checkpoint::load(&root.join(&c.checkpoint), &device).unwrap();
        assert_eq!(ck.state.format, 1);
        assert_eq!(model.names, ["image", "text"]);
        let loss: LossConfig = serde_json::from_value(c.loss.clone()).unwrap();
        let weights = TargetWeights {
            weight: vec![
                loss.legacy_image_weight.unwrap(),
                loss.legacy_text_weight.unwrap(),
            ],
            cross: vec![loss.legacy_cross_weight.unwrap(), 1.0],
        };
        let plan = model.plan(&loss, &weights, 0);
        let (rows, cols) = (model.noise_rows(&plan, &loss, 4), model.noise_dim());
        let eps: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 29 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let out = model.loss_with_noise(
            &image_text_batch(SIDE, &device),
            &loss,
            &plan,
            loss.beta,
            Tensor::from_data(TensorData::new(eps, [rows, cols]), &device),
        );
        let what = |s: &str| format!("{}: {s}", c.case);
        close(out.total.into_scalar::<f32>(), c.total, &what("total"));
        let terms = out.terms.to_host();
        for (i, name) in [
            (1, "nll/image"),
            (2, "nll/text"),
            (3, "kl"),
            (4, "cross/image->text"),
            (5, "cross/text->image"),
        ] {
            close(terms[name], c.report[i], &what(name));
        }
        if loss.align_weight > 0.0 {
            close(terms["align"], c.report[6], &what("align"));
        }
        let logits: f32 = [out.reconstructed, out.generated]
            .into_iter()
            .flatten()
            .map(|t| t.sum().into_scalar::<f32>())
            .sum();
        assert!(
            (logits - c.image_logits_sum).abs() < 1e-3 * c.image_logits_sum.abs().max(1.0),
            "{}: image logits {logits} vs {}",
            c.case,
            c.image_logits_sum
        );
    }
}

#[test]
fn a_newer_format_is_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/poe");
    for f in ["model.bpk", "config.toml", "vocab.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let state = std::fs::read_to_string(src.join("state.json")).unwrap();
    std::fs::write(
        tmp.path().join("state.json"),
        state.replacen('{', "{\n  \"format\": 9,", 1),
    )
    .unwrap();
    let e = checkpoint::load(tmp.path(), &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(e.contains("format 9") && e.contains("newer"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}
