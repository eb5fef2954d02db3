//! Captions generated from class labels.
//!
//! Each class gets one caption per image, drawn from several templates
//! ("a handwritten seven", "a photo of a sneaker", ...) by a seeded hash of
//! the image index, so the same seed always gives the same captions. A second
//! set of templates is held out: they never appear in training and are used to
//! test whether the model generalises to new phrasings of known words.

use crate::dataset::DatasetKind;
use serde::{Deserialize, Serialize};

/// Which template family to draw captions from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptionSet {
    /// Templates seen in training.
    Train,
    /// Templates never seen in training (same words, new combinations).
    HeldOut,
}

/// `{a}` is the class's indefinite article, `{c}` its name.
fn templates(kind: DatasetKind, set: CaptionSet) -> &'static [&'static str] {
    match (kind, set) {
        // A shapes caption is its class name, word for word (the benchmark's
        // fixed grammar); there are no held-out phrasings.
        (DatasetKind::Shapes(_), CaptionSet::Train) => &["{c}"],
        (DatasetKind::Shapes(_), CaptionSet::HeldOut) => &[],
        // Computed views keep their source's captions.
        (DatasetKind::Vision(source), set) => templates(source.kind(), set),
        // The digit string itself.
        (DatasetKind::MultiMnist, CaptionSet::Train) => &["{c}"],
        (DatasetKind::MultiMnist, CaptionSet::HeldOut) => &[],
        // One fixed sentence per attribute set.
        (DatasetKind::CelebA(_), CaptionSet::Train) => &["{c}"],
        (DatasetKind::CelebA(_), CaptionSet::HeldOut) => &[],
        // Each item has its own caption (the data's, not drawn from here;
        // the class name is empty).
        (DatasetKind::Pairs, CaptionSet::Train) => &["{c}"],
        (DatasetKind::Pairs, CaptionSet::HeldOut) => &[],
        (DatasetKind::Mnist | DatasetKind::PolyMnist, CaptionSet::Train) => &[
            "{c}",
            "a handwritten {c}",
            "the digit {c}",
            "this is the digit {c}",
            "an image of the number {c}",
            "a picture of {a} {c}",
            "{a} {c} written by hand",
            "the number {c} in white ink",
        ],
        (DatasetKind::Mnist | DatasetKind::PolyMnist, CaptionSet::HeldOut) => &[
            "a picture of the digit {c}",
            "this is a handwritten {c}",
            "an image of the digit {c}",
        ],
        (DatasetKind::FashionMnist, CaptionSet::Train) => &[
            "{c}",
            "a photo of {a} {c}",
            "this is {a} {c}",
            "a picture of {a} {c}",
            "{a} {c} on a black background",
            "a grayscale image of {a} {c}",
            "a product photo showing {a} {c}",
        ],
        (DatasetKind::FashionMnist, CaptionSet::HeldOut) => &[
            "this is a photo of {a} {c}",
            "a grayscale picture of {a} {c}",
            "a picture showing {a} {c}",
        ],
    }
}

fn article(name: &str) -> &'static str {
    match name.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}

/// SplitMix64: a small, well-mixed hash for deterministic choices.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Turns class labels into captions and captions back into classes.
#[derive(Debug, Clone, Copy)]
pub struct Captioner {
    pub kind: DatasetKind,
    pub seed: u64,
}

impl Captioner {
    pub fn new(kind: DatasetKind, seed: u64) -> Self {
        // A dataset of computed views speaks of its source's classes.
        Self {
            kind: kind.classes_of(),
            seed,
        }
    }

    pub fn templates(&self, set: CaptionSet) -> &'static [&'static str] {
        templates(self.kind, set)
    }

    /// The class name as it appears in captions.
    fn name(&self, label: usize) -> String {
        match self.kind {
            DatasetKind::Shapes(l) => l.caption(label),
            DatasetKind::MultiMnist => crate::multimnist::caption(label),
            DatasetKind::CelebA(set) => set.caption(label),
            k => k
                .static_class_names()
                .map_or_else(String::new, |n| n[label].to_string()),
        }
    }

    /// Whether `set` has any templates (shapes have no held-out phrasings).
    pub fn has(&self, set: CaptionSet) -> bool {
        !templates(self.kind, set).is_empty()
    }

    /// The templates of `set`, or the training ones where `set` has none.
    fn usable(&self, set: CaptionSet) -> &'static [&'static str] {
        let set = if self.has(set) {
            set
        } else {
            CaptionSet::Train
        };
        templates(self.kind, set)
    }

    /// Render template `t` (modulo the number of templates) of `set` for
    /// class `label`; a set without templates falls back to the training set.
    pub fn render(&self, set: CaptionSet, t: usize, label: usize) -> String {
        let name = self.name(label);
        let all = self.usable(set);
        let tpl = all[t % all.len()];
        tpl.replace("{a}", article(&name)).replace("{c}", &name)
    }

    /// The one canonical caption of a class, where the dataset has one (shapes).
    pub fn reference(&self, label: usize) -> Option<String> {
        match self.kind {
            DatasetKind::Shapes(l) => Some(l.caption(label)),
            DatasetKind::Vision(source) => Self::new(source.kind(), self.seed).reference(label),
            DatasetKind::MultiMnist => Some(crate::multimnist::caption(label)),
            DatasetKind::CelebA(set) => Some(set.caption(label)),
            DatasetKind::Pairs => None,
            DatasetKind::Mnist | DatasetKind::FashionMnist | DatasetKind::PolyMnist => None,
        }
    }

    /// The caption of item `index` (with class `label`) under `set`; `stream`
    /// separates e.g. the train and test splits so they draw independently.
    /// A set without templates falls back to the training templates.
    pub fn caption(&self, set: CaptionSet, stream: u64, index: usize, label: usize) -> String {
        let n = self.usable(set).len() as u64;
        let h = splitmix64(
            self.seed ^ splitmix64(stream.wrapping_mul(0x1000_0000_01B3) ^ index as u64),
        );
        self.render(set, (h % n) as usize, label)
    }

    /// Every caption of every template in `set`, for building a vocabulary.
    pub fn all_captions(&self, set: CaptionSet) -> Vec<String> {
        let mut out = Vec::new();
        for label in 0..self.kind.num_classes() {
            for t in 0..templates(self.kind, set).len() {
                out.push(self.render(set, t, label));
            }
        }
        out
    }

    /// The value of each attribute slot a caption names (see
    /// [`DatasetKind::slots`]); `None` where a slot is missing or ambiguous.
    pub fn slots_of(&self, caption: &str) -> Vec<Option<usize>> {
        match self.kind {
            DatasetKind::Shapes(l) => l.parse_caption(caption),
            DatasetKind::Vision(source) => Self::new(source.kind(), self.seed).slots_of(caption),
            DatasetKind::MultiMnist => crate::multimnist::parse_caption(caption),
            DatasetKind::CelebA(set) => set.parse_caption(caption),
            DatasetKind::Pairs => Vec::new(),
            DatasetKind::Mnist | DatasetKind::FashionMnist | DatasetKind::PolyMnist => {
                vec![self.class_of(caption)]
            }
        }
    }

    /// The class a caption names: `Some(c)` if exactly one class name occurs
    /// in it as a whole word sequence, `None` if none or several do (shapes:
    /// the caption must be exactly a class's caption).
    pub fn class_of(&self, caption: &str) -> Option<usize> {
        if let DatasetKind::Shapes(l) = self.kind {
            return l.class_of_caption(caption);
        }
        if self.kind == DatasetKind::MultiMnist {
            return crate::multimnist::class_of_caption(caption);
        }
        if let DatasetKind::CelebA(set) = self.kind {
            return set.class_of_caption(caption);
        }
        let words: Vec<&str> = caption.split_whitespace().collect();
        let mut found: Option<usize> = None;
        for (c, name) in self
            .kind
            .static_class_names()
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let nw: Vec<&str> = name.split_whitespace().collect();
            if words.windows(nw.len()).any(|w| w == nw.as_slice()) {
                if found.is_some() {
                    return None;
                }
                found = Some(c);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn captions_are_deterministic_and_name_their_class() {
        for kind in DatasetKind::ALL {
            let c = Captioner::new(kind, 7);
            for set in [CaptionSet::Train, CaptionSet::HeldOut] {
                for i in 0..200 {
                    let label = i % kind.num_classes();
                    let a = c.caption(set, 0, i, label);
                    assert_eq!(a, c.caption(set, 0, i, label));
                    assert_eq!(c.class_of(&a), Some(label), "{a}");
                }
            }
        }
    }

    #[test]
    fn seed_changes_captions_and_all_templates_are_used() {
        let a = Captioner::new(DatasetKind::Mnist, 1);
        let b = Captioner::new(DatasetKind::Mnist, 2);
        let ca: Vec<_> = (0..100)
            .map(|i| a.caption(CaptionSet::Train, 0, i, 3))
            .collect();
        let cb: Vec<_> = (0..100)
            .map(|i| b.caption(CaptionSet::Train, 0, i, 3))
            .collect();
        assert_ne!(ca, cb);
        let distinct: HashSet<_> = ca.iter().collect();
        assert_eq!(distinct.len(), a.templates(CaptionSet::Train).len());
    }

    #[test]
    fn held_out_templates_are_new_sentences_over_known_words() {
        for kind in DatasetKind::ALL {
            let c = Captioner::new(kind, 0);
            let train: HashSet<String> = c.all_captions(CaptionSet::Train).into_iter().collect();
            let words: HashSet<String> = train
                .iter()
                .flat_map(|s| s.split_whitespace().map(String::from))
                .collect();
            for h in c.all_captions(CaptionSet::HeldOut) {
                assert!(
                    !train.contains(&h),
                    "held-out caption `{h}` appears in training"
                );
                for w in h.split_whitespace() {
                    assert!(
                        words.contains(w),
                        "held-out word `{w}` never seen in training"
                    );
                }
            }
        }
    }

    #[test]
    fn class_of_handles_ambiguity_and_multiword_names() {
        let c = Captioner::new(DatasetKind::FashionMnist, 0);
        assert_eq!(c.class_of("an ankle boot"), Some(9));
        assert_eq!(c.class_of("a t-shirt"), Some(0));
        assert_eq!(c.class_of("a shirt"), Some(6));
        assert_eq!(c.class_of("a shirt and a bag"), None);
        assert_eq!(c.class_of("a photo of a"), None);
        assert_eq!(
            c.render(CaptionSet::Train, 1, 9),
            "a photo of an ankle boot"
        );
        let m = Captioner::new(DatasetKind::Mnist, 0);
        assert_eq!(m.render(CaptionSet::Train, 5, 8), "a picture of an eight");
    }

    #[test]
    fn shapes_captions_are_the_class_caption_and_parse_per_slot() {
        use crate::shapes::Level;
        let c = Captioner::new(DatasetKind::Shapes(Level::L3), 0);
        assert!(!c.has(CaptionSet::HeldOut));
        for label in 0..30 {
            let cap = c.caption(CaptionSet::Train, 3, 17, label);
            assert_eq!(cap, Level::L3.caption(label));
            // No held-out phrasings: the held-out set falls back to training.
            assert_eq!(c.caption(CaptionSet::HeldOut, 3, 17, label), cap);
            assert_eq!(c.class_of(&cap), Some(label));
            assert_eq!(c.reference(label), Some(cap.clone()));
            let want: Vec<Option<usize>> =
                Level::L3.attributes(label).into_iter().map(Some).collect();
            assert_eq!(c.slots_of(&cap), want);
        }
        assert_eq!(c.all_captions(CaptionSet::Train).len(), 30);
        assert_eq!(c.slots_of("big red blob"), vec![Some(0), Some(0), None]);
        // Plain datasets have one slot, the class.
        let m = Captioner::new(DatasetKind::Mnist, 0);
        assert_eq!(m.slots_of("a handwritten seven"), vec![Some(7)]);
        assert_eq!(m.reference(7), None);
    }
}
