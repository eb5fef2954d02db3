//! The multi-hot attribute modality: a caption read as the set of its
//! vocabulary words (a multi-hot vector over the vocabulary), encoded and
//! decoded by MLPs, each word an independent Bernoulli.
//!
//! Where every attribute is named by its own word (CelebA's captions, the
//! shapes levels 1–3), this is exactly a multi-hot attribute vector; word
//! order is not modelled, and decoded words come out in vocabulary order.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, relu, sigmoid};
use burn::tensor::Distribution;

use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;
use mmvae_data::tokenizer::SPECIALS;

/// `[batch, time]` token ids → `[batch, vocab]` with 1 where a word occurs
/// (any number of times) and 0 elsewhere; the special tokens are always 0.
pub fn multi_hot(tokens: Tensor<2, Int>, vocab: usize) -> Tensor<2> {
    let [b, _] = tokens.dims();
    let counts: Tensor<2> = tokens
        .one_hot::<3>(vocab)
        .float()
        .sum_dim(1)
        .reshape([b, vocab]); // [b, vocab]
    let mask = word_mask(vocab, &counts.device());
    counts.clamp_max(1.0) * mask
}

/// `[1, vocab]`: 1 for words, 0 for the special tokens.
fn word_mask(vocab: usize, device: &Device) -> Tensor<2> {
    let m: Vec<f32> = (0..vocab)
        .map(|i| if i < SPECIALS.len() { 0.0 } else { 1.0 })
        .collect();
    Tensor::from_data(TensorData::new(m, [1, vocab]), device)
}

/// Multi-hot words → ReLU MLP → (mu, logvar).
#[derive(Module, Debug)]
pub struct MultiHotEncoder {
    hidden: Linear,
    out: Linear,
    vocab: usize,
}

impl MultiHotEncoder {
    pub fn new(vocab: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(vocab, hidden).init(device),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
            vocab,
        }
    }

    /// # Shapes
    /// `tokens`: `[batch, time]` (order and `last` are ignored) → posterior
    /// over `[batch, latent]`
    pub fn forward(&self, tokens: Tensor<2, Int>, _last: Tensor<1, Int>) -> Gaussian {
        let x = multi_hot(tokens, self.vocab); // [b, vocab]
        Gaussian::from_concat(linear(&self.out, relu(linear(&self.hidden, x))))
    }
}

/// z → ReLU MLP → one logit per vocabulary word.
#[derive(Module, Debug)]
pub struct MultiHotDecoder {
    hidden: Linear,
    out: Linear,
    vocab: usize,
}

impl MultiHotDecoder {
    pub fn new(vocab: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(latent, hidden).init(device),
            out: LinearConfig::new(hidden, vocab).init(device),
            vocab,
        }
    }

    /// # Shapes
    /// `z`: `[batch, latent]` → `[batch, vocab]`
    pub fn logits(&self, z: Tensor<2>) -> Tensor<2> {
        linear(&self.out, relu(linear(&self.hidden, z)))
    }

    /// Negative Bernoulli log-likelihood of each caption's word set, summed
    /// over the words of the vocabulary (specials excluded).
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `tokens`: `[batch, time]` → `[batch]`
    pub fn nll(&self, z: Tensor<2>, tokens: Tensor<2, Int>) -> Tensor<1> {
        let y = multi_hot(tokens, self.vocab); // [b, vocab]
        let [b, v] = y.dims();
        let l = self.logits(z);
        let mask = word_mask(v, &l.device());
        // -[y log σ(l) + (1 - y) log σ(-l)]
        let ll = y.clone() * log_sigmoid(l.clone()) + (y.neg() + 1.0) * log_sigmoid(l.neg());
        (ll * mask).sum_dim(1).reshape([b]).neg()
    }

    /// The words whose probability exceeds ½ (`temperature` `None`: the
    /// most probable set), or a draw with each word's logit divided by
    /// `temperature`; in vocabulary order, at most `max_len - 2` words.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]` → `batch` token lists
    pub fn decode(
        &self,
        z: Tensor<2>,
        max_len: usize,
        temperature: Option<f32>,
    ) -> Vec<Vec<usize>> {
        let l = self.logits(z); // [b, vocab]
        let [b, v] = l.dims();
        let on = match temperature {
            None => l.greater_elem(0.0),
            Some(t) => {
                let p = sigmoid(l / t.max(1e-4));
                Tensor::<2>::random([b, v], Distribution::Uniform(0.0, 1.0), &p.device()).lower(p)
            }
        };
        let on: Vec<bool> = crate::host::ints(on.int())
            .into_iter()
            .map(|x| x != 0)
            .collect();
        (0..b)
            .map(|i| {
                (SPECIALS.len()..v)
                    .filter(|&w| on[i * v + w])
                    .take(max_len.saturating_sub(2))
                    .collect()
            })
            .collect()
    }

    /// The most probable word set: the words are independent given z, so
    /// beam search has nothing to add to thresholding at ½.
    pub fn decode_beam(&self, z: Tensor<2>, max_len: usize, _width: usize) -> Vec<Vec<usize>> {
        self.decode(z, max_len, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(rows: &[&[i64]], dev: &Device) -> Tensor<2, Int> {
        let t = rows[0].len();
        let ids: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(TensorData::new(ids, [rows.len(), t]), dev)
    }

    #[test]
    fn multi_hot_marks_each_word_once_and_ignores_specials() {
        let dev = Device::flex();
        // <bos> 5 4 5 <eos> <pad>
        let t = toks(&[&[1, 5, 4, 5, 2, 0], &[1, 6, 2, 0, 0, 0]], &dev);
        let m: Vec<f32> = multi_hot(t, 7).try_into_vec_as().unwrap();
        assert_eq!(
            m,
            vec![0., 0., 0., 0., 1., 1., 0., 0., 0., 0., 0., 0., 0., 1.]
        );
    }

    #[test]
    fn nll_is_the_bernoulli_closed_form_and_decoding_thresholds() {
        let dev = Device::flex();
        dev.seed(3);
        let d = MultiHotDecoder::new(7, 5, 2, &dev);
        let z = Tensor::<2>::random([2, 2], Distribution::Normal(0.0, 1.0), &dev);
        let t = toks(&[&[1, 5, 4, 2], &[1, 6, 2, 0]], &dev);
        let nll: Vec<f32> = d.nll(z.clone(), t).try_into_vec_as().unwrap();
        let l: Vec<f32> = d.logits(z.clone()).try_into_vec_as().unwrap();
        let present = [[4usize, 5], [6, 6]];
        for i in 0..2 {
            let mut want = 0.0f64;
            for w in 4..7 {
                let p = 1.0 / (1.0 + (-(l[i * 7 + w] as f64)).exp());
                want -= if present[i].contains(&w) {
                    p.ln()
                } else {
                    (1.0 - p).ln()
                };
            }
            assert!((nll[i] as f64 - want).abs() < 1e-4, "{} vs {want}", nll[i]);
        }
        let greedy = d.decode(z.clone(), 10, None);
        for (i, g) in greedy.iter().enumerate() {
            let want: Vec<usize> = (4..7).filter(|&w| l[i * 7 + w] > 0.0).collect();
            assert_eq!(g, &want);
        }
        assert_eq!(d.decode_beam(z.clone(), 10, 4), greedy);
        // A tiny temperature samples the most probable set; max_len bounds it.
        assert_eq!(d.decode(z.clone(), 10, Some(1e-6)), greedy);
        assert!(d.decode(z, 3, None).iter().all(|g| g.len() <= 1));
    }
}
