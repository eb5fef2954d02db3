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

use common::{write_dataset, TINY};

use std::path::PathBuf;

/// A tiny training config: seed 3, the given `[model]`, `[optim]` and
/// `[data]` lines, and a plain MVAE loss.
fn tiny_toml(model: &str, optim: &str, data: &str) -> String {
    format!(
        "seed = 3\n[model]\n{model}\n[optim]\n{optim}\n[data]\n{data}\n[loss]\nbeta = 1.0\nkl_anneal_steps = 0\nimage_weight = 1.0\ntext_weight = 20.0\n"
    )
}

/// A tiny config of a vision dataset's image, its grey copy (an input
/// only: never decoded) and its caption, with the given `[data]` lines.
fn vision_toml(data: &str, max_len: usize, batch_size: usize) -> String {
    format!(
        r#"seed = 2
[[modalities]]
name = "image"
kind = "image"
model = {{ kind = "mlp", hidden = 16 }}
[[modalities]]
name = "grey"
kind = "image"
model = {{ kind = "mlp", hidden = 16 }}
weight = 0.0
[[modalities]]
name = "text"
kind = "text"
model = {{ kind = "gru", embed = 8, hidden = 16 }}
weight = 20.0
[model]
latent = 8
max_len = {max_len}
[optim]
lr = 0.003
batch_size = {batch_size}
epochs = 1
[data]
{data}
[loss]
beta = 1.0
kl_anneal_steps = 0
"#
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
