//! Agreement of generated attributes with the wanted ones, tallied over
//! items: strict, per feature, per slot and per value.

use mmvae_data::DatasetKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// Agreement between the attributes something should have and those it has.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coherence {
    /// Fraction of items with every attribute slot right.
    pub strict: f64,
    /// Mean fraction of slots right per item.
    pub features: f64,
    /// Fraction right of each slot.
    pub per_slot: BTreeMap<String, f64>,
    /// Strict score of the items that should have a slot's value, per
    /// value (`"shape=heart"`: the fraction of items meant to show a heart
    /// with every slot right), to see which classes a model misses.
    pub strict_by_value: BTreeMap<String, f64>,
    /// Character accuracy of generated captions against the reference
    /// caption (position by position, over the longer of the two), where the
    /// dataset has one caption per class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub letters: Option<f64>,
    /// Micro-averaged F1 of the present attributes (value 1), where every
    /// slot is binary (CelebA): the score for imbalanced attribute sets,
    /// where per-slot accuracy rewards predicting "absent".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_f1: Option<f64>,
}

/// Running counts behind a [`Coherence`].
pub(crate) struct Tally {
    names: Vec<&'static str>,
    /// Each slot's value names (caption words, or the value's index).
    values: Vec<Vec<String>>,
    n: usize,
    strict: usize,
    /// Per slot and wanted value: (items, items with every slot right).
    by_value: Vec<Vec<(usize, usize)>>,
    features: f64,
    per: Vec<usize>,
    letters: Option<f64>,
    /// True/false positives and false negatives of present attributes,
    /// counted where every slot is binary.
    binary: Option<[usize; 3]>,
}

impl Tally {
    pub(crate) fn new(kind: DatasetKind) -> Self {
        let slots = kind.slots();
        let names: Vec<&'static str> = slots.iter().map(|s| s.0).collect();
        let per = vec![0; names.len()];
        let binary = slots.len() > 1 && slots.iter().all(|s| s.1 == 2);
        let values = kind.slot_values();
        let by_value = values.iter().map(|v| vec![(0, 0); v.len()]).collect();
        Self {
            names,
            values,
            n: 0,
            strict: 0,
            by_value,
            features: 0.0,
            per,
            letters: None,
            binary: binary.then_some([0; 3]),
        }
    }

    /// Score one item: `got[k]` against `want[k]` per slot (None = not recognised).
    pub(crate) fn add(&mut self, want: &[usize], got: &[Option<usize>]) {
        let mut right = 0;
        for (k, w) in want.iter().enumerate() {
            let g = got.get(k).copied().flatten();
            if g == Some(*w) {
                self.per[k] += 1;
                right += 1;
            }
            if let Some(c) = &mut self.binary {
                match (*w == 1, g == Some(1)) {
                    (true, true) => c[0] += 1,
                    (false, true) => c[1] += 1,
                    (true, false) => c[2] += 1,
                    (false, false) => {}
                }
            }
        }
        let all_right = right == want.len();
        for (k, &w) in want.iter().enumerate() {
            if let Some(c) = self.by_value.get_mut(k).and_then(|s| s.get_mut(w)) {
                c.0 += 1;
                c.1 += all_right as usize;
            }
        }
        self.n += 1;
        self.strict += all_right as usize;
        self.features += right as f64 / want.len().max(1) as f64;
    }

    pub(crate) fn add_letters(&mut self, reference: &str, got: &str) {
        let (a, b): (Vec<char>, Vec<char>) = (reference.chars().collect(), got.chars().collect());
        let len = a.len().max(b.len()).max(1);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        *self.letters.get_or_insert(0.0) += same as f64 / len as f64;
    }

    pub(crate) fn finish(self) -> Coherence {
        let n = self.n.max(1) as f64;
        Coherence {
            strict: self.strict as f64 / n,
            features: self.features / n,
            per_slot: self
                .names
                .iter()
                .map(|s| s.to_string())
                .zip(self.per.iter().map(|&c| c as f64 / n))
                .collect(),
            strict_by_value: self
                .names
                .iter()
                .zip(self.values.iter().zip(&self.by_value))
                .flat_map(|(slot, (names, counts))| {
                    names
                        .iter()
                        .zip(counts)
                        .filter(|(_, c)| c.0 > 0)
                        .map(move |(v, c)| (format!("{slot}={v}"), c.1 as f64 / c.0 as f64))
                })
                .collect(),
            letters: self.letters.map(|l| l / n),
            attribute_f1: self
                .binary
                .map(|[tp, fp, fn_]| 2.0 * tp as f64 / (2 * tp + fp + fn_).max(1) as f64),
        }
    }
}

pub(crate) fn some(v: Vec<usize>) -> Vec<Option<usize>> {
    v.into_iter().map(Some).collect()
}
