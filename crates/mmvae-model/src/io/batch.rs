//! Turning dataset items into model inputs: host-side batches (built off
//! the training thread) and their device tensors.

use burn::prelude::*;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::tokenizer::EOS;
use mmvae_data::{ImageLabelSet, LabelSource, Vocab};

use crate::modality::ModalityKind;

/// The inputs of one modality for a batch, on a device.
///
/// # Shapes
/// `Image`: `[n, pixels]` in `[0, 1]`; `Tokens`: `ids` `[n, max_len]`,
/// `last` `[n]` (the position of each `<eos>`); `Label`: `[n]` class indices
#[derive(Debug, Clone)]
// The variants are tensor handles of a few words each; boxing them would
// only add an indirection.
#[allow(clippy::large_enum_variant)]
pub enum Input {
    Image(Tensor<2>),
    Tokens {
        ids: Tensor<2, Int>,
        last: Tensor<1, Int>,
    },
    Label(Tensor<1, Int>),
}

impl Input {
    pub fn kind(&self) -> ModalityKind {
        match self {
            Input::Image(_) => ModalityKind::Image,
            Input::Tokens { .. } => ModalityKind::Text,
            Input::Label(_) => ModalityKind::Label,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        match self {
            Input::Image(x) => x.dims()[0],
            Input::Tokens { ids, .. } => ids.dims()[0],
            Input::Label(l) => l.dims()[0],
        }
    }

    /// Rows `start..start + len`.
    pub fn narrow(&self, start: usize, len: usize) -> Input {
        match self {
            Input::Image(x) => Input::Image(x.clone().narrow(0, start, len)),
            Input::Tokens { ids, last } => Input::Tokens {
                ids: ids.clone().narrow(0, start, len),
                last: last.clone().narrow(0, start, len),
            },
            Input::Label(l) => Input::Label(l.clone().narrow(0, start, len)),
        }
    }

    /// The rows at `rows` (`[k]` indices), in that order.
    pub fn select(&self, rows: Tensor<1, Int>) -> Input {
        match self {
            Input::Image(x) => Input::Image(x.clone().select(0, rows)),
            Input::Tokens { ids, last } => Input::Tokens {
                ids: ids.clone().select(0, rows.clone()),
                last: last.clone().select(0, rows),
            },
            Input::Label(l) => Input::Label(l.clone().select(0, rows)),
        }
    }

    /// The rows repeated `n` times, block after block.
    pub fn repeat(&self, n: usize) -> Input {
        match self {
            Input::Image(x) => Input::Image(x.clone().repeat_dim(0, n)),
            Input::Tokens { ids, last } => Input::Tokens {
                ids: ids.clone().repeat_dim(0, n),
                last: last.clone().repeat_dim(0, n),
            },
            Input::Label(l) => Input::Label(l.clone().repeat_dim(0, n)),
        }
    }
}

/// A batch on a device: one input per modality, in the model's order, and
/// which items have which modality.
///
/// # Shapes
/// `present`: `[batch, modalities]`, 1 where the item has the modality
/// and 0 where it does not (the input's rows there hold placeholders)
#[derive(Debug, Clone)]
pub struct Batch {
    pub inputs: Vec<Input>,
    pub present: Tensor<2>,
}

impl Batch {
    pub fn size(&self) -> usize {
        self.present.dims()[0]
    }

    /// Modality `m`'s presence column: `[batch, 1]`.
    pub fn present_col(&self, m: usize) -> Tensor<2> {
        self.present.clone().narrow(1, m, 1)
    }

    /// The pixels of the (first) image modality.
    ///
    /// # Panics
    /// When the batch has no image modality: callers check the model first.
    pub fn images(&self) -> Tensor<2> {
        self.inputs
            .iter()
            .find_map(|i| match i {
                Input::Image(x) => Some(x.clone()),
                _ => None,
            })
            .expect("a batch with an image modality")
    }

    /// The token ids and `<eos>` positions of the (first) text modality.
    ///
    /// # Panics
    /// When the batch has no text modality: callers check the model first.
    pub fn tokens(&self) -> (Tensor<2, Int>, Tensor<1, Int>) {
        self.inputs
            .iter()
            .find_map(|i| match i {
                Input::Tokens { ids, last } => Some((ids.clone(), last.clone())),
                _ => None,
            })
            .expect("a batch with a text modality")
    }
}

/// What a model reads from each item: its modalities' names and kinds in
/// order, and the caption length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub names: Vec<String>,
    pub kinds: Vec<ModalityKind>,
    pub max_len: usize,
}

/// One modality of a host batch.
#[derive(Debug, Clone, PartialEq)]
pub enum HostInput {
    /// `[size, pixels]` in `[0, 1]`.
    Image { pixels: usize, values: Vec<f32> },
    /// `[size, max_len]` framed token ids and `[size]` `<eos>` positions.
    Tokens {
        max_len: usize,
        ids: Vec<i64>,
        last: Vec<i64>,
    },
    /// `[size]` class indices.
    Label(Vec<i64>),
}

impl HostInput {
    /// Rows `start..start + len`.
    pub fn rows(&self, start: usize, len: usize) -> HostInput {
        match self {
            HostInput::Image { pixels, values } => HostInput::Image {
                pixels: *pixels,
                values: values[start * pixels..(start + len) * pixels].to_vec(),
            },
            HostInput::Tokens { max_len, ids, last } => HostInput::Tokens {
                max_len: *max_len,
                ids: ids[start * max_len..(start + len) * max_len].to_vec(),
                last: last[start..start + len].to_vec(),
            },
            HostInput::Label(l) => HostInput::Label(l[start..start + len].to_vec()),
        }
    }

    fn to_device(&self, size: usize, device: &Device) -> Input {
        match self {
            HostInput::Image { pixels, values } => Input::Image(Tensor::from_data(
                TensorData::new(values.clone(), [size, *pixels]),
                device,
            )),
            HostInput::Tokens { max_len, ids, last } => Input::Tokens {
                ids: Tensor::from_data(TensorData::new(ids.clone(), [size, *max_len]), device),
                last: Tensor::from_data(TensorData::new(last.clone(), [size]), device),
            },
            HostInput::Label(l) => Input::Label(Tensor::from_data(
                TensorData::new(l.clone(), [size]),
                device,
            )),
        }
    }
}

/// A batch in plain memory, cheap to build on any thread.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub size: usize,
    /// One per modality, in the model's order.
    pub inputs: Vec<HostInput>,
    /// `[size, modalities]`: 1 where the item has the modality.
    pub present: Vec<f32>,
    pub labels: Vec<usize>,
    pub captions: Vec<String>,
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
    /// Gather dataset items `indices` with their captions, every modality
    /// present.
    pub fn gather(
        layout: &Layout,
        data: &ImageLabelSet,
        indices: &[usize],
        captions: CaptionSource,
        vocab: &Vocab,
    ) -> Self {
        let n = indices.len();
        let mut labels = Vec::with_capacity(n);
        let mut caps = Vec::with_capacity(n);
        for &i in indices {
            let label = data.labels[i] as usize;
            // An item's own caption where the dataset has them.
            caps.push(match &data.captions {
                Some(own) => own[i].clone(),
                None => captions
                    .captioner
                    .caption(captions.set, captions.stream, i, label),
            });
            labels.push(label);
        }
        // Labels named after an attribute slot read it: each item's slot
        // values, computed once for all of them.
        let reads_slot = layout.kinds.iter().zip(&layout.names).any(|(kind, name)| {
            *kind == ModalityKind::Label && data.kind.label_source(name) != LabelSource::Class
        });
        let slot_values: Vec<Vec<usize>> = if reads_slot {
            labels.iter().map(|&l| data.kind.attributes(l)).collect()
        } else {
            Vec::new()
        };
        let inputs = layout
            .kinds
            .iter()
            .zip(&layout.names)
            .map(|(kind, name)| match kind {
                ModalityKind::Image => {
                    // Config validation admits only image modalities named
                    // after one of the dataset's images.
                    let v = data.view_of(name).unwrap_or(0);
                    HostInput::Image {
                        pixels: data.pixels(),
                        values: indices
                            .iter()
                            .flat_map(|&i| data.view_image(v, i).iter().map(|&b| b as f32 / 255.0))
                            .collect(),
                    }
                }
                ModalityKind::Text => {
                    let mut ids = Vec::with_capacity(n * layout.max_len);
                    let mut last = Vec::with_capacity(n);
                    for cap in &caps {
                        let (t, l) = frame(vocab, &vocab.encode_lossy(cap), layout.max_len);
                        ids.extend(t);
                        last.push(l);
                    }
                    HostInput::Tokens {
                        max_len: layout.max_len,
                        ids,
                        last,
                    }
                }
                ModalityKind::Label => HostInput::Label(match data.kind.label_source(name) {
                    LabelSource::Class => labels.iter().map(|&l| l as i64).collect(),
                    LabelSource::Slot(k) => slot_values.iter().map(|v| v[k] as i64).collect(),
                }),
            })
            .collect();
        HostBatch {
            size: n,
            present: vec![1.0; n * layout.kinds.len()],
            inputs,
            labels,
            captions: caps,
        }
    }

    /// Number of modalities.
    pub fn modalities(&self) -> usize {
        self.inputs.len()
    }

    /// Items `start..start + len`.
    pub fn rows(&self, start: usize, len: usize) -> HostBatch {
        let m = self.modalities();
        HostBatch {
            size: len,
            inputs: self.inputs.iter().map(|i| i.rows(start, len)).collect(),
            present: self.present[start * m..(start + len) * m].to_vec(),
            labels: self.labels[start..start + len].to_vec(),
            captions: self.captions[start..start + len].to_vec(),
        }
    }

    /// The pixels of the (first) image modality, `[size, pixels]`.
    pub fn images(&self) -> Option<&[f32]> {
        self.inputs.iter().find_map(|i| match i {
            HostInput::Image { values, .. } => Some(values.as_slice()),
            _ => None,
        })
    }

    pub fn to_device(&self, device: &Device) -> Batch {
        Batch {
            inputs: self
                .inputs
                .iter()
                .map(|i| i.to_device(self.size, device))
                .collect(),
            present: Tensor::from_data(
                TensorData::new(self.present.clone(), [self.size, self.modalities()]),
                device,
            ),
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
