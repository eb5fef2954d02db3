//! The `label` modality: one categorical value (a class) per item.

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};

use super::config::LabelModel;
use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;

/// Encoder: class → embedding (`hidden`) → ReLU → `[μ, log σ²]`.
/// Decoder: z → `hidden` → ReLU → class logits; a categorical likelihood.
#[derive(Module, Debug)]
pub struct LabelExpert {
    embed: Embedding,
    encode_out: Linear,
    decode_hidden: Linear,
    decode_out: Linear,
    pub classes: usize,
}

impl LabelModel {
    pub fn init(&self, latent: usize, device: &Device) -> LabelExpert {
        LabelExpert {
            embed: EmbeddingConfig::new(self.classes, self.hidden).init(device),
            encode_out: LinearConfig::new(self.hidden, 2 * latent).init(device),
            decode_hidden: LinearConfig::new(latent, self.hidden).init(device),
            decode_out: LinearConfig::new(self.hidden, self.classes).init(device),
            classes: self.classes,
        }
    }
}

impl LabelExpert {
    /// This expert with its decoder's parameters tracked for gradients or
    /// not.
    pub fn with_decoder_tracked(self, tracked: bool) -> Self {
        LabelExpert {
            decode_hidden: self.decode_hidden.set_require_grad(tracked),
            decode_out: self.decode_out.set_require_grad(tracked),
            ..self
        }
    }

    pub fn with_encoder_tracked(self, tracked: bool) -> Self {
        LabelExpert {
            embed: self.embed.set_require_grad(tracked),
            encode_out: self.encode_out.set_require_grad(tracked),
            ..self
        }
    }

    /// # Shapes
    /// `labels`: `[batch]` (class indices) → posterior over `[batch, latent]`
    pub fn encode(&self, labels: Tensor<1, Int>) -> Gaussian {
        let [b] = labels.dims();
        let e = self.embed.forward(labels.reshape([b, 1])); // [b, 1, hidden]
        let [_, _, h] = e.dims();
        Gaussian::from_concat(linear(&self.encode_out, relu(e.reshape([b, h]))))
    }

    /// Class log-probabilities.
    ///
    /// # Shapes
    /// `z`: `[n, latent]` → `[n, classes]`
    pub fn log_probs(&self, z: Tensor<2>) -> Tensor<2> {
        log_softmax(
            linear(&self.decode_out, relu(linear(&self.decode_hidden, z))),
            1,
        )
    }

    /// −log p(label | z).
    ///
    /// # Shapes
    /// `z`: `[n, latent]`, `labels`: `[n]` → `[n]`
    pub fn nll(&self, z: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [n] = labels.dims();
        self.log_probs(z)
            .gather(1, labels.reshape([n, 1]))
            .reshape([n])
            .neg()
    }

    /// The most probable class of each z.
    ///
    /// # Shapes
    /// `z`: `[n, latent]` → `[n]`
    pub fn decode(&self, z: Tensor<2>) -> Vec<usize> {
        let [n, _] = z.dims();
        crate::host::indices(self.log_probs(z).argmax(1).reshape([n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nll_is_the_negative_log_softmax_of_the_label_and_decoding_is_its_argmax() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(4);
        let e = LabelModel {
            classes: 5,
            hidden: 7,
        }
        .init(3, &dev);
        let z = Tensor::<2>::from_data(
            TensorData::new(vec![0.3f32, -1.0, 2.0, 0.0, 0.5, -0.2], [2, 3]),
            &dev,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![4i64, 1], [2]), &dev);
        let lp = e.log_probs(z.clone()).try_into_vec_as::<f32>().unwrap();
        // Each row is a distribution.
        for r in 0..2 {
            let s: f32 = lp[r * 5..r * 5 + 5].iter().map(|v| v.exp()).sum();
            assert!((s - 1.0).abs() < 1e-5, "{s}");
        }
        let nll = e.nll(z.clone(), labels).try_into_vec_as::<f32>().unwrap();
        assert!((nll[0] + lp[4]).abs() < 1e-6 && (nll[1] + lp[5 + 1]).abs() < 1e-6);
        let best: Vec<usize> = (0..2)
            .map(|r| {
                (0..5)
                    .max_by(|&a, &b| lp[r * 5 + a].total_cmp(&lp[r * 5 + b]))
                    .unwrap()
            })
            .collect();
        assert_eq!(e.decode(z), best);
        let q = e.encode(Tensor::from_data(
            TensorData::new(vec![0i64, 3, 3], [3]),
            &dev,
        ));
        assert_eq!(q.mu.dims(), [3, 3]);
        // The same class gives the same posterior.
        let mu = q.mu.try_into_vec_as::<f32>().unwrap();
        assert_eq!(mu[3..6], mu[6..9]);
        assert_ne!(mu[0..3], mu[3..6]);
    }
}
