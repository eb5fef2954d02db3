//! One expert per modality: its encoder (a Gaussian posterior over the
//! shared latent, and for images an optional private latent) and its
//! decoder with its likelihood.

use crate::nn::activation::sigmoid;
use burn::prelude::*;

use super::config::{ExpertConfig, ModalityKind};
use super::label::LabelExpert;
use crate::io::batch::Input;
use crate::modality::image::likelihood::{ImageLikelihood, PixelScale};
use crate::modality::image::{ImageDecoder, ImageEncoder};
use crate::modality::text::{TextDecoder, TextEncoder};
use crate::nn::gaussian::Gaussian;

/// An image modality: encoder to `[z, w]` (w its private latent, `private`
/// wide; 0 = none), decoder from `[z, w]` to pixel logits.
#[derive(Module, Debug)]
pub struct ImageExpert {
    pub encoder: ImageEncoder,
    pub decoder: ImageDecoder,
    /// The decoder's pixel likelihood.
    #[module(skip)]
    pub likelihood: ImageLikelihood,
    /// Its learned per-channel scale, when it learns one.
    pub pixel_scale: Option<PixelScale>,
    pub private: usize,
}

/// A caption modality.
#[derive(Module, Debug)]
pub struct TextExpert {
    pub encoder: TextEncoder,
    pub decoder: TextDecoder,
    /// Longest caption in tokens, counting `<bos>` and `<eos>`.
    pub max_len: usize,
}

#[derive(Module, Debug)]
// One value per model: the variants' sizes do not matter, and burn's
// Module derive does not box them.
#[allow(clippy::large_enum_variant)]
pub enum Expert {
    Image(ImageExpert),
    Text(TextExpert),
    Label(LabelExpert),
}

/// What one expert's encoder says about an input.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The expert over the shared latent (without the prior expert).
    pub shared: Gaussian,
    /// The posterior of the modality's private latent, if it has one.
    pub private: Option<Gaussian>,
}

/// Where the model reads its sizes from when it builds an expert.
#[derive(Debug, Clone, Copy)]
pub struct ExpertShape {
    pub latent: usize,
    pub private: usize,
    pub side: usize,
    pub colours: usize,
    pub vocab: usize,
    pub max_len: usize,
}

impl ExpertConfig {
    pub fn init(&self, s: ExpertShape, device: &Device) -> Expert {
        match *self {
            ExpertConfig::Image { model, likelihood } => {
                let (encoder, decoder) =
                    model.init(s.side, s.colours, s.latent + s.private, device);
                Expert::Image(ImageExpert {
                    encoder,
                    decoder,
                    likelihood,
                    pixel_scale: likelihood.init_scale(s.colours, s.side, device),
                    private: s.private,
                })
            }
            ExpertConfig::Text { model } => {
                let (encoder, decoder) = model.init(s.vocab, s.latent, device);
                Expert::Text(TextExpert {
                    encoder,
                    decoder,
                    max_len: s.max_len,
                })
            }
            ExpertConfig::Label { model } => Expert::Label(model.init(s.latent, device)),
        }
    }
}

fn mismatch(kind: ModalityKind, input: &Input) -> ! {
    panic!(
        "a {kind} expert was given a {} input: the batch was not built for this model",
        input.kind()
    )
}

impl Expert {
    /// This expert with its decoder's parameters tracked for gradients or
    /// not. An input-only modality's decoder never runs: left tracked, the
    /// leaves autodiff registers for it each step are never freed.
    pub fn with_decoder_tracked(self, tracked: bool) -> Self {
        match self {
            Expert::Image(e) => Expert::Image(ImageExpert {
                decoder: e.decoder.set_require_grad(tracked),
                pixel_scale: e.pixel_scale.map(|p| p.set_require_grad(tracked)),
                ..e
            }),
            Expert::Text(e) => Expert::Text(TextExpert {
                decoder: e.decoder.set_require_grad(tracked),
                ..e
            }),
            Expert::Label(e) => Expert::Label(e.with_decoder_tracked(tracked)),
        }
    }

    /// This expert with its encoder's parameters tracked for gradients or
    /// not. The encoder of a modality that reads its input with another's
    /// (`share_encoder`) never runs, and untracked it costs nothing (see
    /// [`Expert::with_decoder_tracked`]).
    pub fn with_encoder_tracked(self, tracked: bool) -> Self {
        match self {
            Expert::Image(e) => Expert::Image(ImageExpert {
                encoder: e.encoder.set_require_grad(tracked),
                ..e
            }),
            Expert::Text(e) => Expert::Text(TextExpert {
                encoder: e.encoder.set_require_grad(tracked),
                ..e
            }),
            Expert::Label(e) => Expert::Label(e.with_encoder_tracked(tracked)),
        }
    }

    pub fn kind(&self) -> ModalityKind {
        match self {
            Expert::Image(_) => ModalityKind::Image,
            Expert::Text(_) => ModalityKind::Text,
            Expert::Label(_) => ModalityKind::Label,
        }
    }

    /// Width of this modality's private latent (0 = none).
    pub fn private(&self) -> usize {
        match self {
            Expert::Image(e) => e.private,
            Expert::Text(_) | Expert::Label(_) => 0,
        }
    }

    /// The expert's posterior for `input` (which must be of its kind).
    pub fn encode(&self, input: &Input, latent: usize) -> Encoded {
        match (self, input) {
            (Expert::Image(e), Input::Image(x)) => {
                let q = e.encoder.forward(x.clone());
                if e.private == 0 {
                    Encoded {
                        shared: q,
                        private: None,
                    }
                } else {
                    Encoded {
                        shared: q.narrow(0, latent),
                        private: Some(q.narrow(latent, e.private)),
                    }
                }
            }
            (Expert::Text(e), Input::Tokens { ids, last }) => Encoded {
                shared: e.encoder.forward(ids.clone(), last.clone()),
                private: None,
            },
            (Expert::Label(e), Input::Label(labels)) => Encoded {
                shared: e.encode(labels.clone()),
                private: None,
            },
            (e, i) => mismatch(e.kind(), i),
        }
    }

    /// −log p(target | z) per row, and for images the decoder's logits.
    ///
    /// # Shapes
    /// `z`: `[n, latent (+ private for an image with one)]`, `target`: `n`
    /// rows → `[n]`, `[n, pixels]`
    pub fn reconstruct(&self, z: Tensor<2>, target: &Input) -> (Tensor<1>, Option<Tensor<2>>) {
        match (self, target) {
            (Expert::Image(e), Input::Image(x)) => {
                let logits = e.decoder.forward(z);
                (e.nll(logits.clone(), x.clone()), Some(logits))
            }
            (Expert::Text(e), Input::Tokens { ids, .. }) => (e.decoder.nll(z, ids.clone()), None),
            (Expert::Label(e), Input::Label(labels)) => (e.nll(z, labels.clone()), None),
            (e, i) => mismatch(e.kind(), i),
        }
    }
}

impl ImageExpert {
    /// The image's negative log-likelihood under the decoder output, summed
    /// over pixels.
    ///
    /// # Shapes
    /// `logits`, `images`: `[n, pixels]` → `[n]`
    pub fn nll(&self, logits: Tensor<2>, images: Tensor<2>) -> Tensor<1> {
        self.likelihood
            .nll(self.pixel_scale.as_ref(), logits, images)
            .sum_dim(1)
            .squeeze_dim::<1>(1)
    }

    /// Pixel probabilities from `[z, w]`.
    ///
    /// # Shapes
    /// `z`: `[n, latent + private]` → `[n, pixels]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        sigmoid(self.decoder.forward(z))
    }
}
