//! xLSTM caption encoder and decoder (Beck et al. 2024), built from burn
//! tensor ops: an mLSTM block (matrix memory, covariance update rule) then
//! an sLSTM block (scalar memory, recurrent gates), each pre-LayerNorm with
//! a residual connection, with the exponential input gates and sigmoid
//! forget gates stabilised by the running maximum m of the log gates.
//!
//! sLSTM, per unit:   z = tanh(W_z x + R_z h + b_z), o = σ(W_o x + R_o h + b_o),
//!   ĩ = W_i x + R_i h + b_i, log f = log σ(W_f x + R_f h + b_f),
//!   m' = max(log f + m, ĩ), i = exp(ĩ − m'), f = exp(log f + m − m'),
//!   c' = f c + i z, n' = f n + i, h' = o ⊙ c' / n'.
//! mLSTM, per step:   q = W_q x, k = W_k x / √d, v = W_v x, o = σ(W_o x),
//!   ĩ = w_i·x, log f = log σ(w_f·x), m' = max(log f + m, ĩ),
//!   i = exp(ĩ − m'), f = exp(log f + m − m'),
//!   C' = f C + i v kᵀ, n' = f n + i k, h = o ⊙ C' q / max(|n'ᵀ q|, 1).

use crate::modality::text::decoding::{at_positions, caption_nll, shift, with_latent, StepDecoder};
use crate::nn::gaussian::Gaussian;
use crate::nn::linear::linear;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid};

/// sLSTM state, each `[batch, hidden]`.
#[derive(Debug, Clone)]
pub struct SState {
    pub c: Tensor<2>,
    pub n: Tensor<2>,
    pub m: Tensor<2>,
    pub h: Tensor<2>,
}

#[derive(Module, Debug)]
pub struct SLstmCell {
    /// Input weights of the gates [z, i, f, o].
    w: Linear,
    /// Recurrent weights of the gates, no bias.
    r: Linear,
}

impl SLstmCell {
    pub fn new(d_in: usize, hidden: usize, device: &Device) -> Self {
        Self {
            w: LinearConfig::new(d_in, 4 * hidden).init(device),
            r: LinearConfig::new(hidden, 4 * hidden)
                .with_bias(false)
                .init(device),
        }
    }

    pub fn zero_state(&self, batch: usize, device: &Device) -> SState {
        let hidden = self.r.weight.dims()[0];
        let z = || Tensor::zeros([batch, hidden], device);
        SState {
            c: z(),
            n: z(),
            m: z(),
            h: z(),
        }
    }

    /// # Shapes
    /// `x`: `[batch, d_in]`, state `[batch, hidden]` each → new state
    pub fn step(&self, x: Tensor<2>, s: SState) -> SState {
        let hidden = self.r.weight.dims()[0];
        let pre = linear(&self.w, x) + linear(&self.r, s.h); // [b, 4h]
        let gate = |k: usize| pre.clone().narrow(1, k * hidden, hidden);
        let z = gate(0).tanh();
        let i_tilde = gate(1);
        let log_f = log_sigmoid(gate(2));
        let o = sigmoid(gate(3));
        let m = (log_f.clone() + s.m.clone()).max_pair(i_tilde.clone());
        let i = (i_tilde - m.clone()).exp();
        let f = (log_f + s.m - m.clone()).exp();
        let c = f.clone() * s.c + i.clone() * z;
        let n = f * s.n + i;
        let h = o * c.clone() / n.clone();
        SState { c, n, m, h }
    }
}

/// mLSTM state: `c` `[batch, d, d]`, `n` `[batch, d]`, `m` `[batch, 1]`.
#[derive(Debug, Clone)]
pub struct MState {
    pub c: Tensor<3>,
    pub n: Tensor<2>,
    pub m: Tensor<2>,
}

#[derive(Module, Debug)]
pub struct MLstmCell {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// Scalar input and forget gate pre-activations `[ĩ, f̃]`.
    gates: Linear,
}

impl MLstmCell {
    pub fn new(d_in: usize, d: usize, device: &Device) -> Self {
        let lin = |o| LinearConfig::new(d_in, o).init(device);
        Self {
            q: lin(d),
            k: lin(d),
            v: lin(d),
            o: lin(d),
            gates: lin(2),
        }
    }

    pub fn zero_state(&self, batch: usize, device: &Device) -> MState {
        let d = self.q.weight.dims()[1];
        MState {
            c: Tensor::zeros([batch, d, d], device),
            n: Tensor::zeros([batch, d], device),
            m: Tensor::zeros([batch, 1], device),
        }
    }

    /// # Shapes
    /// `x`: `[batch, d_in]` → (`h` `[batch, d]`, new state)
    pub fn step(&self, x: Tensor<2>, s: MState) -> (Tensor<2>, MState) {
        let [b, _] = x.dims();
        let d = self.q.weight.dims()[1];
        let q = linear(&self.q, x.clone());
        let k = linear(&self.k, x.clone()) / (d as f64).sqrt();
        let v = linear(&self.v, x.clone());
        let o = sigmoid(linear(&self.o, x.clone()));
        let g = linear(&self.gates, x); // [b, 2]
        let i_tilde = g.clone().narrow(1, 0, 1);
        let log_f = log_sigmoid(g.narrow(1, 1, 1));
        let m = (log_f.clone() + s.m.clone()).max_pair(i_tilde.clone()); // [b, 1]
        let i = (i_tilde - m.clone()).exp();
        let f = (log_f + s.m - m.clone()).exp();
        let outer = v.reshape([b, d, 1]).matmul(k.clone().reshape([b, 1, d])); // [b, d, d]
        let c = f.clone().reshape([b, 1, 1]) * s.c + i.clone().reshape([b, 1, 1]) * outer;
        let n = f * s.n + i * k;
        let num = c
            .clone()
            .matmul(q.clone().reshape([b, d, 1]))
            .reshape([b, d]);
        let den = (n.clone() * q).sum_dim(1).abs().clamp_min(1.0); // [b, 1]
        (o * num / den, MState { c, n, m })
    }
}

/// Both blocks' states.
#[derive(Debug, Clone)]
pub struct XState {
    m: MState,
    s: SState,
}

impl XState {
    fn select(self, idx: Tensor<1, Int>) -> XState {
        let sel2 = |t: Tensor<2>| t.select(0, idx.clone());
        XState {
            m: MState {
                c: self.m.c.select(0, idx.clone()),
                n: sel2(self.m.n),
                m: sel2(self.m.m),
            },
            s: SState {
                c: sel2(self.s.c),
                n: sel2(self.s.n),
                m: sel2(self.s.m),
                h: sel2(self.s.h),
            },
        }
    }
}

/// Input projection, then x ← x + W_m mLSTM(LN x), x ← x + W_s sLSTM(LN x).
#[derive(Module, Debug)]
pub struct XLstmStack {
    input: Linear,
    norm_m: LayerNorm,
    mlstm: MLstmCell,
    out_m: Linear,
    norm_s: LayerNorm,
    slstm: SLstmCell,
    out_s: Linear,
}

impl XLstmStack {
    pub fn new(d_in: usize, hidden: usize, device: &Device) -> Self {
        Self {
            input: LinearConfig::new(d_in, hidden).init(device),
            norm_m: LayerNormConfig::new(hidden).init(device),
            mlstm: MLstmCell::new(hidden, hidden, device),
            out_m: LinearConfig::new(hidden, hidden).init(device),
            norm_s: LayerNormConfig::new(hidden).init(device),
            slstm: SLstmCell::new(hidden, hidden, device),
            out_s: LinearConfig::new(hidden, hidden).init(device),
        }
    }

    fn zero_state(&self, batch: usize, device: &Device) -> XState {
        XState {
            m: self.mlstm.zero_state(batch, device),
            s: self.slstm.zero_state(batch, device),
        }
    }

    /// # Shapes
    /// `x`: `[batch, d_in]` → (`[batch, hidden]`, new state)
    fn step(&self, x: Tensor<2>, st: XState) -> (Tensor<2>, XState) {
        let x = linear(&self.input, x);
        let (hm, m) = self.mlstm.step(self.norm_m.forward(x.clone()), st.m);
        let x = x + linear(&self.out_m, hm);
        let s = self.slstm.step(self.norm_s.forward(x.clone()), st.s);
        let x = x + linear(&self.out_s, s.h.clone());
        (x, XState { m, s })
    }

    /// Run over a sequence from the zero state.
    ///
    /// # Shapes
    /// `x`: `[batch, time, d_in]` → `[batch, time, hidden]`
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let mut st = self.zero_state(b, &x.device());
        let mut outs = Vec::with_capacity(t);
        for k in 0..t {
            let xk = x.clone().narrow(1, k, 1).squeeze_dim::<2>(1);
            let (y, next) = self.step(xk, st);
            st = next;
            outs.push(y.unsqueeze_dim::<3>(1));
        }
        Tensor::cat(outs, 1)
    }
}

/// Embedding → xLSTM stack; the output at each caption's `<eos>` gives
/// (mu, logvar).
#[derive(Module, Debug)]
pub struct XLstmTextEncoder {
    embed: Embedding,
    stack: XLstmStack,
    out: Linear,
}

impl XLstmTextEncoder {
    pub fn new(vocab: usize, embed: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            embed: EmbeddingConfig::new(vocab, embed).init(device),
            stack: XLstmStack::new(embed, hidden, device),
            out: LinearConfig::new(hidden, 2 * latent).init(device),
        }
    }

    /// # Shapes
    /// `tokens`: `[batch, time]`, `last`: `[batch]` → posterior over `[batch, latent]`
    pub fn forward(&self, tokens: Tensor<2, Int>, last: Tensor<1, Int>) -> Gaussian {
        let hs = self.stack.forward(self.embed.forward(tokens)); // [b, t, hidden]
        Gaussian::from_concat(linear(&self.out, at_positions(hs, last)))
    }
}

/// Each step reads the previous token's embedding concatenated with z.
#[derive(Module, Debug)]
pub struct XLstmTextDecoder {
    embed: Embedding,
    stack: XLstmStack,
    out: Linear,
}

impl XLstmTextDecoder {
    pub fn new(vocab: usize, embed: usize, hidden: usize, latent: usize, device: &Device) -> Self {
        Self {
            embed: EmbeddingConfig::new(vocab, embed).init(device),
            stack: XLstmStack::new(embed + latent, hidden, device),
            out: LinearConfig::new(hidden, vocab).init(device),
        }
    }

    /// Teacher-forced negative log-likelihood of each caption.
    ///
    /// # Shapes
    /// `z`: `[batch, latent]`, `tokens`: `[batch, time]` → `[batch]`
    pub fn nll(&self, z: Tensor<2>, tokens: Tensor<2, Int>) -> Tensor<1> {
        let (inputs, targets) = shift(tokens); // [b, t-1] each
        let x = with_latent(self.embed.forward(inputs), z); // [b, t-1, embed + latent]
        let hs = self.stack.forward(x); // [b, t-1, hidden]
        caption_nll(log_softmax(linear(&self.out, hs), 2), targets)
    }
}

impl StepDecoder for XLstmTextDecoder {
    /// Both blocks' states, zero at the start (z enters with every input).
    type State = XState;

    fn start(&self, z: Tensor<2>) -> XState {
        self.stack.zero_state(z.dims()[0], &z.device())
    }

    fn step(&self, z: Tensor<2>, st: XState, tok: Tensor<1, Int>) -> (Tensor<2>, XState) {
        let [b] = tok.dims();
        let embed = self.embed.forward(tok.reshape([b, 1])).squeeze_dim::<2>(1);
        let (y, st) = self.stack.step(Tensor::cat(vec![embed, z], 1), st);
        (log_softmax(linear(&self.out, y), 1), st)
    }

    fn select(st: XState, idx: Tensor<1, Int>) -> XState {
        st.select(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host2(t: Tensor<2>) -> Vec<Vec<f64>> {
        let [r, c] = t.dims();
        let v: Vec<f32> = t.try_into_vec_as::<f32>().unwrap();
        (0..r)
            .map(|i| v[i * c..(i + 1) * c].iter().map(|&x| x as f64).collect())
            .collect()
    }

    /// y = x W + b of a burn `Linear` (weight `[in, out]`), on the host.
    fn lin(l: &Linear, x: &[f64]) -> Vec<f64> {
        let w = host2(l.weight.val());
        let mut y: Vec<f64> = match &l.bias {
            Some(b) => b
                .val()
                .try_into_vec_as::<f32>()
                .unwrap()
                .iter()
                .map(|&v| v as f64)
                .collect(),
            None => vec![0.0; w[0].len()],
        };
        for (i, xi) in x.iter().enumerate() {
            for (o, yo) in y.iter_mut().enumerate() {
                *yo += xi * w[i][o];
            }
        }
        y
    }

    fn sig(v: f64) -> f64 {
        1.0 / (1.0 + (-v).exp())
    }

    fn inputs(d: &Device, t: usize, width: usize) -> (Vec<Vec<f64>>, Vec<Tensor<2>>) {
        let xs: Vec<Vec<f64>> = (0..t)
            .map(|k| {
                (0..width)
                    .map(|j| ((k * 7 + j * 3) % 11) as f64 / 5.0 - 1.0)
                    .collect()
            })
            .collect();
        let ts = xs
            .iter()
            .map(|x| {
                let v: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                Tensor::from_data(TensorData::new(v, [1, width]), d)
            })
            .collect();
        (xs, ts)
    }

    #[test]
    fn slstm_cell_follows_its_equations_step_by_step() {
        let _rng = crate::testutil::rng_lock();
        let d = Device::flex();
        d.seed(4);
        let (d_in, h) = (3, 4);
        let cell = SLstmCell::new(d_in, h, &d);
        let (xs, ts) = inputs(&d, 4, d_in);
        let mut st = cell.zero_state(1, &d);
        let (mut c, mut n, mut m, mut hv) =
            (vec![0.0; h], vec![0.0; h], vec![0.0; h], vec![0.0; h]);
        for (x, xt) in xs.iter().zip(ts) {
            st = cell.step(xt, st);
            let wx = lin(&cell.w, x);
            let rh = lin(&cell.r, &hv);
            let pre: Vec<f64> = wx.iter().zip(&rh).map(|(a, b)| a + b).collect();
            for u in 0..h {
                let z = pre[u].tanh();
                let it = pre[h + u];
                let log_f = sig(pre[2 * h + u]).ln();
                let o = sig(pre[3 * h + u]);
                let m_new = (log_f + m[u]).max(it);
                let i = (it - m_new).exp();
                let f = (log_f + m[u] - m_new).exp();
                c[u] = f * c[u] + i * z;
                n[u] = f * n[u] + i;
                m[u] = m_new;
                hv[u] = o * c[u] / n[u];
            }
            let got = host2(st.h.clone()).remove(0);
            for u in 0..h {
                assert!(
                    (got[u] - hv[u]).abs() < 1e-5,
                    "h[{u}] {} vs {}",
                    got[u],
                    hv[u]
                );
            }
            let gm = host2(st.m.clone()).remove(0);
            assert!((gm[0] - m[0]).abs() < 1e-5);
        }
    }

    #[test]
    fn mlstm_cell_follows_its_equations_step_by_step() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(6);
        let (d_in, d) = (3, 4);
        let cell = MLstmCell::new(d_in, d, &dev);
        let (xs, ts) = inputs(&dev, 4, d_in);
        let mut st = cell.zero_state(1, &dev);
        let mut cm = vec![vec![0.0f64; d]; d];
        let (mut n, mut m) = (vec![0.0f64; d], 0.0f64);
        for (x, xt) in xs.iter().zip(ts) {
            let (h, next) = cell.step(xt, st);
            st = next;
            let q = lin(&cell.q, x);
            let k: Vec<f64> = lin(&cell.k, x)
                .iter()
                .map(|v| v / (d as f64).sqrt())
                .collect();
            let v = lin(&cell.v, x);
            let o: Vec<f64> = lin(&cell.o, x).iter().map(|&a| sig(a)).collect();
            let g = lin(&cell.gates, x);
            let (it, log_f) = (g[0], sig(g[1]).ln());
            let m_new = (log_f + m).max(it);
            let i = (it - m_new).exp();
            let f = (log_f + m - m_new).exp();
            for r in 0..d {
                for col in 0..d {
                    cm[r][col] = f * cm[r][col] + i * v[r] * k[col];
                }
                n[r] = f * n[r] + i * k[r];
            }
            m = m_new;
            let den = n
                .iter()
                .zip(&q)
                .map(|(a, b)| a * b)
                .sum::<f64>()
                .abs()
                .max(1.0);
            let got = host2(h).remove(0);
            for r in 0..d {
                let num: f64 = (0..d).map(|col| cm[r][col] * q[col]).sum();
                let want = o[r] * num / den;
                assert!((got[r] - want).abs() < 1e-5, "h[{r}] {} vs {want}", got[r]);
            }
        }
    }
}
