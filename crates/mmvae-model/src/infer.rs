//! Using a trained model: text → image, image → text, reconstruction and
//! joint sampling from the prior.

use burn::prelude::*;
use burn::tensor::Distribution;
use mmvae_data::captions::Captioner;
use mmvae_data::imageio::Image;
use std::path::Path;

use crate::device::Compute;
use crate::error::{ModelError, Result};
use crate::host::floats;
use crate::io::batch::frame;
use crate::io::checkpoint::{self, Checkpoint};
use crate::mvae::Mvae;
use crate::nn::gaussian::Gaussian;
use crate::prior::{self, TextPrior, TextPriorInfo};

/// Latent vectors, one per row.
pub type LatentRows = Vec<Vec<f32>>;

/// One end of a latent interpolation.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Image(Image),
    Text(String),
}

/// A checkpoint loaded for inference.
pub struct Loaded {
    pub checkpoint: Checkpoint,
    pub model: Mvae,
    pub device: Device,
    /// The text prior fitted in the checkpoint folder, if any: text→image
    /// draws its latents from it instead of from q(z|caption). Set it to
    /// `None` to draw from the caption's posterior.
    pub text_prior: Option<(TextPrior, TextPriorInfo)>,
    /// Scales the standard deviations of the text prior's components when
    /// sampling: the prior's configured temperature unless changed.
    pub prior_temperature: f32,
    /// Text→image candidates per caption (see [`Loaded::rerank_images`]):
    /// the fitted prior's `rerank` unless changed; 1 draws one image.
    pub rerank: usize,
}

/// How a latent is drawn from a posterior.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// z ~ q(z|·).
    Sample,
    /// z = mean of q(z|·).
    Mean,
}

pub fn load(dir: &Path, compute: Compute) -> Result<Loaded> {
    let device = compute.device()?;
    let (checkpoint, model) = checkpoint::load(dir, &device)?;
    let text_prior = prior::load(dir, model.latent, &device)?;
    let prior_temperature = text_prior
        .as_ref()
        .map_or(1.0, |(_, info)| info.config.temperature);
    let rerank = text_prior
        .as_ref()
        .map_or(1, |(_, info)| info.config.rerank);
    Ok(Loaded {
        checkpoint,
        model,
        device,
        text_prior,
        prior_temperature,
        rerank,
    })
}

impl Loaded {
    /// The fitted text prior and what was saved about it, or the error
    /// that says this checkpoint has none.
    pub fn fitted_prior(&self) -> Result<&(TextPrior, TextPriorInfo)> {
        self.text_prior.as_ref().ok_or_else(|| {
            crate::error::ModelError::Invalid(format!(
                "{} has no fitted text prior (run fit-prior without --keep-fit)",
                self.checkpoint.dir.display()
            ))
        })
    }

    pub fn side(&self) -> usize {
        self.checkpoint.state.side
    }

    /// Image channels: 1 grey, 3 RGB.
    pub fn colours(&self) -> usize {
        self.checkpoint.state.colours
    }

    /// Read an input image for this model: exactly its size for the
    /// built-in datasets; for CelebA (and the vision views of it) and for a
    /// model trained on the user's own pairs, any size, centre-cropped and
    /// resized as its training images were.
    pub fn read_image(&self, path: &std::path::Path) -> mmvae_data::error::Result<Image> {
        let (side, colours) = (self.side(), self.colours());
        let kind = self.checkpoint.config.data.dataset;
        if let mmvae_data::DatasetKind::CelebA(_) = kind.classes_of() {
            // A photo as CelebA ships it, cropped like the training data.
            mmvae_data::celeba::load_face(path)
        } else if kind.is_labelled() {
            mmvae_data::imageio::load_image(path, colours, side, side)
        } else {
            mmvae_data::imageio::load_image_fitted(path, colours, side)
        }
    }

    pub fn captioner(&self) -> Captioner {
        Captioner::new(
            self.checkpoint.config.data.dataset,
            self.checkpoint.config.data.caption_seed,
        )
    }

    pub fn seed(&self, seed: u64) {
        self.device.seed(seed);
    }

    pub(crate) fn draw(g: &Gaussian, how: Draw) -> Tensor<2> {
        match how {
            Draw::Sample => g.rsample(),
            Draw::Mean => g.mu.clone(),
        }
    }

    /// Tokenise captions for the model. Unknown words are an error (`strict`)
    /// or become `<unk>`.
    pub fn text_batch(
        &self,
        texts: &[String],
        strict: bool,
    ) -> Result<(Tensor<2, Int>, Tensor<1, Int>)> {
        let vocab = &self.checkpoint.vocab;
        let max_len = self.model.max_len;
        let mut toks = Vec::with_capacity(texts.len() * max_len);
        let mut last = Vec::with_capacity(texts.len());
        for t in texts {
            let ids = if strict {
                vocab.encode(t)?
            } else {
                vocab.encode_lossy(t)
            };
            let (f, l) = frame(vocab, &ids, max_len);
            toks.extend(f);
            last.push(l);
        }
        Ok((
            Tensor::from_data(TensorData::new(toks, [texts.len(), max_len]), &self.device),
            Tensor::from_data(TensorData::new(last, [texts.len()]), &self.device),
        ))
    }

    pub fn image_batch(&self, images: &[Image]) -> Result<Tensor<2>> {
        let (side, colours) = (self.side(), self.colours());
        let pixels = colours * side * side;
        let mut v = Vec::with_capacity(images.len() * pixels);
        for im in images {
            if im.width != side || im.height != side || im.channels != colours {
                return Err(ModelError::Invalid(format!(
                    "image is {}x{} with {} channel(s), the model expects {side}x{side} with {colours}",
                    im.width, im.height, im.channels
                )));
            }
            v.extend_from_slice(&im.pixels);
        }
        Ok(Tensor::from_data(
            TensorData::new(v, [images.len(), pixels]),
            &self.device,
        ))
    }

    pub(crate) fn to_images(&self, probs: Tensor<2>) -> Vec<Image> {
        let (side, colours) = (self.side(), self.colours());
        floats(probs)
            .chunks(colours * side * side)
            .map(|c| Image {
                channels: colours,
                width: side,
                height: side,
                pixels: c.to_vec(),
            })
            .collect()
    }

    pub(crate) fn to_captions(&self, ids: Vec<Vec<usize>>) -> Vec<String> {
        ids.iter()
            .map(|t| self.checkpoint.vocab.decode(t))
            .collect()
    }

    /// Pixel probabilities of images generated from captions: one draw
    /// each, or with `rerank` > 1 (and `Draw::Sample`) the best of that many
    /// draws by [`Loaded::rerank_images`].
    ///
    /// # Shapes
    /// `tokens`: `[n, max_len]`, `last`: `[n]` → `[n, pixels]`
    pub fn text_to_image_probs(
        &self,
        tokens: Tensor<2, Int>,
        last: Tensor<1, Int>,
        how: Draw,
    ) -> Tensor<2> {
        let k = self.rerank.max(1);
        if k == 1 || how == Draw::Mean {
            return self.draw_images(tokens, last, how);
        }
        let [n, t] = tokens.dims();
        // k rows per caption, caption-major: row i·k + j is draw j of caption i.
        let tokens = tokens
            .unsqueeze_dim::<3>(1)
            .repeat_dim(1, k)
            .reshape([n * k, t]);
        let last = last.unsqueeze_dim::<2>(1).repeat_dim(1, k).reshape([n * k]);
        let probs = self.draw_images(tokens.clone(), last, how); // [n·k, pixels]
        self.rerank_images(probs, tokens, k)
    }

    /// Keep, of every `k` consecutive candidate images of one caption, the
    /// one the model reads back as that caption most surely
    /// ([`Mvae::best_read_back`]).
    ///
    /// # Shapes
    /// `probs`: `[n·k, pixels]`, `tokens`: `[n·k, max_len]` (caption i in
    /// rows i·k .. i·k + k) → `[n, pixels]`
    pub fn rerank_images(&self, probs: Tensor<2>, tokens: Tensor<2, Int>, k: usize) -> Tensor<2> {
        let best = self.model.best_read_back(probs.clone(), tokens, k);
        probs.select(0, best)
    }

    /// One image per caption from its latent draw.
    fn draw_images(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>, how: Draw) -> Tensor<2> {
        let q = self.model.encode_text(tokens, last);
        let z = match &self.text_prior {
            // The fitted prior: a component by its weight, then its Gaussian
            // (or the heaviest component's mean for `Draw::Mean`).
            Some((prior, _)) => {
                let mix = prior.forward(&q);
                match how {
                    Draw::Sample => mix.sample(self.prior_temperature),
                    Draw::Mean => mix.mode_mean(),
                }
            }
            None => Self::draw(&q, how),
        };
        // The image-only latent (if any) comes from its prior: sampled, or
        // its mean for `Draw::Mean`.
        let z = self.model.with_private(z, how == Draw::Sample);
        self.model.decode_image(z)
    }

    /// Where text→image latents come from, in words.
    pub fn text_to_image_source(&self) -> String {
        let source = match &self.text_prior {
            Some((_, info)) => format!(
                "fitted text prior ({} components, {WEIGHTS}, temperature {})",
                info.config.components,
                self.prior_temperature,
                WEIGHTS = prior::WEIGHTS
            ),
            None => "caption posterior q(z|y)".into(),
        };
        match self.rerank {
            0 | 1 => source,
            k => format!("{source}, best of {k} draws by the model's own read-back of the caption"),
        }
    }

    /// Pixel probabilities of image reconstructions (image → z → image).
    pub fn image_to_image_probs(&self, images: Tensor<2>, how: Draw) -> Tensor<2> {
        let q = self.model.encode_image_full(images);
        self.model.decode_image(Self::draw(&q, how))
    }

    /// `n` images generated from one caption.
    pub fn generate(&self, text: &str, n: usize, how: Draw) -> Result<Vec<Image>> {
        let texts = vec![text.to_string(); n];
        let (t, l) = self.text_batch(&texts, true)?;
        Ok(self.to_images(self.text_to_image_probs(t, l, how)))
    }

    /// Captions of images (greedy decoding unless a temperature is given).
    pub fn caption_tensor(
        &self,
        images: Tensor<2>,
        how: Draw,
        temperature: Option<f32>,
    ) -> Vec<String> {
        let q = self.model.encode_image(images);
        self.to_captions(self.model.decode_text(Self::draw(&q, how), temperature))
    }

    pub fn caption(
        &self,
        images: &[Image],
        how: Draw,
        temperature: Option<f32>,
    ) -> Result<Vec<String>> {
        Ok(self.caption_tensor(self.image_batch(images)?, how, temperature))
    }

    /// The most probable captions found by beam search of width `width`.
    pub fn caption_beam(&self, images: &[Image], how: Draw, width: usize) -> Result<Vec<String>> {
        Ok(self.caption_tensor_beam(self.image_batch(images)?, how, width))
    }

    /// Beam-search captions of `[n, pixels]` images.
    pub fn caption_tensor_beam(&self, images: Tensor<2>, how: Draw, width: usize) -> Vec<String> {
        let q = self.model.encode_image(images);
        let z = Self::draw(&q, how);
        self.to_captions(
            self.model
                .text_expert()
                .decoder
                .decode_beam(z, self.model.max_len, width),
        )
    }

    /// Image → latent → (image, caption).
    pub fn reconstruct(&self, images: &[Image], how: Draw) -> Result<(Vec<Image>, Vec<String>)> {
        let q = self.model.encode_image_full(self.image_batch(images)?);
        let z = Self::draw(&q, how); // [n, latent + private]
        let shared = self.model.shared_part(z.clone());
        let caps = self.to_captions(self.model.decode_text(shared, None));
        Ok((self.to_images(self.model.decode_image(z)), caps))
    }

    /// Posterior means of the shared latent, q(z|image) and q(z|caption),
    /// on the host.
    ///
    /// # Shapes
    /// `images`: `[n, pixels]` → (`n` rows of `latent`, `captions.len()` rows
    /// of `latent`)
    pub fn latent_means(
        &self,
        images: Tensor<2>,
        captions: &[String],
    ) -> Result<(LatentRows, LatentRows)> {
        let latent = self.model.latent;
        let rows = |t: Tensor<2>| -> Vec<Vec<f32>> {
            floats(t).chunks(latent).map(|c| c.to_vec()).collect()
        };
        let qx = self.model.encode_image(images);
        let (t, l) = self.text_batch(captions, false)?;
        let qy = self.model.encode_text(t, l);
        Ok((rows(qx.mu), rows(qy.mu)))
    }

    /// The posterior mean of one endpoint over the whole latent
    /// `[1, latent + private]`; a caption leaves the image-only part at its
    /// prior mean 0.
    fn endpoint_latent(&self, e: &Endpoint) -> Result<Tensor<2>> {
        Ok(match e {
            Endpoint::Image(img) => {
                self.model
                    .encode_image_full(self.image_batch(std::slice::from_ref(img))?)
                    .mu
            }
            Endpoint::Text(t) => {
                let (t, l) = self.text_batch(std::slice::from_ref(t), true)?;
                let mu = self.model.encode_text(t, l).mu;
                self.model.with_private(mu, false)
            }
        })
    }

    /// Decode `steps` evenly spaced points of the segment between the
    /// posterior means of `from` and `to` (both ends included): the image
    /// and the greedy caption at each.
    pub fn interpolate(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        steps: usize,
    ) -> Result<(Vec<Image>, Vec<String>)> {
        if steps < 2 {
            return Err(ModelError::Invalid(format!(
                "an interpolation needs at least 2 steps (got {steps})"
            )));
        }
        let (a, b) = (self.endpoint_latent(from)?, self.endpoint_latent(to)?);
        let ts: Vec<f32> = (0..steps).map(|k| k as f32 / (steps - 1) as f32).collect();
        let t = Tensor::<1>::from_data(TensorData::new(ts, [steps]), &self.device)
            .unsqueeze_dim::<2>(1); // [steps, 1]
        let z = a.clone() + (b - a) * t; // [steps, latent + private]
        let caps = self.to_captions(
            self.model
                .decode_text(self.model.shared_part(z.clone()), None),
        );
        Ok((self.to_images(self.model.decode_image(z)), caps))
    }

    /// z ~ N(0, I) → (image, caption) pairs from one shared draw each.
    pub fn sample(&self, n: usize, temperature: Option<f32>) -> (Vec<Image>, Vec<String>) {
        let z = Tensor::<2>::random(
            [n, self.model.latent],
            Distribution::Normal(0.0, 1.0),
            &self.device,
        );
        let caps = self.to_captions(self.model.decode_text(z.clone(), temperature));
        (self.to_images(self.model.decode_image(z)), caps)
    }
}
