//! What the model crate's integration tests share.

use mmvae_model::burn::prelude::*;
use mmvae_model::io::batch::{Batch, Input};

/// Tokens per caption of [`image_text_batch`] (`<bos>` … `<eos>`, padded).
pub const LEN: usize = 6;

/// Four items of an image and a caption, fixed values: grey images of
/// `side`×`side` pixels and captions over a vocabulary of 9 (ids 0–8).
pub fn image_text_batch(side: usize, device: &Device) -> Batch {
    let b = 4;
    let px: Vec<f32> = (0..b * side * side)
        .map(|i| ((i * 37) % 11) as f32 / 10.0)
        .collect();
    let toks: Vec<i64> = vec![
        1, 4, 5, 2, 0, 0, 1, 6, 7, 8, 2, 0, 1, 4, 8, 2, 0, 0, 1, 5, 5, 6, 2, 0,
    ];
    Batch {
        inputs: vec![
            Input::Image(Tensor::from_data(
                TensorData::new(px, [b, side * side]),
                device,
            )),
            Input::Tokens {
                ids: Tensor::from_data(TensorData::new(toks, [b, LEN]), device),
                last: Tensor::from_data(TensorData::new(vec![3i64, 4, 3, 4], [b]), device),
            },
        ],
        present: Tensor::ones([b, 2], device),
    }
}
