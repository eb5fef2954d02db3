//! Turning dataset items into model inputs: host-side batches (built off
//! the training thread) and their device tensors.

use burn::prelude::*;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::tokenizer::EOS;
use mmvae_data::{ImageLabelSet, Vocab};

/// A batch in plain memory, cheap to build on any thread.
#[derive(Debug, Clone)]
pub struct HostBatch {
    pub size: usize,
    pub pixels: usize,
    pub max_len: usize,
    /// `[size, pixels]` in `[0, 1]`.
    pub images: Vec<f32>,
    /// `[size, max_len]` framed token ids.
    pub tokens: Vec<i64>,
    /// `[size]` position of each `<eos>`.
    pub last: Vec<i64>,
    pub labels: Vec<usize>,
    pub captions: Vec<String>,
}

/// A batch on a device.
///
/// # Shapes
/// `images`: `[batch, pixels]`, `tokens`: `[batch, time]`, `last`: `[batch]`
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Tensor<2>,
    pub tokens: Tensor<2, Int>,
    pub last: Tensor<1, Int>,
}

/// Frame token ids for the model: returns the `max_len` ids and the index of `<eos>`.
pub fn frame(vocab: &Vocab, ids: &[usize], max_len: usize) -> (Vec<i64>, i64) {
    let f = vocab.frame(ids, max_len);
    let last = f.iter().position(|&t| t == EOS).unwrap_or(max_len - 1);
    (f.into_iter().map(|t| t as i64).collect(), last as i64)
}

/// Where captions for a batch come from.
#[derive(Debug, Clone, Copy)]
pub struct CaptionSource {
    pub captioner: Captioner,
    pub set: CaptionSet,
    /// Separates draws (e.g. one stream per epoch, a fixed one for test).
    pub stream: u64,
}

impl HostBatch {
    /// Gather dataset items `indices` with their captions.
    pub fn gather(
        data: &ImageLabelSet,
        indices: &[usize],
        captions: CaptionSource,
        vocab: &Vocab,
        max_len: usize,
    ) -> Self {
        let pixels = data.pixels();
        let mut images = Vec::with_capacity(indices.len() * pixels);
        let mut tokens = Vec::with_capacity(indices.len() * max_len);
        let mut last = Vec::with_capacity(indices.len());
        let mut labels = Vec::with_capacity(indices.len());
        let mut caps = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend(data.image(i).iter().map(|&b| b as f32 / 255.0));
            let label = data.labels[i] as usize;
            // An item's own caption where the dataset has them.
            let cap = match &data.captions {
                Some(own) => own[i].clone(),
                None => captions
                    .captioner
                    .caption(captions.set, captions.stream, i, label),
            };
            let (t, l) = frame(vocab, &vocab.encode_lossy(&cap), max_len);
            tokens.extend(t);
            last.push(l);
            labels.push(label);
            caps.push(cap);
        }
        HostBatch {
            size: indices.len(),
            pixels,
            max_len,
            images,
            tokens,
            last,
            labels,
            captions: caps,
        }
    }

    pub fn to_device(&self, device: &Device) -> Batch {
        Batch {
            images: Tensor::from_data(
                TensorData::new(self.images.clone(), [self.size, self.pixels]),
                device,
            ),
            tokens: Tensor::from_data(
                TensorData::new(self.tokens.clone(), [self.size, self.max_len]),
                device,
            ),
            last: Tensor::from_data(TensorData::new(self.last.clone(), [self.size]), device),
        }
    }
}

/// Seeded Fisher–Yates shuffle of `0..n`.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s = seed;
    for i in (1..n).rev() {
        s = mmvae_data::captions::splitmix64(s);
        let j = (s % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let a = shuffled(100, 5);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_eq!(a, shuffled(100, 5));
        assert_ne!(a, shuffled(100, 6));
    }

    #[test]
    fn framing_marks_eos() {
        let v = Vocab::build(["a b c"]);
        let (t, last) = frame(&v, &v.encode("a b").unwrap(), 6);
        assert_eq!(t.len(), 6);
        assert_eq!(last, 3);
        assert_eq!(t[3], EOS as i64);
    }
}
