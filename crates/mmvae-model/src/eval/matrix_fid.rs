//! Fréchet distances per generated image modality, beside the coherence
//! matrix: for every scored input subset and every image output, the
//! distance between the images generated for the test items and the test
//! items' own images of that modality, in the penultimate features of the
//! classifier that reads the modality (as the MMVAE+ and MoPoE papers
//! report generation quality per modality and by number of inputs), and
//! the same for the images of prior samples.
//!
//! These are in-repo classifier features (128 wide), not Inception
//! features: they compare models on one dataset, not with published FIDs.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::eval::fid::{frechet_distance, FeatureSums};
use crate::objective::Subset;

/// Fréchet distances of every (inputs → image output) pair and of prior
/// samples, lower is better.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModalityFid {
    /// The feature space, in words.
    pub features: String,
    /// Test items (and prior samples) per distance.
    pub items: usize,
    /// `inputs` (names joined by `+`) → output → distance; an output inside
    /// its subset is its reconstruction.
    pub cells: BTreeMap<String, BTreeMap<String, f64>>,
    /// Output → number of inputs → the mean over the subsets of that size
    /// without the output.
    pub by_output: BTreeMap<String, BTreeMap<usize, f64>>,
    /// Number of inputs → the mean over the subsets of that size and the
    /// image outputs outside them (as the coherence's `by_inputs`).
    pub by_inputs: BTreeMap<usize, f64>,
    /// Output → the distance of the prior samples' images.
    pub prior: BTreeMap<String, f64>,
    /// The mean of `prior` over the outputs.
    pub prior_mean: f64,
}

/// Feature sums of the real, generated and prior images, per output.
pub(super) struct FidTally {
    dim: usize,
    /// Per output: the test items' own images.
    real: Vec<FeatureSums>,
    /// Per scored subset, per output.
    generated: Vec<Vec<FeatureSums>>,
    /// Per output: the prior samples' images.
    prior: Vec<FeatureSums>,
}

impl FidTally {
    /// For `subsets` scored subsets and `outputs` modalities, features of
    /// width `dim`.
    pub(super) fn new(subsets: usize, outputs: usize, dim: usize) -> Self {
        let row = || vec![FeatureSums::new(dim); outputs];
        Self {
            dim,
            real: row(),
            generated: (0..subsets).map(|_| row()).collect(),
            prior: row(),
        }
    }

    /// Features (`k × dim`, row after row) of output `o`'s test images.
    pub(super) fn add_real(&mut self, o: usize, rows: &[f32]) {
        self.real[o].add(rows);
    }

    /// Features of output `o` generated from subset number `si`.
    pub(super) fn add_generated(&mut self, si: usize, o: usize, rows: &[f32]) {
        self.generated[si][o].add(rows);
    }

    /// Features of output `o` generated from prior samples.
    pub(super) fn add_prior(&mut self, o: usize, rows: &[f32]) {
        self.prior[o].add(rows);
    }

    /// The distances, for outputs named `names` and the subsets `subsets`
    /// (named `subset_names`), with `features` described; `None` when no
    /// output had features (no image modality was read).
    pub(super) fn finish(
        &self,
        names: &[String],
        subsets: &[Subset],
        subset_names: &[String],
        features: &str,
    ) -> Option<ModalityFid> {
        let outputs: Vec<usize> = (0..self.real.len())
            .filter(|&o| self.real[o].len() > 1)
            .collect();
        if outputs.is_empty() {
            return None;
        }
        let real: Vec<_> = self.real.iter().map(FeatureSums::stats).collect();
        let fd = |o: usize, s: &FeatureSums| {
            (s.len() > 1).then(|| frechet_distance(&real[o], &s.stats()))
        };
        let mut out = ModalityFid {
            features: format!("{features} ({} wide)", self.dim),
            items: self.real[outputs[0]].len(),
            cells: BTreeMap::new(),
            by_output: BTreeMap::new(),
            by_inputs: BTreeMap::new(),
            prior: BTreeMap::new(),
            prior_mean: 0.0,
        };
        let mut per_output: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
        for (si, s) in subsets.iter().enumerate() {
            for &o in &outputs {
                let Some(d) = fd(o, &self.generated[si][o]) else {
                    continue;
                };
                out.cells
                    .entry(subset_names[si].clone())
                    .or_default()
                    .insert(names[o].clone(), d);
                if !s.contains(o) {
                    per_output.entry((o, s.len())).or_default().push(d);
                }
            }
        }
        let mut by_size: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for ((o, k), ds) in per_output {
            by_size.entry(k).or_default().extend(&ds);
            out.by_output
                .entry(names[o].clone())
                .or_default()
                .insert(k, mean(&ds));
        }
        out.by_inputs = by_size.into_iter().map(|(k, ds)| (k, mean(&ds))).collect();
        for &o in &outputs {
            if let Some(d) = fd(o, &self.prior[o]) {
                out.prior.insert(names[o].clone(), d);
            }
        }
        out.prior_mean = mean(&out.prior.values().copied().collect::<Vec<_>>());
        Some(out)
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

impl ModalityFid {
    /// The distances as text: the mean by number of inputs, then per output
    /// by number of inputs and of prior samples.
    pub fn table(&self) -> String {
        let mut s = format!("  FID per image modality ({}):\n", self.features);
        let ks: Vec<usize> = self.by_inputs.keys().copied().collect();
        s.push_str(&format!("  {:<14}", "generated"));
        for k in &ks {
            s.push_str(&format!("{:>10}", format!("given {k}")));
        }
        s.push_str(&format!("{:>10}\n", "prior"));
        let mut row = |name: &str, by: &BTreeMap<usize, f64>, prior: Option<f64>| {
            s.push_str(&format!("  {name:<14}"));
            for k in &ks {
                s.push_str(&format!("{:>10.2}", by.get(k).copied().unwrap_or(f64::NAN)));
            }
            s.push_str(&format!("{:>10.2}\n", prior.unwrap_or(f64::NAN)));
        };
        for (name, by) in &self.by_output {
            row(name, by, self.prior.get(name).copied());
        }
        row("mean", &self.by_inputs, Some(self.prior_mean));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of width 2 around `centre`, spread ±1 in each feature.
    fn cloud(centre: f32, n: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| {
                let a = if i % 2 == 0 { 1.0 } else { -1.0 };
                let b = if (i / 2) % 2 == 0 { 1.0 } else { -1.0 };
                [centre + a, centre + b]
            })
            .collect()
    }

    #[test]
    fn distances_average_by_inputs_outside_the_subset_and_per_output() {
        // Two modalities, the three subsets {a}, {b}, {a, b}.
        let subsets = vec![Subset::single(0), Subset::single(1), Subset::full(2)];
        let snames: Vec<String> = ["a", "b", "a+b"].map(String::from).to_vec();
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut t = FidTally::new(3, 2, 2);
        // Reals at 0; each generated set shifted by `d` in both features, so
        // its distance is 2·d² (equal covariances).
        for o in 0..2 {
            t.add_real(o, &cloud(0.0, 40));
        }
        let shift = [[0.0, 1.0], [2.0, 0.5], [0.25, 0.0]]; // [subset][output]
        for (si, row) in shift.iter().enumerate() {
            for (o, &d) in row.iter().enumerate() {
                // In two batches, as the evaluation adds them.
                let rows = cloud(d, 40);
                t.add_generated(si, o, &rows[..40]);
                t.add_generated(si, o, &rows[40..]);
            }
        }
        t.add_prior(0, &cloud(3.0, 40));
        t.add_prior(1, &cloud(0.0, 40));
        let f = t
            .finish(&names, &subsets, &snames, "test features")
            .unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert_eq!(f.items, 40);
        assert!(f.features.contains("test features (2 wide)"));
        assert!(close(f.cells["a"]["a"], 0.0), "its own reconstruction");
        assert!(close(f.cells["a"]["b"], 2.0));
        assert!(close(f.cells["b"]["a"], 8.0));
        assert!(close(f.cells["a+b"]["a"], 0.125));
        // Given 1: a→b (2) and b→a (8); given 2: no output lies outside.
        assert!(close(f.by_inputs[&1], 5.0));
        assert!(!f.by_inputs.contains_key(&2));
        assert!(close(f.by_output["a"][&1], 8.0) && close(f.by_output["b"][&1], 2.0));
        assert!(close(f.prior["a"], 18.0) && close(f.prior["b"], 0.0));
        assert!(close(f.prior_mean, 9.0));
        let table = f.table();
        assert!(
            table.contains("given 1") && table.contains("18.00"),
            "{table}"
        );
    }

    #[test]
    fn no_image_output_gives_no_distances() {
        let t = FidTally::new(1, 2, 4);
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        assert!(t
            .finish(&names, &[Subset::full(2)], &["a+b".into()], "f")
            .is_none());
    }
}
