//! Learned fusion of the modality experts: the concatenation and
//! cross-attention baselines. Instead of multiplying the experts' Gaussians
//! (PoE) or mixing them (MoE), a network reads each present expert's output
//! [μ, log σ²] and returns the posterior of the shared latent. One network
//! serves every subset of modalities: an absent modality is masked out, and
//! random modality dropout in training (`loss.modality_dropout`) teaches it
//! the joint case with one input missing.

use burn::module::Param;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::gaussian::Gaussian;

/// Tokens each expert's output is split into for cross-attention.
pub const TOKENS: usize = 4;

/// Which modalities are present, per row: `[batch, 1]` each, 1 or 0.
#[derive(Clone, Debug)]
pub struct Presence {
    pub image: Tensor<2>,
    pub text: Tensor<2>,
}

impl Presence {
    /// Every row has (`image`, `text`).
    pub fn all(rows: usize, image: bool, text: bool, device: &Device) -> Self {
        let v = |on: bool| Tensor::<2>::full([rows, 1], if on { 1.0 } else { 0.0 }, device);
        Presence {
            image: v(image),
            text: v(text),
        }
    }
}

/// `[μ, log σ²]` of an expert: `[batch, 2 * latent]`.
fn flat(g: &Gaussian) -> Tensor<2> {
    Tensor::cat(vec![g.mu.clone(), g.logvar.clone()], 1)
}

/// Concatenation + projection: `[e_x·m_x, e_y·m_y, m_x, m_y]` → hidden →
/// `[μ, log σ²]`.
#[derive(Module, Debug)]
pub struct ConcatFusion {
    hidden: Linear,
    out: Linear,
}

/// Bidirectional cross-attention: each expert's output is cut into
/// [`TOKENS`] pieces, projected to `hidden` wide tokens with a learned
/// position and modality embedding; the image tokens attend to the text
/// tokens and the text tokens to the image tokens (residual, only where the
/// other modality is present); the present tokens are averaged and
/// projected to `[μ, log σ²]`.
#[derive(Module, Debug)]
pub struct AttentionFusion {
    embed_image: Linear,
    embed_text: Linear,
    /// `[2, TOKENS, hidden]`: modality × position.
    position: Param<Tensor<3>>,
    image_to_text: MultiHeadAttention,
    text_to_image: MultiHeadAttention,
    out: Linear,
}

#[derive(Module, Debug)]
pub enum FusionHead {
    Concat(ConcatFusion),
    Attention(AttentionFusion),
}

impl FusionHead {
    pub fn concat(latent: usize, hidden: usize, device: &Device) -> Self {
        FusionHead::Concat(ConcatFusion {
            hidden: LinearConfig::new(4 * latent + 2, hidden).init(device),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
        })
    }

    /// `hidden` must be divisible by the 4 attention heads.
    pub fn attention(latent: usize, hidden: usize, device: &Device) -> Self {
        let piece = 2 * latent / TOKENS;
        let mha = || {
            MultiHeadAttentionConfig::new(hidden, 4)
                .with_dropout(0.0)
                .init(device)
        };
        FusionHead::Attention(AttentionFusion {
            embed_image: LinearConfig::new(piece, hidden).init(device),
            embed_text: LinearConfig::new(piece, hidden).init(device),
            position: Param::from_tensor(Tensor::random(
                [2, TOKENS, hidden],
                burn::tensor::Distribution::Normal(0.0, 0.02),
                device,
            )),
            image_to_text: mha(),
            text_to_image: mha(),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
        })
    }

    /// The posterior from the experts' outputs `x`, `y` (`[batch, latent]`
    /// each; rows of an absent modality may hold anything finite).
    pub fn fuse(&self, x: &Gaussian, y: &Gaussian, present: &Presence) -> Gaussian {
        match self {
            FusionHead::Concat(f) => {
                let (mx, my) = (present.image.clone(), present.text.clone());
                let input =
                    Tensor::cat(vec![flat(x) * mx.clone(), flat(y) * my.clone(), mx, my], 1);
                Gaussian::from_concat(f.out.forward(relu(f.hidden.forward(input))))
            }
            FusionHead::Attention(f) => f.fuse(x, y, present),
        }
    }
}

impl AttentionFusion {
    fn fuse(&self, x: &Gaussian, y: &Gaussian, present: &Presence) -> Gaussian {
        let [b, two_l] = flat(x).dims();
        let piece = two_l / TOKENS;
        let pos = self.position.val();
        let tokens = |e: Tensor<2>, embed: &Linear, m: usize| {
            let t = embed.forward(e.reshape([b, TOKENS, piece])); // [b, T, h]
            t + pos.clone().narrow(0, m, 1) // + [1, T, h]
        };
        let tx = tokens(flat(x), &self.embed_image, 0);
        let ty = tokens(flat(y), &self.embed_text, 1);
        let mx = present.image.clone().reshape([b, 1, 1]);
        let my = present.text.clone().reshape([b, 1, 1]);
        // Each side attends to the other only where the other is present.
        let ax = self
            .image_to_text
            .forward(MhaInput::new(tx.clone(), ty.clone(), ty.clone()))
            .context;
        let ay = self
            .text_to_image
            .forward(MhaInput::new(ty.clone(), tx.clone(), tx.clone()))
            .context;
        let tx = tx + ax * my.clone();
        let ty = ty + ay * mx.clone();
        // Mean of the present modalities' tokens: [b, h].
        let sum = (tx * mx.clone() + ty * my.clone()).sum_dim(1); // [b, 1, h]
        let count = ((mx + my) * TOKENS as f32).clamp_min(1.0); // [b, 1, 1]
        let pooled = (sum / count).squeeze_dim::<2>(1);
        Gaussian::from_concat(self.out.forward(relu(pooled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(dev: &Device, seed: f32) -> Gaussian {
        let mu: Vec<f32> = (0..12).map(|i| ((i as f32 + seed) * 0.37).sin()).collect();
        let lv: Vec<f32> = (0..12)
            .map(|i| ((i as f32 + seed) * 0.91).cos() * 0.5)
            .collect();
        Gaussian::new(
            Tensor::from_data(TensorData::new(mu, [3, 4]), dev),
            Tensor::from_data(TensorData::new(lv, [3, 4]), dev),
        )
    }

    #[test]
    fn an_absent_modality_does_not_matter_and_a_present_one_does() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(2);
        for head in [
            FusionHead::concat(4, 8, &dev),
            FusionHead::attention(4, 8, &dev),
        ] {
            let (x, y, y2) = (g(&dev, 0.0), g(&dev, 1.0), g(&dev, 7.0));
            let v = |q: Gaussian| q.mu.try_into_vec_as::<f32>().unwrap();
            let only_x = Presence::all(3, true, false, &dev);
            // With the text masked out, its values are ignored.
            assert_eq!(
                v(head.fuse(&x, &y, &only_x)),
                v(head.fuse(&x, &y2, &only_x))
            );
            // Present, they count.
            let both = Presence::all(3, true, true, &dev);
            assert_ne!(v(head.fuse(&x, &y, &both)), v(head.fuse(&x, &y2, &both)));
            let out = head.fuse(&x, &y, &both);
            assert_eq!(out.mu.dims(), [3, 4]);
            assert_eq!(out.logvar.dims(), [3, 4]);
        }
    }
}
