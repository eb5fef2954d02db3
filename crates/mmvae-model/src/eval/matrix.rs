//! Conditional coherence for any set of modalities: for every subset of
//! input modalities and every output modality, the fraction of test items
//! whose generated output shows the item's class, as the MoPoE and MMVAE+
//! papers report it; the mean by number of inputs; and the joint coherence
//! of prior samples (every modality generated from one z agrees).
//!
//! What "shows the class" means per kind: an image is read by the
//! evaluation classifier (every attribute slot right), a caption by the
//! dataset's caption parser, a label is its own class.

use burn::prelude::*;
use burn::tensor::Distribution;
use mmvae_data::captions::Captioner;
use mmvae_data::{DatasetKind, ImageLabelSet, LabelSource};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::eval::classifiers::Classifiers;
use crate::infer::Loaded;
use crate::io::batch::{CaptionSource, HostBatch};
use crate::modality::expert::Expert;
use crate::objective::Subset;

/// The coherence of every (inputs → output) pair and of prior samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CoherenceMatrix {
    /// `inputs` (names joined by `+`) → output name → fraction right.
    pub cells: BTreeMap<String, BTreeMap<String, f64>>,
    /// Number of inputs → the mean over subsets of that size and over the
    /// outputs outside them.
    pub by_inputs: BTreeMap<usize, f64>,
    /// Fraction of prior samples whose modalities all show one class.
    pub joint: f64,
    /// The prior samples drawn for `joint`.
    pub joint_samples: usize,
    /// `inputs` → output → attribute slot → fraction right, where the
    /// dataset has more than one slot: what a generated image keeps of the
    /// item even where it misses some attribute (the shape and size of an
    /// image generated from its edge map, which has no colour).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_slot: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
    /// Output modalities that could not be read (an image without an
    /// evaluation classifier), left out of the cells.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
}

/// Reads the class a generated modality shows.
struct Readers<'a> {
    clf: Option<&'a Classifiers>,
    captioner: Captioner,
}

/// What one generated modality shows of a batch of items.
struct Shown {
    /// The attribute slots the modality shows (all of them, or the one
    /// slot a slot label reads).
    slots: Vec<usize>,
    /// Per row, the value of each of `slots` (`None` where not recognised).
    values: Vec<Vec<Option<usize>>>,
}

impl Shown {
    /// Whether row `i` shows every one of its slots as in `want` (a value
    /// per slot of the dataset).
    fn matches(&self, i: usize, want: &[usize]) -> bool {
        self.values[i].len() == self.slots.len()
            && self
                .slots
                .iter()
                .zip(&self.values[i])
                .all(|(&k, v)| *v == want.get(k).copied())
    }

    /// Per slot this modality shows, whether row `i` shows it as in `want`.
    fn slot_matches<'s>(
        &'s self,
        i: usize,
        want: &'s [usize],
    ) -> impl Iterator<Item = (usize, bool)> + 's {
        self.slots.iter().enumerate().map(move |(j, &k)| {
            let got = self.values[i].get(j).copied().flatten();
            (k, got.is_some() && got == want.get(k).copied())
        })
    }
}

/// Right answers per scored cell: overall and per attribute slot. (Not
/// [`crate::eval::coherence`]'s tally: an output here may show one slot
/// only, and is scored on the slots it shows.)
#[derive(Debug, Clone, Default)]
struct CellCount {
    right: usize,
    scored: usize,
    slot_right: Vec<usize>,
}

impl Readers<'_> {
    /// What output `o` shows, or `None` when this modality cannot be read.
    fn read(&self, m: &Loaded, o: usize, z: Tensor<2>) -> Option<Shown> {
        let kind = m.checkpoint.config.data.dataset;
        let all: Vec<usize> = (0..kind.slots().len()).collect();
        let every = |values: Vec<Vec<Option<usize>>>| Shown {
            slots: all.clone(),
            values,
        };
        match &m.model.experts[o] {
            Expert::Image(img) => {
                let clf = self.clf?.of(&m.model.names[o])?;
                let probs = img.decode(m.model.with_private(z, true));
                Some(every(
                    clf.predict(probs)
                        .into_iter()
                        .map(|p| p.into_iter().map(Some).collect())
                        .collect(),
                ))
            }
            Expert::Text(t) => Some(every(
                t.decoder
                    .decode(z, m.model.max_len, None)
                    .iter()
                    .map(|ids| self.captioner.slots_of(&m.checkpoint.vocab.decode(ids)))
                    .collect(),
            )),
            Expert::Label(l) => {
                let values = l.decode(z).into_iter();
                Some(match kind.label_source(&m.model.names[o]) {
                    LabelSource::Class => every(
                        values
                            .map(|c| kind.attributes(c).into_iter().map(Some).collect())
                            .collect(),
                    ),
                    LabelSource::Slot(k) => Shown {
                        slots: vec![k],
                        values: values.map(|v| vec![Some(v)]).collect(),
                    },
                })
            }
        }
    }
}

/// Up to this many modalities every non-empty input subset is scored (63
/// for six).
pub const EVERY_SUBSET_UP_TO: usize = 6;

/// The input subsets scored: every non-empty subset of up to
/// [`EVERY_SUBSET_UP_TO`] modalities; beyond that (CelebA-19's nineteen)
/// the full set, each modality alone and every set of all but one.
pub fn scored_subsets(m: usize) -> Vec<Subset> {
    if m <= EVERY_SUBSET_UP_TO {
        return Subset::all_nonempty(m);
    }
    let full = Subset::full(m);
    let mut out = vec![full];
    out.extend((0..m).map(Subset::single));
    out.extend((0..m).map(|i| Subset(full.0 & !(1 << i))));
    out
}

/// Names of the members of `s`, joined by `+`.
fn subset_name(m: &Loaded, s: Subset) -> String {
    s.members()
        .map(|i| m.model.names[i].as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// Score the first `n` test items (in batches of `bs`) and `joint_samples`
/// prior samples. Latents are drawn from each posterior (seeded by the
/// caller through the device).
pub fn coherence_matrix(
    m: &Loaded,
    clf: Option<&Classifiers>,
    test: &ImageLabelSet,
    n: usize,
    source: CaptionSource,
    bs: usize,
    joint_samples: usize,
) -> CoherenceMatrix {
    let model = &m.model;
    let nm = model.modalities();
    let kind = test.kind;
    let readers = Readers {
        clf,
        captioner: m.captioner(),
    };
    let subsets = scored_subsets(nm);
    let slots = kind.slots();
    let blank = CellCount {
        slot_right: vec![0; slots.len()],
        ..CellCount::default()
    };
    let mut counts = vec![vec![blank; nm]; subsets.len()];
    let mut readable = vec![true; nm];
    let idx: Vec<usize> = (0..n.min(test.len())).collect();
    for chunk in idx.chunks(bs.max(1)) {
        let hb = HostBatch::gather(&model.layout(), test, chunk, source, &m.checkpoint.vocab);
        let batch = hb.to_device(&m.device);
        let want: Vec<Vec<usize>> = hb.labels.iter().map(|&l| kind.attributes(l)).collect();
        // Each modality encoded once; every subset fuses those encodings.
        let shared = model.encode_shared(&batch);
        for (si, &s) in subsets.iter().enumerate() {
            let z = model.fuse_encoded(&shared, s).rsample();
            for o in 0..model.experts.len() {
                match readers.read(m, o, z.clone()) {
                    Some(got) => {
                        let c = &mut counts[si][o];
                        for (i, w) in want.iter().enumerate() {
                            c.right += got.matches(i, w) as usize;
                            c.scored += 1;
                            for (k, ok) in got.slot_matches(i, w) {
                                c.slot_right[k] += ok as usize;
                            }
                        }
                    }
                    None => readable[o] = false,
                }
            }
        }
    }
    let mut out = tabulate(m, kind, &subsets, &counts, &readable);
    out.unread = (0..nm)
        .filter(|&o| !readable[o])
        .map(|o| model.names[o].clone())
        .collect();
    (out.joint, out.joint_samples) = joint_coherence(m, &readers, joint_samples, bs);
    out
}

/// The matrix of the counts: each subset's accuracy on each readable
/// output (and per slot, with several), and the mean over the outputs
/// outside the subset by its size.
fn tabulate(
    m: &Loaded,
    kind: DatasetKind,
    subsets: &[Subset],
    counts: &[Vec<CellCount>],
    readable: &[bool],
) -> CoherenceMatrix {
    let model = &m.model;
    let slots = kind.slots();
    let mut out = CoherenceMatrix::default();
    let mut by_size: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    for (si, &s) in subsets.iter().enumerate() {
        let row = out.cells.entry(subset_name(m, s)).or_default();
        for o in (0..readable.len()).filter(|&o| readable[o]) {
            let c = &counts[si][o];
            let acc = c.right as f64 / c.scored.max(1) as f64;
            row.insert(model.names[o].clone(), acc);
            if slots.len() > 1 {
                let per: BTreeMap<String, f64> = slots
                    .iter()
                    .zip(&c.slot_right)
                    .map(|((name, _), &r)| (name.to_string(), r as f64 / c.scored.max(1) as f64))
                    .collect();
                out.by_slot
                    .entry(subset_name(m, s))
                    .or_default()
                    .insert(model.names[o].clone(), per);
            }
            if !s.contains(o) {
                let e = by_size.entry(s.len()).or_insert((0.0, 0));
                e.0 += acc;
                e.1 += 1;
            }
        }
    }
    out.by_inputs = by_size
        .into_iter()
        .map(|(k, (sum, c))| (k, sum / c.max(1) as f64))
        .collect();
    out
}

/// Prior samples z ~ N(0, I): the fraction whose readable modalities all
/// show the same (fully recognised) attributes, and the samples drawn.
fn joint_coherence(m: &Loaded, readers: &Readers, samples: usize, bs: usize) -> (f64, usize) {
    let (mut agree, mut total) = (0usize, 0usize);
    let mut left = samples;
    while left > 0 {
        let k = left.min(bs.max(1));
        left -= k;
        let z = Tensor::<2>::random(
            [k, m.model.latent],
            Distribution::Normal(0.0, 1.0),
            &m.device,
        );
        let reads: Vec<Shown> = (0..m.model.experts.len())
            .filter_map(|o| readers.read(m, o, z.clone()))
            .collect();
        if reads.len() < 2 {
            return (0.0, 0);
        }
        let slots = m.checkpoint.config.data.dataset.slots().len();
        for i in 0..k {
            agree += agrees(&reads, i, slots) as usize;
            total += 1;
        }
    }
    (agree as f64 / total.max(1) as f64, total)
}

/// Whether row `i` of every reading recognises each slot it shows, and
/// every slot shown by several readings has one value.
fn agrees(reads: &[Shown], i: usize, slots: usize) -> bool {
    let mut seen: Vec<Option<usize>> = vec![None; slots];
    for r in reads {
        for (&k, v) in r.slots.iter().zip(&r.values[i]) {
            match (v, seen[k]) {
                (None, _) => return false,
                (Some(v), Some(s)) if *v != s => return false,
                (Some(v), _) => seen[k] = Some(*v),
            }
        }
    }
    true
}

impl CoherenceMatrix {
    /// The matrix as text: one row per input subset, one column per output.
    pub fn table(&self) -> String {
        let outputs: Vec<&String> = self
            .cells
            .values()
            .next()
            .map(|r| r.keys().collect())
            .unwrap_or_default();
        let mut s = format!("  {:<28}", "given \\ generated");
        for o in &outputs {
            s.push_str(&format!("{o:>12}"));
        }
        s.push('\n');
        let mut rows: Vec<(&String, &BTreeMap<String, f64>)> = self.cells.iter().collect();
        rows.sort_by_key(|(k, _)| (k.matches('+').count(), (*k).clone()));
        for (given, row) in rows {
            s.push_str(&format!("  {given:<28}"));
            for o in &outputs {
                s.push_str(&format!(
                    "{:>11.2}%",
                    100.0 * row.get(*o).copied().unwrap_or(f64::NAN)
                ));
            }
            s.push('\n');
        }
        s.push_str(&self.slot_table());
        for (k, v) in &self.by_inputs {
            s.push_str(&format!(
                "  mean given {k} input{}: {:.2}%\n",
                if *k == 1 { "" } else { "s" },
                100.0 * v
            ));
        }
        s.push_str(&format!(
            "  joint (prior samples): {:.2}%\n",
            100.0 * self.joint
        ));
        if !self.unread.is_empty() {
            s.push_str(&format!(
                "  not scored (no evaluation classifier): {}\n",
                self.unread.join(", ")
            ));
        }
        s
    }

    /// Each attribute read right, for every single input and every output
    /// (its own reconstruction included; empty where the dataset has one
    /// attribute).
    fn slot_table(&self) -> String {
        let mut s = String::new();
        for (given, row) in self.by_slot.iter().filter(|(k, _)| !k.contains('+')) {
            for (output, per) in row {
                let parts: Vec<String> = per
                    .iter()
                    .map(|(slot, v)| format!("{slot} {:.2}%", 100.0 * v))
                    .collect();
                s.push_str(&format!("  {given} -> {output}: {}\n", parts.join(", ")));
            }
        }
        if !s.is_empty() {
            s.insert_str(0, "  each attribute, from one input:\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attribute_table_lists_single_inputs_and_every_output() {
        let mut cm = CoherenceMatrix::default();
        let per =
            |a: f64, b: f64| BTreeMap::from([("size".to_string(), a), ("shape".to_string(), b)]);
        for given in ["edges", "edges+grey"] {
            let row = cm.by_slot.entry(given.to_string()).or_default();
            row.insert("image".into(), per(0.5, 0.25));
            row.insert("edges".into(), per(1.0, 1.0));
        }
        let t = cm.slot_table();
        assert!(
            t.contains("edges -> image: shape 25.00%, size 50.00%"),
            "{t}"
        );
        assert!(
            t.contains("edges -> edges: shape 100.00%") && !t.contains("edges+grey"),
            "{t}"
        );
        assert!(CoherenceMatrix::default().slot_table().is_empty());
    }

    #[test]
    fn every_subset_is_scored_up_to_six_modalities_and_a_linear_set_beyond() {
        assert_eq!(scored_subsets(5), Subset::all_nonempty(5));
        assert_eq!(scored_subsets(6).len(), 63);
        let s = scored_subsets(19);
        assert_eq!(s.len(), 1 + 19 + 19);
        let mut sizes: Vec<usize> = s.iter().map(|x| x.len()).collect();
        sizes.sort_unstable();
        sizes.dedup();
        assert_eq!(sizes, vec![1, 18, 19]);
        let distinct: std::collections::BTreeSet<Subset> = s.iter().copied().collect();
        assert_eq!(distinct.len(), s.len());
    }

    #[test]
    fn readings_agree_when_every_slot_they_share_has_one_value() {
        let every = |v: Vec<Option<usize>>| Shown {
            slots: vec![0, 1, 2],
            values: vec![v],
        };
        let slot = |k: usize, v: usize| Shown {
            slots: vec![k],
            values: vec![vec![Some(v)]],
        };
        let image = every(vec![Some(1), Some(0), Some(2)]);
        assert!(agrees(
            &[
                every(vec![Some(1), Some(0), Some(2)]),
                slot(1, 0),
                slot(2, 2)
            ],
            0,
            3
        ));
        assert!(!agrees(
            &[every(vec![Some(1), Some(0), Some(2)]), slot(1, 1)],
            0,
            3
        ));
        // A slot that is not recognised is not coherent.
        assert!(!agrees(
            &[every(vec![Some(1), None, Some(2)]), slot(0, 1)],
            0,
            3
        ));
        // Scoring against the item: only the slots an output shows count.
        assert!(slot(2, 2).matches(0, &[0, 0, 2]));
        assert!(!slot(2, 2).matches(0, &[0, 0, 1]));
        assert!(image.matches(0, &[1, 0, 2]));
        assert!(!image.matches(0, &[1, 1, 2]));
        // Per slot, a miss in one attribute leaves the others right.
        let per: Vec<(usize, bool)> = image.slot_matches(0, &[1, 1, 2]).collect();
        assert_eq!(per, vec![(0, true), (1, false), (2, true)]);
        let unread = every(vec![Some(1), None, Some(2)]);
        let per: Vec<bool> = unread.slot_matches(0, &[1, 0, 2]).map(|p| p.1).collect();
        assert_eq!(per, vec![true, false, true]);
        assert_eq!(
            slot(2, 2).slot_matches(0, &[0, 0, 2]).collect::<Vec<_>>(),
            vec![(2, true)]
        );
    }
}
