//! Runs the real `mmvae` binary in temporary folders.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod celeba;
mod many_views;
mod pairs;
mod pipeline;
mod quickstart;
mod text_prior;
mod weak;

use common::write_dataset;

use std::path::PathBuf;

const TINY: &str = r#"
seed = 3
[model]
latent = 8
max_len = 10
image = { kind = "mlp", hidden = 64 }
text = { kind = "gru", embed = 16, hidden = 32 }
[optim]
lr = 0.005
batch_size = 20
epochs = 2
[data]
dataset = "mnist"
val_size = 50
caption_seed = 0
[loss]
beta = 1.0
kl_anneal_steps = 0
image_weight = 1.0
text_weight = 20.0
"#;

/// A tiny training config: seed 3, the given `[model]`, `[optim]` and
/// `[data]` lines, and a plain MVAE loss.
fn tiny_toml(model: &str, optim: &str, data: &str) -> String {
    format!(
        "seed = 3\n[model]\n{model}\n[optim]\n{optim}\n[data]\n{data}\n[loss]\nbeta = 1.0\nkl_anneal_steps = 0\nimage_weight = 1.0\ntext_weight = 20.0\n"
    )
}

/// `train` on the fixture's tiny config and data, quietly, into `out`.
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--config",
        "tiny.toml",
        "--out",
        out,
        "--data-dir",
        "data",
        "--quiet",
    ];
    v.extend_from_slice(extra);
    v
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    write_dataset(&root.join("data/mnist"), 1000);
    std::fs::write(root.join("tiny.toml"), TINY).unwrap();
    Fixture { _tmp: tmp, root }
}

/// A bar image of class `c`, as in [`write_dataset`].
fn bar(c: usize) -> mmvae_data::imageio::Image {
    let mut px = vec![0u8; 784];
    for y in (c * 2 + 3)..(c * 2 + 6) {
        for x in 4..24 {
            px[y * 28 + x] = 220;
        }
    }
    mmvae_data::imageio::Image::from_bytes(1, 28, 28, &px)
}
