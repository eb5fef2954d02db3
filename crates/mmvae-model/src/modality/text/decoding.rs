//! Caption decoding shared by the recurrent decoders: greedy, sampling with
//! a temperature, and beam search. A decoder supplies one step
//! (previous tokens → next-token log-probabilities and a new state).

use burn::prelude::*;
use burn::tensor::activation::softmax;
use mmvae_data::tokenizer::{BOS, EOS, PAD};

/// Greedy (`temperature` `None`) or sampled decoding of up to `max_len - 1`
/// tokens, `<bos>` ruled out and `<pad>` ending a caption as `<eos>` does;
/// `step` maps the previous tokens `[batch]` to log-probabilities
/// `[batch, vocab]` and keeps its own state.
///
/// # Shapes
/// `z`: `[batch, latent]` → `batch` token lists (without `<bos>`/`<eos>`)
pub fn collect_tokens(
    z: Tensor<2>,
    max_len: usize,
    temperature: Option<f32>,
    mut step: impl FnMut(Tensor<1, Int>) -> Tensor<2>,
) -> Vec<Vec<usize>> {
    let [b, _] = z.dims();
    let device = z.device();
    let mut tok = Tensor::<1, Int>::full([b], BOS as i64, &device);
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    let mut no_bos: Option<Tensor<2>> = None;
    for _ in 0..max_len.saturating_sub(1) {
        let logp = step(tok); // [b, vocab]
        let bias = no_bos.get_or_insert_with(|| bos_bias(logp.dims(), &device));
        let logp = logp + bias.clone();
        tok = match temperature {
            None => logp.argmax(1).reshape([b]),
            Some(temp) => softmax(logp / temp.max(1e-4), 1)
                .categorical(1)
                .reshape([b]),
        };
        let ids = crate::host::ints(tok.clone());
        for (i, &id) in ids.iter().enumerate() {
            if done[i] {
                continue;
            }
            if id as usize == EOS || id as usize == PAD {
                done[i] = true;
            } else {
                out[i].push(id as usize);
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    out
}

/// A caption decoder that extends captions one token at a time. Greedy,
/// sampled and beam-search decoding are written once, here, on top of
/// [`StepDecoder::step`].
pub trait StepDecoder {
    /// What one step hands to the next, row by row.
    type State: Clone;
    /// The longest caption (tokens, `<bos>` included) the decoder can read.
    const MAX_LEN: usize = usize::MAX;

    /// The state before the first token.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`
    fn start(&self, z: Tensor<2>) -> Self::State;

    /// Log-probabilities of the token after `tok`, and the new state.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `tok`: `[batch]` → `[batch, vocab]`
    fn step(
        &self,
        z: Tensor<2>,
        state: Self::State,
        tok: Tensor<1, Int>,
    ) -> (Tensor<2>, Self::State);

    /// The state's rows `idx`, in that order.
    fn select(state: Self::State, idx: Tensor<1, Int>) -> Self::State;

    /// Decode up to `max_len - 1` tokens from each z: greedily when
    /// `temperature` is `None`, otherwise by sampling from softmax(logits / T).
    ///
    /// # Shapes
    /// `z`: `[batch, latent]` → `batch` token lists (without `<bos>`/`<eos>`)
    fn decode(&self, z: Tensor<2>, max_len: usize, temperature: Option<f32>) -> Vec<Vec<usize>> {
        let mut state = self.start(z.clone());
        collect_tokens(z.clone(), max_len.min(Self::MAX_LEN), temperature, |tok| {
            let (logp, next) = self.step(z.clone(), state.clone(), tok);
            state = next;
            logp
        })
    }

    /// The most probable caption of each z found by beam search of width
    /// `width` (see [`beam_search`]).
    fn decode_beam(&self, z: Tensor<2>, max_len: usize, width: usize) -> Vec<Vec<usize>> {
        let [b, d] = z.dims();
        let device = z.device();
        let width = width.max(1);
        // Each row `width` times in a row: [b * width, latent].
        let z = z
            .unsqueeze_dim::<3>(1)
            .expand([b, width, d])
            .reshape([b * width, d]);
        let mut state = self.start(z.clone());
        beam_search(
            b,
            width,
            max_len.min(Self::MAX_LEN),
            &device,
            |rows, tok| {
                let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
                let idx = Tensor::from_data(TensorData::new(v, [rows.len()]), &device);
                let picked = Self::select(state.clone(), idx);
                let (logp, next) = self.step(z.clone(), picked, tok);
                state = next;
                logp
            },
        )
    }
}

/// Framed captions `<bos> w… <eos> <pad>…` as decoder inputs (all but the
/// last position) and targets (all but the first).
///
/// # Shapes
/// `[batch, time]` → (`[batch, time - 1]`, `[batch, time - 1]`)
pub fn shift(tokens: Tensor<2, Int>) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let [_, t] = tokens.dims();
    (
        tokens.clone().narrow(1, 0, t - 1),
        tokens.narrow(1, 1, t - 1),
    )
}

/// Input embeddings with z appended at every position.
///
/// # Shapes
/// `e`: `[batch, time, embed]`, `z`: `[batch, latent]` → `[batch, time, embed + latent]`
pub fn with_latent(e: Tensor<3>, z: Tensor<2>) -> Tensor<3> {
    let [b, t, _] = e.dims();
    let latent = z.dims()[1];
    Tensor::cat(vec![e, z.unsqueeze_dim::<3>(1).expand([b, t, latent])], 2)
}

/// Negative log-likelihood of each caption's targets, summed over the
/// tokens that are not padding.
///
/// # Shapes
/// `logp`: `[batch, time, vocab]`, `targets`: `[batch, time]` → `[batch]`
pub fn caption_nll(logp: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let picked = logp
        .gather(2, targets.clone().unsqueeze_dim::<3>(2))
        .squeeze_dim::<2>(2); // [b, t]
    let mask = targets.not_equal_elem(PAD as i64).float();
    (picked * mask).sum_dim(1).squeeze_dim::<1>(1).neg()
}

/// Each row's output at its own position (e.g. its `<eos>`).
///
/// # Shapes
/// `hs`: `[batch, time, d]`, `at`: `[batch]` → `[batch, d]`
pub fn at_positions(hs: Tensor<3>, at: Tensor<1, Int>) -> Tensor<2> {
    let [b, _, d] = hs.dims();
    hs.gather(1, at.reshape([b, 1, 1]).expand([b, 1, d]))
        .reshape([b, d])
}

/// `<bos>` is never a next token: a bias of −10³⁰ on its log-probability.
///
/// # Shapes
/// `[batch, vocab]`
fn bos_bias([b, v]: [usize; 2], device: &Device) -> Tensor<2> {
    let mut bias = vec![0f32; v];
    if BOS < v {
        bias[BOS] = -1e30;
    }
    Tensor::<1>::from_data(TensorData::new(bias, [v]), device)
        .reshape([1, v])
        .expand([b, v])
}

/// One hypothesis of a beam.
#[derive(Debug, Clone, PartialEq)]
struct Hyp {
    tokens: Vec<usize>,
    logp: f64,
    done: bool,
}

/// One step of one row's beam: the `width` most probable extensions of
/// its hypotheses by one token, given each hypothesis's token
/// log-probabilities `lp` (`[width, vocab]`), finished ones carried over
/// unchanged and dead ones (at −∞) filling what is left. Each: the
/// hypothesis, the index of its parent and the token it feeds the next
/// step.
fn extend(beam: &[Hyp], lp: &[f32], width: usize) -> Vec<(Hyp, usize, usize)> {
    let vocab = lp.len() / width;
    // Candidates: (score, parent, token or None for a finished carry).
    let mut cands: Vec<(f64, usize, Option<usize>)> = Vec::new();
    for (k, h) in beam.iter().enumerate() {
        if h.logp == f64::NEG_INFINITY {
            continue;
        }
        if h.done {
            cands.push((h.logp, k, None));
            continue;
        }
        let row = &lp[k * vocab..(k + 1) * vocab];
        for (v, &l) in row.iter().enumerate() {
            if v == BOS {
                continue;
            }
            cands.push((h.logp + l as f64, k, Some(v)));
        }
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut next = Vec::with_capacity(width);
    for &(score, k, tok) in cands.iter().take(width) {
        let mut h = beam[k].clone();
        h.logp = score;
        match tok {
            None => {}
            // <pad> ends a caption as <eos> does (as in greedy decoding).
            Some(v) if v == EOS || v == PAD => h.done = true,
            Some(v) => h.tokens.push(v),
        }
        next.push((h, k, tok.unwrap_or(PAD)));
    }
    while next.len() < width {
        let dead = Hyp {
            tokens: Vec::new(),
            logp: f64::NEG_INFINITY,
            done: true,
        };
        next.push((dead, 0, PAD));
    }
    next
}

/// Beam search of width `width` for each row of `z`: keeps the `width` most
/// probable prefixes (sum of token log-probabilities, `<eos>` included);
/// finished ones carry over unchanged. Returns the most probable caption
/// of each row.
///
/// `step(rows, tokens)` gets, for each of the `batch * width` hypotheses,
/// the row of the state it extends (`rows[k]` indexes the previous call's
/// hypotheses; the first call has `batch * width` copies of each row's
/// start state, hypothesis k belonging to row k / width) and its last
/// token; it returns `[batch * width, vocab]` log-probabilities.
pub fn beam_search(
    batch: usize,
    width: usize,
    max_len: usize,
    device: &Device,
    mut step: impl FnMut(&[usize], Tensor<1, Int>) -> Tensor<2>,
) -> Vec<Vec<usize>> {
    let width = width.max(1);
    let n = batch * width;
    // Beam k of row r starts as one live hypothesis (the others at −∞, so
    // the first expansion does not pick the same prefix `width` times).
    let mut beams: Vec<Vec<Hyp>> = (0..batch)
        .map(|_| {
            (0..width)
                .map(|k| Hyp {
                    tokens: Vec::new(),
                    logp: if k == 0 { 0.0 } else { f64::NEG_INFINITY },
                    done: false,
                })
                .collect()
        })
        .collect();
    let mut rows: Vec<usize> = (0..n).collect();
    let mut last = vec![BOS as i64; n];
    for _ in 0..max_len.saturating_sub(1) {
        if beams
            .iter()
            .flatten()
            .all(|h| h.done || h.logp == f64::NEG_INFINITY)
        {
            break;
        }
        let toks = Tensor::<1, Int>::from_data(TensorData::new(last.clone(), [n]), device);
        let logp = step(&rows, toks);
        let [_, vocab] = logp.dims();
        let lp = crate::host::floats(logp);
        let mut next_rows = Vec::with_capacity(n);
        let mut next_last = Vec::with_capacity(n);
        for (r, beam) in beams.iter_mut().enumerate() {
            let next = extend(beam, &lp[r * width * vocab..(r + 1) * width * vocab], width);
            for &(_, k, tok) in &next {
                next_rows.push(r * width + k);
                next_last.push(tok as i64);
            }
            *beam = next.into_iter().map(|(h, _, _)| h).collect();
        }
        rows = next_rows;
        last = next_last;
    }
    beams
        .into_iter()
        .map(|b| {
            b.into_iter()
                .max_by(|x, y| x.logp.total_cmp(&y.logp))
                .map(|h| h.tokens)
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy language model over {pad, bos, eos, a=3, b=4} whose best
    /// sequence is not the greedy one: after <bos>, "a" (0.6) beats "b"
    /// (0.4), but "a" is followed by a uniform guess while "b" is followed
    /// by <eos> for sure.
    fn toy(prev: i64) -> [f32; 5] {
        let p: [f32; 5] = match prev {
            1 => [0.0, 0.0, 0.0, 0.6, 0.4],    // after <bos>
            3 => [0.0, 0.0, 0.34, 0.33, 0.33], // after a
            4 => [0.0, 0.0, 1.0, 0.0, 0.0],    // after b
            _ => [0.0, 0.0, 1.0, 0.0, 0.0],
        };
        p.map(|v| if v > 0.0 { v.ln() } else { -1e9 })
    }

    fn toy_step(prev: Tensor<1, Int>, d: &Device) -> Tensor<2> {
        let ids: Vec<i64> = prev.try_into_vec_as::<i64>().unwrap();
        let n = ids.len();
        let v: Vec<f32> = ids.iter().flat_map(|&p| toy(p)).collect();
        Tensor::from_data(TensorData::new(v, [n, 5]), d)
    }

    #[test]
    fn beam_search_finds_the_most_probable_caption_greedy_does_not() {
        let d = Device::flex();
        let z = Tensor::<2>::zeros([2, 1], &d);
        let greedy = collect_tokens(z, 6, None, |t| toy_step(t, &d));
        // Greedy: a (0.6), then <eos> (0.34): probability 0.204.
        assert_eq!(greedy, vec![vec![3], vec![3]]);
        let mut calls = 0;
        let beam = beam_search(2, 2, 6, &d, |rows, t| {
            calls += 1;
            assert_eq!(rows.len(), 4);
            toy_step(t, &d)
        });
        // Beam: b (0.4) then <eos> (1.0): probability 0.4.
        assert_eq!(beam, vec![vec![4], vec![4]]);
        assert!(calls <= 5);
        // Width 1 is greedy.
        let one = beam_search(2, 1, 6, &d, |_, t| toy_step(t, &d));
        assert_eq!(one, greedy);
    }

    #[test]
    fn beam_rows_point_at_the_parent_hypotheses() {
        let d = Device::flex();
        let mut seen = Vec::new();
        let _ = beam_search(1, 2, 4, &d, |rows, t| {
            seen.push((rows.to_vec(), t.clone().try_into_vec_as::<i64>().unwrap()));
            toy_step(t, &d)
        });
        // First call: the start state twice; both read <bos>.
        assert_eq!(seen[0], (vec![0, 1], vec![1, 1]));
        // Second call: both hypotheses extend hypothesis 0 (the only live
        // one): "a" (best) and "b".
        assert_eq!(seen[1], (vec![0, 0], vec![3, 4]));
    }
}
