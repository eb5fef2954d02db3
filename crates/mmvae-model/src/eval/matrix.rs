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
use mmvae_data::vision::Hidden;
use mmvae_data::{DatasetKind, ImageLabelSet, LabelSource};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::eval::classifier::Classifier;
use crate::eval::classifiers::Classifiers;
use crate::eval::completion::{ByCover, CoverTally};
use crate::eval::matrix_fid::{FidTally, ModalityFid};
use crate::host::floats;
use crate::infer::{Draw, Loaded};
use crate::io::batch::{CaptionSource, HostBatch, Input};
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
    /// Fréchet distances of the generated images per image output, where
    /// asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fid: Option<ModalityFid>,
    /// The single-input cells by how much of each item's object the masked
    /// square hides (a vision set drawn on black).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_cover: Option<ByCover>,
}

/// What the FID of the matrix's images is measured in.
const FID_FEATURES: &str = "penultimate layer of each image modality's evaluation classifier";

/// Reads the class a generated modality shows.
struct Readers<'a> {
    clf: Option<&'a Classifiers>,
    captioner: Captioner,
    /// Whether images' classifier features are kept (for FID).
    features: bool,
}

/// What one generated modality shows of a batch of items.
struct Shown {
    /// The attribute slots the modality shows (all of them, or the one
    /// slot a slot label reads).
    slots: Vec<usize>,
    /// Per row, the value of each of `slots` (`None` where not recognised).
    values: Vec<Vec<Option<usize>>>,
    /// An image's classifier features (`rows × Classifier::FEATURES`, row
    /// after row), where the readers keep them.
    features: Option<Vec<f32>>,
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
    /// `private` says how an image's modality-private latent is drawn from
    /// its prior (a sample, or its mean: zero).
    fn read(&self, m: &Loaded, o: usize, z: Tensor<2>, private: Draw) -> Option<Shown> {
        let kind = m.checkpoint.config.data.dataset;
        let all: Vec<usize> = (0..kind.slots().len()).collect();
        let every = |values: Vec<Vec<Option<usize>>>| Shown {
            slots: all.clone(),
            values,
            features: None,
        };
        match &m.model.experts[o] {
            Expert::Image(img) => {
                let clf = self.clf?.of(&m.model.names[o])?;
                let probs = img.decode(m.model.with_private(z, private == Draw::Sample));
                let (preds, features) = if self.features {
                    let (p, f) = clf.predict_with_features(probs);
                    (p, Some(floats(f)))
                } else {
                    (clf.predict(probs), None)
                };
                Some(Shown {
                    features,
                    ..every(
                        preds
                            .into_iter()
                            .map(|p| p.into_iter().map(Some).collect())
                            .collect(),
                    )
                })
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
                        features: None,
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

/// How a coherence matrix is measured.
#[derive(Debug, Clone, Copy)]
pub struct MatrixOptions {
    /// The first this many test items are scored.
    pub items: usize,
    /// Where the test items' captions come from.
    pub source: CaptionSource,
    /// Items per batch.
    pub batch_size: usize,
    /// Prior samples for the joint coherence.
    pub joint_samples: usize,
    /// Also the Fréchet distances of the generated images per image
    /// output ([`ModalityFid`]).
    pub fid: bool,
    /// How each cell's latent is drawn from the fused posterior of its
    /// inputs (a modality-private latent from its prior likewise). Joint
    /// coherence always samples the prior.
    pub draw: Draw,
}

/// The running counts of a matrix over the test items' batches.
struct Counts {
    cells: Vec<Vec<CellCount>>,
    readable: Vec<bool>,
    fid: Option<FidTally>,
    cover: Option<CoverTally>,
}

/// Score the first `opts.items` test items and `opts.joint_samples` prior
/// samples. Latents are drawn from each posterior as `opts.draw` says
/// (samples seeded by the caller through the device).
pub fn coherence_matrix(
    m: &Loaded,
    clf: Option<&Classifiers>,
    test: &ImageLabelSet,
    opts: &MatrixOptions,
) -> CoherenceMatrix {
    let model = &m.model;
    let nm = model.modalities();
    let kind = test.kind;
    let readers = Readers {
        clf,
        captioner: m.captioner(),
        features: opts.fid,
    };
    let subsets = scored_subsets(nm);
    let blank = CellCount {
        slot_right: vec![0; kind.slots().len()],
        ..CellCount::default()
    };
    let mut counts = Counts {
        cells: vec![vec![blank; nm]; subsets.len()],
        readable: vec![true; nm],
        fid: opts
            .fid
            .then(|| FidTally::new(subsets.len(), nm, Classifier::FEATURES)),
        cover: None,
    };
    let bands = Hidden::of_items(test);
    counts.cover = bands.as_ref().map(|_| CoverTally::new(nm));
    let idx: Vec<usize> = (0..opts.items.min(test.len())).collect();
    for chunk in idx.chunks(opts.batch_size.max(1)) {
        let hb = HostBatch::gather(
            &model.layout(),
            test,
            chunk,
            opts.source,
            &m.checkpoint.vocab,
        );
        let chunk_bands = bands.as_ref().map(|b| &b[chunk[0]..chunk[0] + chunk.len()]);
        score_batch(
            m,
            &readers,
            &subsets,
            &hb,
            chunk_bands,
            opts.draw,
            &mut counts,
        );
    }
    let mut out = tabulate(m, kind, &subsets, &counts.cells, &counts.readable);
    out.unread = (0..nm)
        .filter(|&o| !counts.readable[o])
        .map(|o| model.names[o].clone())
        .collect();
    out.by_cover = counts.cover.as_ref().map(|t| t.finish(&model.names));
    (out.joint, out.joint_samples) = joint_coherence(
        m,
        &readers,
        opts.joint_samples,
        opts.batch_size,
        counts.fid.as_mut(),
    );
    out.fid = counts.fid.and_then(|t| {
        let names: Vec<String> = subsets.iter().map(|&s| subset_name(m, s)).collect();
        t.finish(&model.names, &subsets, &names, FID_FEATURES)
    });
    out
}

/// Generate every readable output of one batch of test items from every
/// scored subset and count what the readers recognise (and, for FID, keep
/// the features of the real and generated images; with the items' `bands`,
/// the single inputs' counts by band).
fn score_batch(
    m: &Loaded,
    readers: &Readers,
    subsets: &[Subset],
    hb: &HostBatch,
    bands: Option<&[Option<Hidden>]>,
    draw: Draw,
    counts: &mut Counts,
) {
    let model = &m.model;
    let kind = m.checkpoint.config.data.dataset;
    let batch = hb.to_device(&m.device);
    let want: Vec<Vec<usize>> = hb.labels.iter().map(|&l| kind.attributes(l)).collect();
    if let Some(tally) = counts.fid.as_mut() {
        for (o, input) in batch.inputs.iter().enumerate() {
            let clf = readers.clf.and_then(|c| c.of(&model.names[o]));
            if let (Input::Image(x), Some(clf)) = (input, clf) {
                tally.add_real(o, &floats(clf.features(x.clone())));
            }
        }
    }
    if let (Some(tally), Some(b)) = (counts.cover.as_mut(), bands) {
        tally.add_items(b);
    }
    // Each modality encoded once; every subset fuses those encodings.
    let shared = model.encode_shared(&batch);
    for (si, &s) in subsets.iter().enumerate() {
        let z = Loaded::draw(&model.fuse_encoded(&shared, s), draw);
        for o in 0..model.experts.len() {
            let Some(got) = readers.read(m, o, z.clone(), draw) else {
                counts.readable[o] = false;
                continue;
            };
            let c = &mut counts.cells[si][o];
            for (i, w) in want.iter().enumerate() {
                c.right += got.matches(i, w) as usize;
                c.scored += 1;
                for (k, ok) in got.slot_matches(i, w) {
                    c.slot_right[k] += ok as usize;
                }
            }
            if let (Some(tally), Some(f)) = (counts.fid.as_mut(), &got.features) {
                tally.add_generated(si, o, f);
            }
            if let (Some(tally), Some(b), Some(input)) = (counts.cover.as_mut(), bands, s.only()) {
                for (i, (w, band)) in want.iter().zip(b).enumerate() {
                    if let Some(band) = band {
                        tally.add(*band, input, o, got.matches(i, w));
                    }
                }
            }
        }
    }
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
/// show the same (fully recognised) attributes, and the samples drawn (none
/// where fewer than two modalities are read). With `fid`, their images'
/// features are kept.
fn joint_coherence(
    m: &Loaded,
    readers: &Readers,
    samples: usize,
    bs: usize,
    mut fid: Option<&mut FidTally>,
) -> (f64, usize) {
    let (mut agree, mut total) = (0usize, 0usize);
    let mut left = samples;
    let slots = m.checkpoint.config.data.dataset.slots().len();
    while left > 0 {
        let k = left.min(bs.max(1));
        left -= k;
        let z = Tensor::<2>::random(
            [k, m.model.latent],
            Distribution::Normal(0.0, 1.0),
            &m.device,
        );
        let reads: Vec<(usize, Shown)> = (0..m.model.experts.len())
            .filter_map(|o| readers.read(m, o, z.clone(), Draw::Sample).map(|r| (o, r)))
            .collect();
        if let Some(tally) = fid.as_deref_mut() {
            for (o, r) in &reads {
                if let Some(f) = &r.features {
                    tally.add_prior(*o, f);
                }
            }
        }
        if reads.len() < 2 {
            if fid.is_none() {
                return (0.0, 0);
            }
            continue;
        }
        let reads: Vec<Shown> = reads.into_iter().map(|(_, r)| r).collect();
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
        if let Some(c) = &self.by_cover {
            s.push_str(&c.table());
        }
        if let Some(f) = &self.fid {
            s.push_str(&f.table());
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
            features: None,
        };
        let slot = |k: usize, v: usize| Shown {
            slots: vec![k],
            values: vec![vec![Some(v)]],
            features: None,
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
