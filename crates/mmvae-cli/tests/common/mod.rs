//! What the tests of the real binary share: running it, and writing a
//! small synthetic dataset for it.

#![allow(dead_code)]

pub mod browser;
pub mod server;

pub use server::*;

use std::path::Path;
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mmvae"));
    c.env_remove("MMVAE_DATA");
    c
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("binary runs")
}

pub fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert!(
        o.status.success(),
        "mmvae {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs a failing command; returns its stderr after checking it is one
/// `error:` line with exit code 1 and no panic.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(1),
        "mmvae {args:?} should fail cleanly: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    err
}

/// A command line split at spaces (for arguments without spaces).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A small synthetic MNIST-format dataset: class `c` is a bright bar at row
/// band `c`, so a model can learn it in a few steps.
pub fn write_dataset(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for split in ["train", "t10k"] {
        let mut imgs = vec![0u8; n * 784];
        let mut lbls = Vec::new();
        for i in 0..n {
            let c = i % 10;
            for y in (c * 2 + 3)..(c * 2 + 6) {
                for x in 4..24 {
                    imgs[i * 784 + y * 28 + x] = 200 + (i % 50) as u8;
                }
            }
            lbls.push(c as u8);
        }
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            mmvae_data::idx::encode(&[n, 28, 28], &imgs),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte")),
            mmvae_data::idx::encode(&[n], &lbls),
        )
        .unwrap();
    }
}

/// A tiny image + caption training config (MLP image, GRU caption, two
/// epochs) on the `mnist` dataset of [`write_dataset`].
pub const TINY: &str = r#"
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
