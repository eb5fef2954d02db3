//! The benchmark's captions: their slots, the five levels' grammars,
//! classes as mixed-radix attribute values, caption parsing and the
//! train/test split of the indices.

use super::PER_LEVEL;

/// One part of a caption, with its possible values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    Size,
    Colour,
    Shape,
    Position,
    Background,
}

impl Slot {
    /// Lower-case name of the slot (`"size"`, `"colour"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Slot::Size => "size",
            Slot::Colour => "colour",
            Slot::Shape => "shape",
            Slot::Position => "position",
            Slot::Background => "background",
        }
    }

    /// The caption words of each value of the slot; a value's index in this
    /// list is what [`Level::attributes`] returns.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Slot::Size => &["big", "small"],
            Slot::Colour => &["red", "green", "yellow", "blue", "pink"],
            Slot::Shape => &["square", "ellipse", "heart"],
            Slot::Position => &[
                "at top left",
                "at top right",
                "at bottom left",
                "at bottom right",
            ],
            Slot::Background => &["on light", "on dark"],
        }
    }
}

/// A difficulty level of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    L1,
    L2,
    L3,
    L4,
    L5,
}

impl Level {
    pub const ALL: [Level; 5] = [Level::L1, Level::L2, Level::L3, Level::L4, Level::L5];

    /// 1 to 5.
    pub fn number(self) -> u8 {
        match self {
            Level::L1 => 1,
            Level::L2 => 2,
            Level::L3 => 3,
            Level::L4 => 4,
            Level::L5 => 5,
        }
    }

    /// The level numbered `n` (1 to 5).
    pub fn from_number(n: u8) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.number() == n)
    }

    /// The caption's slots, in word order.
    pub fn slots(self) -> &'static [Slot] {
        const ALL: [Slot; 5] = [
            Slot::Size,
            Slot::Colour,
            Slot::Shape,
            Slot::Position,
            Slot::Background,
        ];
        match self {
            Level::L1 => &[Slot::Shape],
            Level::L2 => &[Slot::Size, Slot::Shape],
            Level::L3 => &ALL[..3],
            Level::L4 => &ALL[..4],
            Level::L5 => &ALL,
        }
    }

    /// 3, 6, 30, 120, 240: the product of the slots' numbers of values.
    pub fn num_classes(self) -> usize {
        self.slots().iter().map(|s| s.values().len()).product()
    }

    /// The value index of each slot (in [`Level::slots`] order) of `class`.
    /// Classes are mixed-radix numbers whose most significant digit is the
    /// first slot's value, so e.g. on levels 1–3 the shape is `class % 3`.
    ///
    /// # Panics
    /// If `class >= self.num_classes()`.
    pub fn attributes(self, class: usize) -> Vec<usize> {
        assert!(
            class < self.num_classes(),
            "class {class} out of range for level {}",
            self.number()
        );
        let slots = self.slots();
        let mut out = vec![0; slots.len()];
        let mut c = class;
        for (j, slot) in slots.iter().enumerate().rev() {
            let radix = slot.values().len();
            out[j] = c % radix;
            c /= radix;
        }
        out
    }

    /// Inverse of [`Level::attributes`].
    ///
    /// # Panics
    /// If `attrs` does not have one in-range value per slot.
    pub fn class_of_attributes(self, attrs: &[usize]) -> usize {
        let slots = self.slots();
        assert_eq!(attrs.len(), slots.len(), "one value per slot expected");
        slots.iter().zip(attrs).fold(0, |c, (slot, &a)| {
            let radix = slot.values().len();
            assert!(a < radix, "value {a} out of range for slot {}", slot.name());
            c * radix + a
        })
    }

    /// The caption of `class`, e.g. `big blue square at bottom right on dark`.
    pub fn caption(self, class: usize) -> String {
        self.slots()
            .iter()
            .zip(self.attributes(class))
            .map(|(slot, a)| slot.values()[a])
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The value of each slot (in [`Level::slots`] order) named in `text`, or
    /// `None` where none or several of the slot's values occur. A value
    /// matches where its words occur as a contiguous phrase anywhere in the
    /// text (case-insensitive, words split on whitespace), so a garbled word
    /// in one slot does not hide the others and word order is not checked.
    pub fn parse_caption(self, text: &str) -> Vec<Option<usize>> {
        let words = lower_words(text);
        self.slots()
            .iter()
            .map(|&slot| {
                let mut found = None;
                for (v, phrase) in slot.values().iter().enumerate() {
                    if occurrences(&words, phrase) > 0 {
                        if found.is_some() {
                            return None;
                        }
                        found = Some(v);
                    }
                }
                found
            })
            .collect()
    }

    /// The class of `text` if every slot is recognised by
    /// [`Level::parse_caption`], each value occurs once, and the text has no
    /// other words. Word order is not checked.
    pub fn class_of_caption(self, text: &str) -> Option<usize> {
        let attrs = self
            .parse_caption(text)
            .into_iter()
            .collect::<Option<Vec<usize>>>()?;
        let words = lower_words(text);
        let mut used = 0;
        for (slot, &a) in self.slots().iter().zip(&attrs) {
            let phrase = slot.values()[a];
            if occurrences(&words, phrase) != 1 {
                return None;
            }
            used += phrase.split_whitespace().count();
        }
        // Values of different slots share no words, so their occurrences are
        // disjoint: equal counts mean there is no other word.
        (used == words.len()).then(|| self.class_of_attributes(&attrs))
    }

    /// `i % num_classes`: every class has `PER_LEVEL / num_classes` samples.
    pub fn class_of_index(self, i: usize) -> usize {
        i % self.num_classes()
    }

    /// Test copies per class: `ceil(per_class / 10)` (1000, 500, 100, 25, 13).
    fn test_per_class(self) -> usize {
        (PER_LEVEL / self.num_classes()).div_ceil(10)
    }

    /// Whether sample `i` is in the test split (see the module docs).
    ///
    /// # Panics
    /// If `i >= PER_LEVEL`.
    pub fn is_test(self, i: usize) -> bool {
        assert!(i < PER_LEVEL, "index {i} out of range 0..{PER_LEVEL}");
        i / self.num_classes() < self.test_per_class()
    }

    /// Indices of the training split, ascending.
    pub fn train_indices(self) -> Vec<usize> {
        (0..PER_LEVEL).filter(|&i| !self.is_test(i)).collect()
    }

    /// Indices of the test split, ascending.
    pub fn test_indices(self) -> Vec<usize> {
        (0..PER_LEVEL).filter(|&i| self.is_test(i)).collect()
    }
}

fn lower_words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_lowercase).collect()
}

/// How many times `phrase` occurs as a contiguous word sequence in `words`.
fn occurrences(words: &[String], phrase: &str) -> usize {
    let p: Vec<&str> = phrase.split_whitespace().collect();
    words
        .windows(p.len())
        .filter(|w| w.iter().zip(&p).all(|(a, b)| a == b))
        .count()
}
