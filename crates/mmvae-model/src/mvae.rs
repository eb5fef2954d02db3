//! The multimodal VAE: image and text experts fused by a product of experts,
//! trained on the joint ELBO plus one ELBO per single modality.

use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softplus};

use crate::batch::Batch;
use crate::config::{Fusion, LossConfig, ModelConfig, UnimodalTarget};
use crate::gaussian::Gaussian;
use crate::image::{ImageDecoder, ImageEncoder};
use crate::text::{TextDecoder, TextEncoder};

#[derive(Module, Debug)]
pub struct Mvae {
    pub image_encoder: ImageEncoder,
    pub image_decoder: ImageDecoder,
    pub text_encoder: TextEncoder,
    pub text_decoder: TextDecoder,
    pub latent: usize,
    pub max_len: usize,
}

impl ModelConfig {
    /// Build the model for `side`×`side` images and a vocabulary of `vocab` words.
    pub fn init(&self, side: usize, vocab: usize, device: &Device) -> Mvae {
        let (image_encoder, image_decoder) = self.image.init(side, self.latent, device);
        let (text_encoder, text_decoder) = self.text.init(vocab, self.latent, device);
        Mvae { image_encoder, image_decoder, text_encoder, text_decoder, latent: self.latent, max_len: self.max_len }
    }
}

/// Names of the values in [`LossOutput::report`], in order.
pub const REPORT_NAMES: [&str; 6] = ["loss", "img_nll", "txt_nll", "kl", "img2txt_nll", "txt2img_nll"];

/// The objective and the terms worth logging.
pub struct LossOutput {
    /// Mean over the batch of the summed negative ELBO terms: `[1]`.
    pub total: Tensor<1>,
    /// Detached per-term batch means, named by [`REPORT_NAMES`]: `[6]`.
    pub report: Tensor<1>,
}

/// Elementwise Bernoulli negative log-likelihood from logits (stable).
pub fn bernoulli_nll(logits: Tensor<2>, target: Tensor<2>) -> Tensor<2> {
    softplus(logits.clone(), 1.0) - logits * target
}

impl Mvae {
    /// The negative ELBO objective of one batch.
    ///
    /// Three terms, each `w_x · NLL(x) + w_y · NLL(y) + β · KL`: the joint
    /// posterior q(z|x,y), and the unimodal posteriors q(z|x), q(z|y) (each a
    /// product with the prior expert). Each encoder runs once; the three
    /// latent draws go through each decoder as one `3·batch` batch.
    pub fn loss(&self, batch: &Batch, cfg: &LossConfig, fusion: Fusion, beta: f32) -> LossOutput {
        let [b, _] = batch.images.dims();
        let qx = self.image_encoder.forward(batch.images.clone());
        let qy = self.text_encoder.forward(batch.tokens.clone(), batch.last.clone());
        let (q_joint, q_x, q_y) = match fusion {
            Fusion::Poe => (
                Gaussian::product_with_prior(&[qx.clone(), qy.clone()]),
                qx.with_prior(),
                qy.with_prior(),
            ),
        };
        let kl = Tensor::cat(vec![q_joint.kl_standard(), q_x.kl_standard(), q_y.kl_standard()], 0); // [3b]
        let z = Tensor::cat(vec![q_joint.rsample(), q_x.rsample(), q_y.rsample()], 0); // [3b, latent]

        let x3 = batch.images.clone().repeat_dim(0, 3); // [3b, pixels]
        let img_nll = bernoulli_nll(self.image_decoder.forward(z.clone()), x3).sum_dim(1).squeeze_dim::<1>(1); // [3b]
        let txt_nll = self.text_decoder.nll(z, batch.tokens.clone().repeat_dim(0, 3)); // [3b]

        let img_nll = img_nll.reshape([3, b]);
        let txt_nll = txt_nll.reshape([3, b]);
        let kl = kl.reshape([3, b]);
        // Which terms reconstruct which modality: rows are joint, x-only, y-only.
        let (wx, wy) = match cfg.unimodal_target {
            UnimodalTarget::All => ([1.0f32, 1.0, 1.0], [1.0f32, 1.0, 1.0]),
            UnimodalTarget::Observed => ([1.0, 1.0, 0.0], [1.0, 0.0, 1.0]),
        };
        let device = img_nll.device();
        let wx = Tensor::<1>::from_floats(wx, &device).reshape([3, 1]) * cfg.image_weight;
        let wy = Tensor::<1>::from_floats(wy, &device).reshape([3, 1]) * cfg.text_weight;
        let per = img_nll.clone() * wx + txt_nll.clone() * wy + kl.clone() * beta; // [3, b]
        let total = per.sum() / b as f32;

        let m = |t: Tensor<2>, row: usize| t.narrow(0, row, 1).mean();
        let report = Tensor::cat(
            vec![
                total.clone(),
                m(img_nll.clone(), 0),
                m(txt_nll.clone(), 0),
                m(kl, 0),
                m(txt_nll, 1),
                m(img_nll, 2),
            ],
            0,
        )
        .detach();
        LossOutput { total, report }
    }

    /// q(z|x) with the prior expert.
    pub fn encode_image(&self, images: Tensor<2>) -> Gaussian {
        self.image_encoder.forward(images).with_prior()
    }

    /// q(z|y) with the prior expert.
    pub fn encode_text(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>) -> Gaussian {
        self.text_encoder.forward(tokens, last).with_prior()
    }

    /// q(z|x,y).
    pub fn encode_joint(&self, batch: &Batch) -> Gaussian {
        let qx = self.image_encoder.forward(batch.images.clone());
        let qy = self.text_encoder.forward(batch.tokens.clone(), batch.last.clone());
        Gaussian::product_with_prior(&[qx, qy])
    }

    /// Pixel probabilities: `[batch, latent]` → `[batch, pixels]`.
    pub fn decode_image(&self, z: Tensor<2>) -> Tensor<2> {
        sigmoid(self.image_decoder.forward(z))
    }

    /// Token ids of captions decoded from `[batch, latent]`.
    pub fn decode_text(&self, z: Tensor<2>, temperature: Option<f32>) -> Vec<Vec<usize>> {
        self.text_decoder.decode(z, self.max_len, temperature)
    }
}
