//! Self-training for weak supervision (`data.self_training`): the model
//! fills in the captions and labels that unpaired training items lack, from
//! the modality each keeps, and the items it is sure of train as pairs.
//!
//! A fill is the greedy caption (the most probable label) of the posterior
//! mean given the kept modality; its confidence is the share of draws from
//! that posterior that decode to the same caption (label), which a
//! caption's many phrasings do not dilute as its probability would. Fills are recomputed from the
//! current weights before each epoch, so a resumed run repeats an
//! uninterrupted one.

use burn::prelude::*;
use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::Vocab;

use crate::config::{SelfTraining, TrainConfig};
use crate::io::batch::{frame, CaptionSource, HostBatch, HostInput};
use crate::io::data::{Pairing, TrainData};
use crate::modality::expert::Expert;
use crate::mvae::Mvae;
use crate::nn::gaussian::Gaussian;
use crate::objective::Subset;

/// Items encoded per forward pass while filling in.
const CHUNK: usize = 500;

/// A generated value of one modality of one item.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A framed caption (`<bos>` … `<eos>`, padded), its `<eos>` index,
    /// and its words.
    Tokens {
        ids: Vec<i64>,
        last: i64,
        text: String,
    },
    Label(i64),
}

/// One filled-in modality of one item.
#[derive(Debug, Clone, PartialEq)]
struct Fill {
    modality: usize,
    value: Value,
}

/// What was filled in for an epoch, per training item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PseudoPairs {
    fills: Vec<Vec<Fill>>,
}

/// How many values were generated and used, and how many of those used
/// agree with the item's withheld value (a diagnostic only: training never
/// reads the withheld values).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PseudoStats {
    pub generated: usize,
    pub used: usize,
    pub agreeing: usize,
}

impl PseudoPairs {
    /// No item filled in.
    pub fn none(items: usize) -> Self {
        PseudoPairs {
            fills: vec![Vec::new(); items],
        }
    }

    /// Fill in, with `model`, what the unpaired items of `pairing` lack,
    /// keeping the values whose confidence reaches `st.min_confidence`.
    pub fn fill(
        model: &Mvae,
        cfg: &TrainConfig,
        data: &TrainData,
        pairing: &Pairing,
        st: &SelfTraining,
        device: &Device,
    ) -> (Self, PseudoStats) {
        let mut out = PseudoPairs::none(data.train.len());
        let mut stats = PseudoStats::default();
        let layout = cfg.layout();
        let source = CaptionSource {
            captioner: data.captioner,
            set: CaptionSet::Train,
            stream: 0,
        };
        for kept in 0..model.modalities() {
            let targets: Vec<usize> = (0..model.modalities())
                .filter(|&t| t != kept && fillable(&model.experts[t]))
                .collect();
            let items = pairing.keeping_only(kept);
            if targets.is_empty() || items.is_empty() {
                continue;
            }
            for chunk in items.chunks(CHUNK) {
                let hb = HostBatch::gather(&layout, &data.train, chunk, source, &data.vocab);
                let q = model.posterior_given(&hb.to_device(device), Subset::single(kept));
                for &t in &targets {
                    let generated = generate(model, t, &q, st.draws, &data.vocab);
                    for (row, (value, confidence)) in generated.into_iter().enumerate() {
                        stats.generated += 1;
                        if confidence < st.min_confidence {
                            continue;
                        }
                        stats.used += 1;
                        if agrees(&value, &hb, row, t, data.captioner) {
                            stats.agreeing += 1;
                        }
                        out.fills[chunk[row]].push(Fill { modality: t, value });
                    }
                }
            }
        }
        (out, stats)
    }

    /// Write the filled-in values of training items `indices` into the
    /// batch gathered from them, and mark them present.
    pub fn apply(&self, hb: &mut HostBatch, indices: &[usize]) {
        let modalities = hb.modalities();
        for (row, &i) in indices.iter().enumerate() {
            for f in &self.fills[i] {
                match (&mut hb.inputs[f.modality], &f.value) {
                    (
                        HostInput::Tokens { max_len, ids, last },
                        Value::Tokens {
                            ids: v, last: l, ..
                        },
                    ) => {
                        ids[row * *max_len..(row + 1) * *max_len].copy_from_slice(v);
                        last[row] = *l;
                    }
                    (HostInput::Label(labels), Value::Label(v)) => labels[row] = *v,
                    // Fills are made for the modality's own kind only.
                    _ => continue,
                }
                hb.present[row * modalities + f.modality] = 1.0;
            }
        }
    }
}

/// Whether self-training fills in this modality: captions and labels.
fn fillable(e: &Expert) -> bool {
    match e {
        Expert::Text(_) | Expert::Label(_) => true,
        Expert::Image(_) => false,
    }
}

/// The most probable value of modality `t` at each row of `z`: its greedy
/// caption or most probable label.
///
/// # Shapes
/// `z`: `[n, latent]` → `n` values
fn decode_values(model: &Mvae, t: usize, z: Tensor<2>, vocab: &Vocab) -> Vec<Value> {
    match &model.experts[t] {
        Expert::Text(e) => e
            .decoder
            .decode(z, e.max_len, None)
            .into_iter()
            .map(|c| {
                let (ids, last) = frame(vocab, &c, e.max_len);
                Value::Tokens {
                    ids,
                    last,
                    text: vocab.decode(&c),
                }
            })
            .collect(),
        Expert::Label(e) => e
            .decode(z)
            .into_iter()
            .map(|c| Value::Label(c as i64))
            .collect(),
        Expert::Image(_) => Vec::new(),
    }
}

/// Modality `t` decoded from the mean of `q`, and the share of `draws`
/// draws from `q` that decode to the same value (its confidence). The mean
/// and the draws are decoded as one batch.
fn generate(
    model: &Mvae,
    t: usize,
    q: &Gaussian,
    draws: usize,
    vocab: &Vocab,
) -> Vec<(Value, f64)> {
    let n = q.mu.dims()[0];
    let mut z = vec![q.mu.clone()];
    z.extend((0..draws).map(|_| q.rsample()));
    let mut values = decode_values(model, t, Tensor::cat(z, 0), vocab);
    let drawn = values.split_off(n.min(values.len()));
    let mut same = vec![0usize; n];
    for d in drawn.chunks(n) {
        for ((count, a), b) in same.iter_mut().zip(&values).zip(d) {
            *count += usize::from(a.same_as(b));
        }
    }
    values
        .into_iter()
        .zip(same)
        .map(|(v, c)| (v, c as f64 / draws.max(1) as f64))
        .collect()
}

impl Value {
    /// The same caption (token for token) or label.
    fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Tokens { ids: a, .. }, Value::Tokens { ids: b, .. }) => a == b,
            (Value::Label(a), Value::Label(b)) => a == b,
            _ => false,
        }
    }
}

/// Whether a generated value says what the item's withheld one says: the
/// same label, or a caption naming the same attribute values (as the
/// coherence evaluation parses captions).
fn agrees(value: &Value, hb: &HostBatch, row: usize, t: usize, captioner: Captioner) -> bool {
    match (value, &hb.inputs[t]) {
        (Value::Label(v), HostInput::Label(labels)) => labels[row] == *v,
        (Value::Tokens { text, .. }, HostInput::Tokens { .. }) => {
            let said = captioner.slots_of(text);
            !said.is_empty()
                && said.iter().all(Option::is_some)
                && said == captioner.slots_of(&hb.captions[row])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two items, an image of 2 pixels, a caption of 4 tokens and a label.
    fn batch() -> HostBatch {
        HostBatch {
            size: 2,
            inputs: vec![
                HostInput::Image {
                    pixels: 2,
                    values: vec![0.1, 0.2, 0.3, 0.4],
                },
                HostInput::Tokens {
                    max_len: 4,
                    ids: vec![1, 5, 2, 0, 1, 6, 2, 0],
                    last: vec![2, 2],
                },
                HostInput::Label(vec![3, 4]),
            ],
            present: vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            labels: vec![3, 4],
            captions: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn confidence_is_the_share_of_draws_that_decode_to_the_means_value() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        let mods = crate::testutil::three_modalities();
        let model = crate::testutil::tiny_model(crate::config::Fusion::Poe, 0).init(
            &mods,
            crate::testutil::SHAPE,
            &dev,
        );
        let vocab = Vocab::build(["a b c d e"]);
        assert_eq!(vocab.len(), crate::testutil::SHAPE.vocab);
        let mu = Tensor::<2>::random([40, 4], burn::tensor::Distribution::Normal(0.0, 2.0), &dev);
        let q = |logvar: f32| Gaussian::new(mu.clone(), Tensor::full([40, 4], logvar, &dev));
        let (label, text) = (2, 1);
        // The mean's value is what decoding the mean alone gives.
        for t in [label, text] {
            let alone = decode_values(&model, t, mu.clone(), &vocab);
            let got = generate(&model, t, &q(0.0), 3, &vocab);
            assert_eq!(got.len(), 40);
            for ((v, c), a) in got.iter().zip(&alone) {
                assert!(v.same_as(a));
                assert!(
                    [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]
                        .iter()
                        .any(|x| (c - x).abs() < 1e-9),
                    "{c}"
                );
            }
        }
        // Draws at the mean always agree; draws far from it often do not.
        let tight = generate(&model, label, &q(-30.0), 5, &vocab);
        assert!(tight.iter().all(|(_, c)| *c == 1.0));
        let loose = generate(&model, label, &q(8.0), 5, &vocab);
        assert!(loose.iter().any(|(_, c)| *c < 1.0));
    }

    #[test]
    fn fills_are_written_into_their_rows_and_marked_present() {
        let mut p = PseudoPairs::none(10);
        p.fills[7] = vec![
            Fill {
                modality: 1,
                value: Value::Tokens {
                    ids: vec![1, 8, 9, 2],
                    last: 3,
                    text: "x y".into(),
                },
            },
            Fill {
                modality: 2,
                value: Value::Label(9),
            },
        ];
        let mut hb = batch();
        // Training items 4 and 7 are the batch's rows 0 and 1.
        p.apply(&mut hb, &[4, 7]);
        let mut want = batch();
        want.inputs[1] = HostInput::Tokens {
            max_len: 4,
            ids: vec![1, 5, 2, 0, 1, 8, 9, 2],
            last: vec![2, 3],
        };
        want.inputs[2] = HostInput::Label(vec![3, 9]);
        want.present = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        assert_eq!(hb, want);
    }

    #[test]
    fn values_agree_by_label_or_by_what_the_caption_names() {
        let captioner = Captioner::new(mmvae_data::DatasetKind::Mnist, 0);
        let mut hb = batch();
        hb.captions = vec!["the digit seven".into(), "a handwritten two".into()];
        let said = |text: &str| Value::Tokens {
            ids: Vec::new(),
            last: 0,
            text: text.into(),
        };
        assert!(agrees(&said("seven"), &hb, 0, 1, captioner));
        assert!(agrees(&said("a picture of a two"), &hb, 1, 1, captioner));
        assert!(!agrees(&said("two"), &hb, 0, 1, captioner));
        assert!(!agrees(&said("the digit"), &hb, 0, 1, captioner));
        assert!(agrees(&Value::Label(4), &hb, 1, 2, captioner));
        assert!(!agrees(&Value::Label(4), &hb, 0, 2, captioner));
        assert!(Value::Label(2).same_as(&Value::Label(2)));
        assert!(!said("seven").same_as(&Value::Label(7)));
    }
}
