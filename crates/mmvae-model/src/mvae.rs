//! The multimodal VAE: one expert per modality over a shared latent,
//! fused by a product or mixture of experts or a learned network. The
//! objective is in [`crate::objective`]; this file builds the model and
//! answers "the posterior given these modalities" and "decode this latent".

use crate::nn::activation::sigmoid;
use burn::prelude::*;

use crate::config::{Fusion, ModelConfig};
use crate::fusion::FusionHead;
use crate::io::batch::{Batch, Input, Layout};
use crate::modality::expert::{Encoded, Expert, ExpertShape, ImageExpert, TextExpert};
use crate::modality::{ModalityConfig, ModalityKind};
use crate::nn::gaussian::Gaussian;
use crate::objective::plan::Subset;

#[derive(Module, Debug)]
pub struct Mvae {
    /// One expert per modality, in the config's order.
    pub experts: Vec<Expert>,
    /// Shared latent dimensionality (z).
    pub latent: usize,
    /// Longest caption in tokens, counting `<bos>` and `<eos>`.
    pub max_len: usize,
    /// How the experts are fused.
    #[module(skip)]
    pub fusion: Fusion,
    /// The modalities' names, in order.
    #[module(skip)]
    pub names: Vec<String>,
    /// Whose encoder reads each modality's input: its own index, or that of
    /// the modality it shares an encoder with (`share_encoder`).
    #[module(skip)]
    pub encoder_of: Vec<usize>,
    /// The learned fusion network (`concat`, `attention`); none for the
    /// product and mixtures of experts.
    pub fusion_head: Option<FusionHead>,
}

/// burn initialises parameters lazily, on first use, drawing from the same
/// random generator as the model's noise. Materialising them all at build
/// time makes the initial weights depend only on the seed.
struct ForceInit;
impl burn::module::ModuleVisitor for ForceInit {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
        let _ = p.val();
    }
}

/// Materialise every parameter of `m` now (see [`ForceInit`]).
pub fn force_init<M: Module>(m: &M) {
    m.visit(&mut ForceInit);
}

/// The sizes a model is built for, beside its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataShape {
    /// Images are `colours`×`side`×`side`.
    pub side: usize,
    pub colours: usize,
    /// Words in the captions' vocabulary.
    pub vocab: usize,
}

impl ModelConfig {
    /// Build the model of `modalities` for data of `shape`, with every
    /// parameter initialised now.
    pub fn init(&self, modalities: &[ModalityConfig], shape: DataShape, device: &Device) -> Mvae {
        let n = modalities.len();
        let experts = modalities
            .iter()
            .map(|m| {
                let private = match m.kind() {
                    ModalityKind::Image => self.private_latent,
                    ModalityKind::Text | ModalityKind::Label => 0,
                };
                m.expert.init(
                    ExpertShape {
                        latent: self.latent,
                        private,
                        side: shape.side,
                        colours: shape.colours,
                        vocab: shape.vocab,
                        max_len: self.max_len,
                    },
                    device,
                )
            })
            .collect();
        let m = Mvae {
            experts,
            latent: self.latent,
            max_len: self.max_len,
            fusion: self.fusion,
            names: modalities.iter().map(|m| m.name.clone()).collect(),
            // A name that is no modality falls back to the modality's own
            // encoder here; `TrainConfig::validate` refuses it first.
            encoder_of: modalities
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    m.share_encoder
                        .as_ref()
                        .and_then(|n| modalities.iter().position(|o| &o.name == n))
                        .unwrap_or(i)
                })
                .collect(),
            fusion_head: match self.fusion {
                Fusion::Concat => Some(FusionHead::concat(
                    n,
                    self.latent,
                    self.fusion_hidden,
                    device,
                )),
                Fusion::Attention => Some(FusionHead::attention(
                    n,
                    self.latent,
                    self.fusion_hidden,
                    device,
                )),
                Fusion::Poe | Fusion::Moe | Fusion::MoPoe | Fusion::Mvtcae => None,
            },
        };
        force_init(&m);
        m
    }
}

/// log Σ exp along `dim`, kept as a size-1 dimension (stable: the maximum
/// is taken out first).
pub fn log_sum_exp_dim<const D: usize>(t: Tensor<D>, dim: usize) -> Tensor<D> {
    let m = t.clone().max_dim(dim).detach();
    (t - m.clone()).exp().sum_dim(dim).log() + m
}

impl Mvae {
    /// This model with the parameters a step uses tracked for gradients
    /// and the others not: the decoders of the modalities that weigh
    /// nothing (`weight[m] == 0`: inputs only) and the own encoders of
    /// those that share another's never run.
    pub fn with_used_parameters_tracked(self, weight: &[f32]) -> Self {
        let experts = self
            .experts
            .into_iter()
            .zip(weight)
            .enumerate()
            .map(|(m, (e, &w))| {
                e.with_decoder_tracked(w != 0.0)
                    .with_encoder_tracked(self.encoder_of[m] == m)
            })
            .collect();
        Mvae { experts, ..self }
    }

    /// Number of modalities.
    pub fn modalities(&self) -> usize {
        self.experts.len()
    }

    /// What a batch for this model holds.
    pub fn layout(&self) -> Layout {
        Layout {
            names: self.names.clone(),
            kinds: self.experts.iter().map(Expert::kind).collect(),
            max_len: self.max_len,
        }
    }

    /// The position of the modality named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The position of the first modality of `kind`.
    pub fn index_of_kind(&self, kind: ModalityKind) -> Option<usize> {
        self.experts.iter().position(|e| e.kind() == kind)
    }

    /// Columns of the reparameterisation noise of one latent draw: the
    /// shared latent, then each image modality's private latent.
    pub fn noise_dim(&self) -> usize {
        self.latent + self.experts.iter().map(Expert::private).sum::<usize>()
    }

    /// Where modality `m`'s private latent sits in a noise row.
    pub fn private_offset(&self, m: usize) -> usize {
        self.latent + self.experts[..m].iter().map(Expert::private).sum::<usize>()
    }

    /// Modality `m`'s expert output for `input` (no prior expert), read by
    /// its own encoder or the one it shares.
    pub fn encode_modality(&self, m: usize, input: &Input) -> Encoded {
        self.experts[self.encoder_of[m]].encode(input, self.latent)
    }

    /// Every modality's expert output (no prior expert).
    pub fn encode_all(&self, batch: &Batch) -> Vec<Encoded> {
        batch
            .inputs
            .iter()
            .enumerate()
            .map(|(m, i)| self.encode_modality(m, i))
            .collect()
    }

    /// Every modality's shared-latent expert, as [`Mvae::fuse_encoded`]
    /// takes them: a batch encoded once, then fused per subset.
    pub fn encode_shared(&self, batch: &Batch) -> Vec<Option<Gaussian>> {
        self.encode_all(batch)
            .into_iter()
            .map(|e| Some(e.shared))
            .collect()
    }

    /// The posterior of the shared latent from the experts of `given`, each
    /// counted only in the rows where its mask is 1 (`masks[m]`: `[n, 1]`):
    /// the product with the prior expert, or the learned fusion network.
    /// The product and mixtures of experts all use the product at
    /// inference.
    pub fn fuse(&self, experts: &[Gaussian], given: Subset, masks: &[Tensor<2>]) -> Gaussian {
        match &self.fusion_head {
            None => {
                let members: Vec<usize> = given.members().filter(|&m| m < experts.len()).collect();
                let es: Vec<Gaussian> = members.iter().map(|&m| experts[m].clone()).collect();
                let ms: Vec<Tensor<2>> = members.iter().map(|&m| masks[m].clone()).collect();
                Gaussian::masked_product_with_prior(&es, &ms)
            }
            Some(head) => {
                let cols: Vec<Tensor<2>> = masks
                    .iter()
                    .enumerate()
                    .map(|(m, c)| {
                        if given.contains(m) {
                            c.clone()
                        } else {
                            c.zeros_like()
                        }
                    })
                    .collect();
                head.fuse(experts, &Tensor::cat(cols, 1))
            }
        }
    }

    /// The posterior of the shared latent given the inputs present: `inputs[m]`
    /// is `Some` for each modality given (every row), `None` for the rest.
    pub fn posterior_of(&self, inputs: &[Option<&Input>]) -> Gaussian {
        let shared: Vec<Option<Gaussian>> = inputs
            .iter()
            .enumerate()
            .map(|(m, i)| i.map(|i| self.encode_modality(m, i).shared))
            .collect();
        let given = Subset(
            shared
                .iter()
                .enumerate()
                .filter(|(_, q)| q.is_some())
                .fold(0, |acc, (m, _)| acc | Subset::single(m).0),
        );
        self.fuse_encoded(&shared, given)
    }

    /// The posterior of the shared latent given the members of `given`, from
    /// their experts' encodings of the shared latent (`shared[m]` is `Some`
    /// for every member; the others are not read), fused as
    /// [`Mvae::posterior_of`] fuses them: one batch encoded once serves
    /// every subset.
    ///
    /// # Panics
    /// When `given` is empty or a member's encoding is missing.
    pub fn fuse_encoded(&self, shared: &[Option<Gaussian>], given: Subset) -> Gaussian {
        let member = |m: usize| {
            shared[m]
                .as_ref()
                .filter(|_| given.contains(m))
                .expect("a member of the subset is encoded")
        };
        let first = member(given.members().next().expect("at least one modality given"));
        let rows = first.mu.dims()[0];
        let device = first.mu.device();
        let experts: Vec<Gaussian> = (0..self.modalities())
            .map(|m| {
                if given.contains(m) {
                    member(m).clone()
                } else {
                    Gaussian::new(first.mu.zeros_like(), first.logvar.zeros_like())
                }
            })
            .collect();
        let masks: Vec<Tensor<2>> = (0..self.modalities())
            .map(|m| {
                Tensor::full(
                    [rows, 1],
                    if given.contains(m) { 1.0 } else { 0.0 },
                    &device,
                )
            })
            .collect();
        self.fuse(&experts, given, &masks)
    }

    /// The posterior of the shared latent given the members of `given`
    /// from `batch` (every row).
    pub fn posterior_given(&self, batch: &Batch, given: Subset) -> Gaussian {
        let inputs: Vec<Option<&Input>> = batch
            .inputs
            .iter()
            .enumerate()
            .map(|(m, i)| given.contains(m).then_some(i))
            .collect();
        self.posterior_of(&inputs)
    }

    /// The (first) image expert.
    ///
    /// # Panics
    /// When the model has no image modality; callers check first.
    pub fn image_expert(&self) -> &ImageExpert {
        self.experts
            .iter()
            .find_map(|e| match e {
                Expert::Image(i) => Some(i),
                _ => None,
            })
            .expect("a model with an image modality")
    }

    /// The (first) text expert.
    ///
    /// # Panics
    /// When the model has no text modality; callers check first.
    pub fn text_expert(&self) -> &TextExpert {
        self.experts
            .iter()
            .find_map(|e| match e {
                Expert::Text(t) => Some(t),
                _ => None,
            })
            .expect("a model with a text modality")
    }

    fn image_index(&self) -> usize {
        self.index_of_kind(ModalityKind::Image)
            .expect("a model with an image modality")
    }

    /// The image-only latent's width (0 = none).
    pub fn private(&self) -> usize {
        self.image_expert().private
    }

    /// q(z|x) as the image expert (no prior) and, with an image-only latent,
    /// q(w|x).
    ///
    /// # Shapes
    /// `images`: `[batch, pixels]` → `[batch, latent]`, `[batch, private]`
    pub fn image_experts(&self, images: Tensor<2>) -> (Gaussian, Option<Gaussian>) {
        let e = self.encode_modality(self.image_index(), &Input::Image(images));
        (e.shared, e.private)
    }

    /// q(z|x): the image's posterior of the shared latent.
    pub fn encode_image(&self, images: Tensor<2>) -> Gaussian {
        let mut inputs: Vec<Option<&Input>> = vec![None; self.modalities()];
        let x = Input::Image(images);
        inputs[self.image_index()] = Some(&x);
        self.posterior_of(&inputs)
    }

    /// q(z|x) with the prior expert, followed by q(w|x) when the model has an
    /// image-only latent: `[batch, latent + private]`. Decoding a draw from it
    /// reconstructs the image with its own pose and style.
    pub fn encode_image_full(&self, images: Tensor<2>) -> Gaussian {
        let (_, qw) = self.image_experts(images.clone());
        let qz = self.encode_image(images);
        match qw {
            None => qz,
            Some(qw) => qz.concat(&qw),
        }
    }

    /// q(z|y): the caption's posterior of the shared latent.
    pub fn encode_text(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>) -> Gaussian {
        let t = self
            .index_of_kind(ModalityKind::Text)
            .expect("a model with a text modality");
        let mut inputs: Vec<Option<&Input>> = vec![None; self.modalities()];
        let y = Input::Tokens { ids: tokens, last };
        inputs[t] = Some(&y);
        self.posterior_of(&inputs)
    }

    /// q(z|y) of the (first) text modality of a batch.
    pub fn encode_caption(&self, batch: &Batch) -> Gaussian {
        let (tokens, last) = batch.tokens();
        self.encode_text(tokens, last)
    }

    /// Complete a shared latent with the image-only part: w drawn from its
    /// prior N(0, I) when `sample`, else its mean 0. Returns `z` unchanged
    /// when it already has `latent + private` columns.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]` → `[batch, latent + private]`
    pub fn with_private(&self, z: Tensor<2>, sample: bool) -> Tensor<2> {
        let [n, d] = z.dims();
        let private = self.private();
        if private == 0 || d == self.latent + private {
            return z;
        }
        let device = z.device();
        let w = if sample {
            Tensor::random(
                [n, private],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            )
        } else {
            Tensor::zeros([n, private], &device)
        };
        Tensor::cat(vec![z, w], 1)
    }

    /// Of every `k` consecutive candidate images of one caption, the row
    /// of the one whose caption the model reads back most surely: the
    /// lowest −log p(y | z = mean of q(z|x̂)), each image encoded and its
    /// caption scored by the text decoder. A cycle-consistency rerank of
    /// text→image draws that uses only the model.
    ///
    /// # Shapes
    /// `images`: `[n·k, pixels]` in `[0, 1]`, `tokens`: `[n·k, max_len]`
    /// (caption i in rows i·k .. i·k + k) → `[n]`, row indices into `images`
    pub fn best_read_back(
        &self,
        images: Tensor<2>,
        tokens: Tensor<2, Int>,
        k: usize,
    ) -> Tensor<1, Int> {
        let k = k.max(1);
        let [rows, _] = images.dims();
        let n = rows / k;
        let device = images.device();
        let z = self.encode_image(images).mu; // [n·k, latent]
        let nll = self.text_expert().decoder.nll(z, tokens).reshape([n, k]);
        let best = nll.argmin(1).reshape([n]); // [n], in 0..k
        Tensor::<1, Int>::arange(0..n as i64, &device).mul_scalar(k as i64) + best
    }

    /// Pixel probabilities: `[batch, latent]` (w then drawn from its prior)
    /// or `[batch, latent + private]` → `[batch, pixels]`.
    pub fn decode_image(&self, z: Tensor<2>) -> Tensor<2> {
        sigmoid(
            self.image_expert()
                .decoder
                .forward(self.with_private(z, true)),
        )
    }

    /// Text needs only the shared part of a `[batch, latent + private]` draw.
    pub fn shared_part(&self, z: Tensor<2>) -> Tensor<2> {
        z.narrow(1, 0, self.latent)
    }

    /// Token ids of captions decoded from `[batch, latent]`.
    pub fn decode_text(&self, z: Tensor<2>, temperature: Option<f32>) -> Vec<Vec<usize>> {
        self.text_expert()
            .decoder
            .decode(z, self.max_len, temperature)
    }
}
