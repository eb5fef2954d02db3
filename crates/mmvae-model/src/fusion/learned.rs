//! Learned fusion of the modality experts: the concatenation and
//! cross-attention baselines. Instead of multiplying the experts' Gaussians
//! (PoE) or mixing them (MoE), a network reads each present expert's output
//! [μ, log σ²] and returns the posterior of the shared latent. One network
//! serves every subset of modalities: an absent modality is masked out, and
//! random modality dropout in training (`loss.modality_dropout`) teaches it
//! the joint case with one input missing. It reads any number of
//! modalities, each with its own embedding.

use burn::module::Param;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;

/// Tokens each expert's output is split into for cross-attention.
pub const TOKENS: usize = 4;

/// `[μ, log σ²]` of an expert: `[batch, 2 * latent]`.
fn flat(g: &Gaussian) -> Tensor<2> {
    Tensor::cat(vec![g.mu.clone(), g.logvar.clone()], 1)
}

/// Concatenation + projection: `[e_1·m_1, …, e_M·m_M, m_1, …, m_M]` →
/// hidden → `[μ, log σ²]` (e_i the expert's `[μ, log σ²]`, m_i its mask).
#[derive(Module, Debug)]
pub struct ConcatFusion {
    hidden: Linear,
    out: Linear,
}

/// Cross-attention: each expert's output is cut into [`TOKENS`] pieces,
/// projected to `hidden` wide tokens with a learned position and modality
/// embedding; each modality's tokens attend to the tokens of the other
/// present modalities (residual, only where one of them is present); the
/// present tokens are averaged and projected to `[μ, log σ²]`.
#[derive(Module, Debug)]
pub struct AttentionFusion {
    /// One per modality.
    embeds: Vec<Linear>,
    /// `[modalities, TOKENS, hidden]`: modality × position.
    position: Param<Tensor<3>>,
    /// One per modality: its tokens' attention to the others'.
    attend: Vec<MultiHeadAttention>,
    out: Linear,
}

#[derive(Module, Debug)]
pub enum FusionHead {
    Concat(ConcatFusion),
    Attention(AttentionFusion),
}

impl FusionHead {
    pub fn concat(modalities: usize, latent: usize, hidden: usize, device: &Device) -> Self {
        FusionHead::Concat(ConcatFusion {
            hidden: LinearConfig::new(modalities * (2 * latent + 1), hidden).init(device),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
        })
    }

    /// `hidden` must be divisible by the 4 attention heads, and `2 · latent`
    /// by [`TOKENS`].
    pub fn attention(modalities: usize, latent: usize, hidden: usize, device: &Device) -> Self {
        let piece = 2 * latent / TOKENS;
        let mha = || {
            MultiHeadAttentionConfig::new(hidden, 4)
                .with_dropout(0.0)
                .init(device)
        };
        FusionHead::Attention(AttentionFusion {
            embeds: (0..modalities)
                .map(|_| LinearConfig::new(piece, hidden).init(device))
                .collect(),
            position: Param::from_tensor(Tensor::random(
                [modalities, TOKENS, hidden],
                burn::tensor::Distribution::Normal(0.0, 0.02),
                device,
            )),
            attend: (0..modalities).map(|_| mha()).collect(),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
        })
    }

    /// The posterior from the experts' outputs (`[batch, latent]` each;
    /// rows of an absent modality may hold anything finite) and the
    /// presence `mask`, `[batch, modalities]`.
    pub fn fuse(&self, experts: &[Gaussian], mask: &Tensor<2>) -> Gaussian {
        match self {
            FusionHead::Concat(f) => {
                let m = experts.len();
                let col = |i: usize| mask.clone().narrow(1, i, 1);
                let mut parts: Vec<Tensor<2>> = experts
                    .iter()
                    .enumerate()
                    .map(|(i, e)| flat(e) * col(i))
                    .collect();
                parts.extend((0..m).map(col));
                Gaussian::from_concat(linear(
                    &f.out,
                    relu(linear(&f.hidden, Tensor::cat(parts, 1))),
                ))
            }
            FusionHead::Attention(f) => f.fuse(experts, mask),
        }
    }
}

impl AttentionFusion {
    fn fuse(&self, experts: &[Gaussian], mask: &Tensor<2>) -> Gaussian {
        let m = experts.len();
        let [b, two_l] = flat(&experts[0]).dims();
        let piece = two_l / TOKENS;
        let pos = self.position.val();
        let tokens: Vec<Tensor<3>> = experts
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let t = linear(&self.embeds[i], flat(e).reshape([b, TOKENS, piece])); // [b, T, h]
                t + pos.clone().narrow(0, i, 1) // + [1, T, h]
            })
            .collect();
        let col = |i: usize| mask.clone().narrow(1, i, 1); // [b, 1]
        let mut pooled: Option<Tensor<3>> = None;
        for i in 0..m {
            let others: Vec<usize> = (0..m).filter(|&j| j != i).collect();
            let keys = Tensor::cat(others.iter().map(|&j| tokens[j].clone()).collect(), 1);
            // An absent modality's tokens are not attended to.
            let absent = Tensor::cat(
                others
                    .iter()
                    .map(|&j| col(j).repeat_dim(1, TOKENS))
                    .collect(),
                1,
            )
            .lower_elem(0.5); // [b, (M − 1)·T]
            let any_other = others
                .iter()
                .map(|&j| col(j))
                .reduce(|a, c| a.max_pair(c))
                .unwrap_or_else(|| Tensor::zeros([b, 1], &mask.device()))
                .reshape([b, 1, 1]);
            let ctx = self.attend[i]
                .forward(MhaInput::new(tokens[i].clone(), keys.clone(), keys).mask_pad(absent))
                .context;
            let t = (tokens[i].clone() + ctx * any_other) * col(i).reshape([b, 1, 1]);
            pooled = Some(match pooled {
                Some(p) => p + t,
                None => t,
            });
        }
        // Mean of the present modalities' tokens: [b, h].
        let sum = pooled.expect("at least one modality").sum_dim(1); // [b, 1, h]
        let count = (mask.clone().sum_dim(1).reshape([b, 1, 1]) * TOKENS as f32).clamp_min(1.0);
        let pooled = (sum / count).squeeze_dim::<2>(1);
        Gaussian::from_concat(linear(&self.out, relu(pooled)))
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
        let mask = |rows: &[[f32; 3]]| {
            Tensor::<2>::from_data(TensorData::new(rows.concat(), [rows.len(), 3]), &dev)
        };
        for head in [
            FusionHead::concat(3, 4, 8, &dev),
            FusionHead::attention(3, 4, 8, &dev),
        ] {
            let (x, y, w, y2) = (g(&dev, 0.0), g(&dev, 1.0), g(&dev, 3.0), g(&dev, 7.0));
            let v = |q: Gaussian| q.mu.try_into_vec_as::<f32>().unwrap();
            // Per row: the second modality masked out in rows 0 and 2.
            let some = mask(&[[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]);
            let a = v(head.fuse(&[x.clone(), y.clone(), w.clone()], &some));
            let b = v(head.fuse(&[x.clone(), y2.clone(), w.clone()], &some));
            // Where it is masked out, its values are ignored; where present, they count.
            assert_eq!(a[0..4], b[0..4]);
            assert_eq!(a[8..12], b[8..12]);
            assert_ne!(a[4..8], b[4..8]);
            let out = head.fuse(&[x, y, w], &some);
            assert_eq!(out.mu.dims(), [3, 4]);
            assert_eq!(out.logvar.dims(), [3, 4]);
        }
    }
}
