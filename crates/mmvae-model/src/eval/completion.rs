//! Coherence of single inputs by how much of each item's object the
//! masked square hides, on a vision set drawn on black: how far the image
//! completed from the masked copy falls short of the reconstruction where
//! the square leaves the shape in view, and where it hides it.

use mmvae_data::vision::Hidden;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The name of the masked copy, whose rows [`ByCover::table`] prints.
const MASKED: &str = "masked";
/// The name of the source image, whose reconstruction it prints beside them.
const SOURCE: &str = "image";

/// The coherence matrix's single-input cells, per band of
/// [`Hidden`], in the order of [`Hidden::ALL`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ByCover {
    pub bands: Vec<CoverBand>,
}

/// One band's items and cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverBand {
    /// How much of the object the square hides ([`Hidden::name`]).
    pub hidden: String,
    /// Test items in the band.
    pub items: usize,
    /// Input → output → fraction right (all attributes).
    pub cells: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Right answers and items scored, per band, input and output.
#[derive(Debug, Clone)]
pub(crate) struct CoverTally {
    /// `[band][input][output]`: (right, scored).
    counts: Vec<Vec<Vec<(usize, usize)>>>,
    items: [usize; Hidden::ALL.len()],
}

impl CoverTally {
    /// A tally of `modalities` inputs and outputs.
    pub fn new(modalities: usize) -> Self {
        Self {
            counts: vec![vec![vec![(0, 0); modalities]; modalities]; Hidden::ALL.len()],
            items: [0; Hidden::ALL.len()],
        }
    }

    /// Count the items of one batch into their bands (`None`: no object).
    pub fn add_items(&mut self, bands: &[Option<Hidden>]) {
        for b in bands.iter().flatten() {
            self.items[*b as usize] += 1;
        }
    }

    /// One item of `band` generated `output` from `input` alone, right or
    /// not.
    pub fn add(&mut self, band: Hidden, input: usize, output: usize, right: bool) {
        let c = &mut self.counts[band as usize][input][output];
        c.0 += usize::from(right);
        c.1 += 1;
    }

    /// The tally as fractions, modalities named by `names`; outputs never
    /// scored are left out.
    pub fn finish(&self, names: &[String]) -> ByCover {
        let bands = Hidden::ALL
            .iter()
            .map(|&h| {
                let per = &self.counts[h as usize];
                let cells = names
                    .iter()
                    .zip(per)
                    .map(|(input, row)| {
                        let outputs = names
                            .iter()
                            .zip(row)
                            .filter(|(_, c)| c.1 > 0)
                            .map(|(o, c)| (o.clone(), c.0 as f64 / c.1 as f64))
                            .collect();
                        (input.clone(), outputs)
                    })
                    .filter(|(_, outputs): &(String, BTreeMap<String, f64>)| !outputs.is_empty())
                    .collect();
                CoverBand {
                    hidden: h.name().to_string(),
                    items: self.items[h as usize],
                    cells,
                }
            })
            .collect();
        ByCover { bands }
    }
}

impl ByCover {
    /// One line per band: its share of the items, the source image's
    /// reconstruction and each output generated from the masked copy.
    pub fn table(&self) -> String {
        let total: usize = self.bands.iter().map(|b| b.items).sum();
        let outputs: BTreeSet<&String> = self
            .bands
            .iter()
            .filter_map(|b| b.cells.get(MASKED))
            .flat_map(|r| r.keys())
            .collect();
        if outputs.is_empty() {
            return String::new();
        }
        let mut s = format!(
            "  by how much of the shape the masked square hides:\n  {:<16}{:>8}{:>24}",
            "hides", "items", "image -> image"
        );
        for o in &outputs {
            s.push_str(&format!("{:>20}", format!("{MASKED} -> {o}")));
        }
        s.push('\n');
        let cell = |b: &CoverBand, i: &str, o: &str| match b.cells.get(i).and_then(|r| r.get(o)) {
            Some(v) => format!("{:.2}%", 100.0 * v),
            None => "–".into(),
        };
        for b in &self.bands {
            let share = 100.0 * b.items as f64 / total.max(1) as f64;
            s.push_str(&format!(
                "  {:<16}{:>7.2}%{:>24}",
                b.hidden,
                share,
                cell(b, SOURCE, SOURCE)
            ));
            for o in &outputs {
                s.push_str(&format!("{:>20}", cell(b, MASKED, o)));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_scores_each_band_on_its_own_items() {
        let names: Vec<String> = ["image", "masked", "text"].map(String::from).into();
        let mut t = CoverTally::new(3);
        t.add_items(&[Some(Hidden::Apart), Some(Hidden::All), None]);
        t.add_items(&[Some(Hidden::Apart)]);
        // Nothing hidden, apart from the square: the masked copy completes
        // both items, the image reconstructs one of two.
        for right in [true, false] {
            t.add(Hidden::Apart, 0, 0, right);
            t.add(Hidden::Apart, 1, 0, true);
        }
        // All hidden: completion fails, the caption guesses right.
        t.add(Hidden::All, 0, 0, true);
        t.add(Hidden::All, 1, 0, false);
        t.add(Hidden::All, 1, 2, true);
        let c = t.finish(&names);
        let band = |h: Hidden| &c.bands[h as usize];
        assert_eq!(c.bands.len(), 5);
        assert_eq!(band(Hidden::Apart).items, 2);
        assert_eq!(band(Hidden::All).items, 1);
        assert_eq!(band(Hidden::UnderHalf).items, 0);
        assert!(band(Hidden::UnderHalf).cells.is_empty());
        assert_eq!(band(Hidden::Apart).cells["image"]["image"], 0.5);
        assert_eq!(band(Hidden::Apart).cells["masked"]["image"], 1.0);
        assert_eq!(band(Hidden::All).cells["masked"]["image"], 0.0);
        assert_eq!(band(Hidden::All).cells["masked"]["text"], 1.0);
        assert!(!band(Hidden::All).cells.contains_key("text"));
        let table = c.table();
        assert!(table.contains("masked -> image"), "{table}");
        let none = table.lines().find(|l| l.contains("none, apart"));
        let none: Vec<&str> = none.unwrap().split_whitespace().collect();
        assert_eq!(none, ["none,", "apart", "66.67%", "50.00%", "100.00%", "–"]);
        let under = table.lines().find(|l| l.contains("under half")).unwrap();
        assert!(under.contains("0.00%") && under.contains('–'), "{table}");
    }

    #[test]
    fn without_a_masked_input_there_is_no_table() {
        let mut t = CoverTally::new(1);
        t.add(Hidden::Apart, 0, 0, true);
        assert_eq!(t.finish(&["image".to_string()]).table(), "");
    }
}
