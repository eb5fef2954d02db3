//! The forty official CelebA attributes, how a caption says each, and the
//! attribute sets ([`AttrSet`]) a dataset is built from: classes as bit
//! masks, captions and their parsing.

use super::ATTR_FILE;
use crate::error::{DataError, Result};

/// Where in the caption an attribute is said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clause {
    /// An adjective before the noun (`a young …`), or for `Male` the noun.
    Subject,
    /// `who is …`
    Is,
    /// `with …`
    With,
    /// `wearing …`
    Wearing,
    /// `in a … photo`
    Photo,
}

/// One of the forty official attributes and how a caption says it.
#[derive(Debug, Clone, Copy)]
pub struct Attribute {
    /// The official column name in `list_attr_celeba.txt`.
    pub name: &'static str,
    /// The slot name used in reports (lower case).
    pub slot: &'static str,
    clause: Clause,
    /// The words the caption uses for it.
    pub(super) phrase: &'static str,
    /// The word of `phrase` no other attribute's phrase (nor the caption's
    /// fixed words) uses, so a caption parses back in any word order.
    pub(super) key: &'static str,
}

const fn attr(
    name: &'static str,
    slot: &'static str,
    clause: Clause,
    phrase: &'static str,
    key: &'static str,
) -> Attribute {
    Attribute {
        name,
        slot,
        clause,
        phrase,
        key,
    }
}

/// All forty attributes. The first nine are the default set, in the bit
/// order of its classes; within a clause, phrases follow this order.
pub const TABLE: [Attribute; 40] = {
    use Clause::*;
    [
        attr("Young", "young", Subject, "young", "young"),
        attr("Male", "male", Subject, "man", "man"),
        attr("Smiling", "smiling", Is, "smiling", "smiling"),
        attr(
            "Eyeglasses",
            "eyeglasses",
            Wearing,
            "eyeglasses",
            "eyeglasses",
        ),
        attr("Black_Hair", "black_hair", With, "black hair", "black"),
        attr("Blond_Hair", "blond_hair", With, "blond hair", "blond"),
        attr("Bald", "bald", Is, "bald", "bald"),
        attr("Mustache", "mustache", With, "a mustache", "mustache"),
        attr(
            "Wearing_Lipstick",
            "lipstick",
            Wearing,
            "lipstick",
            "lipstick",
        ),
        attr(
            "Attractive",
            "attractive",
            Subject,
            "attractive",
            "attractive",
        ),
        attr("Chubby", "chubby", Subject, "chubby", "chubby"),
        attr("No_Beard", "no_beard", Is, "clean shaven", "shaven"),
        attr("Pale_Skin", "pale_skin", With, "pale skin", "pale"),
        attr(
            "Mouth_Slightly_Open",
            "mouth_open",
            With,
            "a slightly open mouth",
            "open",
        ),
        attr("5_o_Clock_Shadow", "stubble", With, "stubble", "stubble"),
        attr("Goatee", "goatee", With, "a goatee", "goatee"),
        attr("Sideburns", "sideburns", With, "sideburns", "sideburns"),
        attr("Brown_Hair", "brown_hair", With, "brown hair", "brown"),
        attr("Gray_Hair", "gray_hair", With, "gray hair", "gray"),
        attr(
            "Straight_Hair",
            "straight_hair",
            With,
            "straight hair",
            "straight",
        ),
        attr("Wavy_Hair", "wavy_hair", With, "wavy hair", "wavy"),
        attr("Bangs", "bangs", With, "bangs", "bangs"),
        attr(
            "Receding_Hairline",
            "receding_hairline",
            With,
            "a receding hairline",
            "receding",
        ),
        attr(
            "Arched_Eyebrows",
            "arched_eyebrows",
            With,
            "arched eyebrows",
            "arched",
        ),
        attr(
            "Bushy_Eyebrows",
            "bushy_eyebrows",
            With,
            "bushy eyebrows",
            "bushy",
        ),
        attr("Narrow_Eyes", "narrow_eyes", With, "narrow eyes", "narrow"),
        attr(
            "Bags_Under_Eyes",
            "eye_bags",
            With,
            "bags under the eyes",
            "bags",
        ),
        attr("Big_Nose", "big_nose", With, "a big nose", "big"),
        attr(
            "Pointy_Nose",
            "pointy_nose",
            With,
            "a pointy nose",
            "pointy",
        ),
        attr("Big_Lips", "big_lips", With, "full lips", "full"),
        attr(
            "High_Cheekbones",
            "high_cheekbones",
            With,
            "high cheekbones",
            "high",
        ),
        attr("Rosy_Cheeks", "rosy_cheeks", With, "rosy cheeks", "rosy"),
        attr("Oval_Face", "oval_face", With, "an oval face", "oval"),
        attr(
            "Double_Chin",
            "double_chin",
            With,
            "a double chin",
            "double",
        ),
        attr(
            "Heavy_Makeup",
            "heavy_makeup",
            Wearing,
            "heavy makeup",
            "makeup",
        ),
        attr(
            "Wearing_Earrings",
            "earrings",
            Wearing,
            "earrings",
            "earrings",
        ),
        attr("Wearing_Hat", "hat", Wearing, "a hat", "hat"),
        attr(
            "Wearing_Necklace",
            "necklace",
            Wearing,
            "a necklace",
            "necklace",
        ),
        attr(
            "Wearing_Necktie",
            "necktie",
            Wearing,
            "a necktie",
            "necktie",
        ),
        attr("Blurry", "blurry", Photo, "blurry", "blurry"),
    ]
};

/// Index of `Male` in [`TABLE`]: its absence is said too (`woman`).
pub(super) const MALE: usize = 1;

/// The attribute set of the default CelebA dataset (`celeba`), in bit order.
pub const DEFAULT_ATTRIBUTES: [&str; 9] = [
    "Young",
    "Male",
    "Smiling",
    "Eyeglasses",
    "Black_Hair",
    "Blond_Hair",
    "Bald",
    "Mustache",
    "Wearing_Lipstick",
];

/// The eighteen attributes of `celeba19`, the CelebA-19 experiment of the
/// MVAE paper (the image and one expert per attribute; the attribute list of
/// IcGAN, which MVAE follows).
pub const CELEBA19_ATTRIBUTES: [&str; 18] = [
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Eyeglasses",
    "Gray_Hair",
    "Heavy_Makeup",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Pale_Skin",
    "Receding_Hairline",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Hat",
];

/// A chosen set of the forty attributes (a bit mask over [`TABLE`]). A
/// class of the dataset is the subset of them present in an image: bit `i`
/// of a class is the `i`-th chosen attribute in table order, so a set of
/// `n` attributes has `2^n` classes and `n` binary slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttrSet(u64);

impl AttrSet {
    /// The default nine (see [`DEFAULT_ATTRIBUTES`]).
    pub const DEFAULT: AttrSet = AttrSet((1 << 9) - 1);
    /// At most this many attributes (2^18 classes).
    pub const MAX: usize = 18;

    /// The eighteen attributes of `celeba19` (see [`CELEBA19_ATTRIBUTES`];
    /// a test checks the mask against the names).
    pub const CELEBA19: AttrSet = AttrSet(0x14_017e_30fe);

    /// A comma-separated list of official attribute names (any order, case
    /// ignored), e.g. `Young,Male,Smiling,Bangs`.
    pub fn parse(list: &str) -> Result<AttrSet> {
        let mut mask = 0u64;
        for raw in list.split(',') {
            let name = raw.trim();
            let i = TABLE
                .iter()
                .position(|a| a.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    let names: Vec<&str> = TABLE.iter().map(|a| a.name).collect();
                    DataError::Invalid(format!(
                        "unknown CelebA attribute `{name}` (expected a column of {ATTR_FILE}: {})",
                        names.join(", ")
                    ))
                })?;
            if mask & (1 << i) != 0 {
                return Err(DataError::Invalid(format!(
                    "CelebA attribute `{}` is listed twice",
                    TABLE[i].name
                )));
            }
            mask |= 1 << i;
        }
        let set = AttrSet(mask);
        if set.len() > Self::MAX {
            return Err(DataError::Invalid(format!(
                "{} CelebA attributes chosen, at most {} (a class is a set of them)",
                set.len(),
                Self::MAX
            )));
        }
        Ok(set)
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The chosen attributes' indices in [`TABLE`], in bit order.
    pub fn indices(self) -> Vec<usize> {
        (0..TABLE.len())
            .filter(|&i| self.0 & (1 << i) != 0)
            .collect()
    }

    /// The chosen attributes, in bit order.
    pub fn attributes(self) -> Vec<&'static Attribute> {
        self.indices().into_iter().map(|i| &TABLE[i]).collect()
    }

    /// `celeba` for the default set, `celeba19` for the eighteen of
    /// CelebA-19, else `celeba:` and the official names in bit order,
    /// comma-separated.
    pub fn dataset_name(self) -> String {
        if self == Self::DEFAULT {
            "celeba".into()
        } else if self == Self::CELEBA19 {
            "celeba19".into()
        } else {
            let names: Vec<&str> = self.attributes().iter().map(|a| a.name).collect();
            format!("celeba:{}", names.join(","))
        }
    }

    /// The set a dataset name of [`AttrSet::dataset_name`]'s form names
    /// (`None` for a name that is not CelebA's).
    pub fn from_dataset_name(name: &str) -> Option<Result<Self>> {
        match name {
            "celeba" => Some(Ok(Self::DEFAULT)),
            "celeba19" => Some(Ok(Self::CELEBA19)),
            _ => name.strip_prefix("celeba:").map(Self::parse),
        }
    }

    pub fn num_classes(self) -> usize {
        1 << self.len()
    }

    /// The value (0 or 1) of each chosen attribute of `class`, in bit order.
    pub fn class_attributes(self, class: usize) -> Vec<usize> {
        (0..self.len()).map(|i| (class >> i) & 1).collect()
    }

    /// The class of a mask over [`TABLE`] (attributes outside the set are
    /// ignored).
    /// Runs once per image on load, so it walks the set's bits without
    /// allocating.
    pub fn class_of_mask(self, mask: u64) -> u32 {
        let (mut rest, mut class, mut bit) = (self.0, 0u32, 0);
        while rest != 0 {
            let t = rest.trailing_zeros();
            if mask & (1 << t) != 0 {
                class |= 1 << bit;
            }
            rest &= rest - 1;
            bit += 1;
        }
        class
    }

    /// The class whose attributes are `attrs` (values other than 0 count as 1).
    pub fn class_of_attributes(self, attrs: &[usize]) -> usize {
        attrs
            .iter()
            .enumerate()
            .filter(|(_, &a)| a != 0)
            .fold(0, |c, (i, _)| c | (1 << i))
    }

    /// The caption of `class`: `a`, the adjectives, `man`/`woman`, then the
    /// `who is …`, `with …` and `wearing …` clauses and `in a blurry photo`,
    /// naming only the attributes present, each clause's phrases in table
    /// order joined by `and`.
    pub fn caption(self, class: usize) -> String {
        let on: Vec<usize> = self
            .indices()
            .into_iter()
            .enumerate()
            .filter(|(bit, _)| (class >> bit) & 1 == 1)
            .map(|(_, t)| t)
            .collect();
        // Male is the noun, said below whether present or not.
        let phrases = |c: Clause| -> Vec<&'static str> {
            on.iter()
                .filter(|&&t| t != MALE && TABLE[t].clause == c)
                .map(|&t| TABLE[t].phrase)
                .collect()
        };
        let mut subject = phrases(Clause::Subject);
        subject.push(if on.contains(&MALE) { "man" } else { "woman" });
        let subject = subject.join(" ");
        let article = if subject.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        let mut s = format!("{article} {subject}");
        let mut clauses = Vec::new();
        for (c, lead) in [
            (Clause::Is, "who is"),
            (Clause::With, "with"),
            (Clause::Wearing, "wearing"),
        ] {
            let p = phrases(c);
            if !p.is_empty() {
                clauses.push(format!("{lead} {}", p.join(" and ")));
            }
        }
        if !clauses.is_empty() {
            s.push(' ');
            s.push_str(&clauses.join(", "));
        }
        if let Some(p) = phrases(Clause::Photo).first() {
            s.push_str(&format!(", in a {p} photo"));
        }
        s
    }

    /// Each chosen attribute's value as a caption names it: present when
    /// its key word occurs. `Male` is `None` unless exactly one of `man` /
    /// `woman` occurs. Word order does not matter, so a set of words parses
    /// as well as a sentence.
    pub fn parse_caption(self, text: &str) -> Vec<Option<usize>> {
        let words = crate::tokenizer::words(text);
        let has = |w: &str| words.iter().any(|x| x == w);
        self.indices()
            .into_iter()
            .map(|t| {
                if t == MALE {
                    match (has("man"), has("woman")) {
                        (true, false) => Some(1),
                        (false, true) => Some(0),
                        _ => None,
                    }
                } else {
                    Some(usize::from(has(TABLE[t].key)))
                }
            })
            .collect()
    }

    /// The class a caption names when every attribute parses and the
    /// caption uses exactly the words of that class's caption (in any order).
    pub fn class_of_caption(self, text: &str) -> Option<usize> {
        let attrs = self
            .parse_caption(text)
            .into_iter()
            .collect::<Option<Vec<usize>>>()?;
        let class = self.class_of_attributes(&attrs);
        let set = |t: &str| {
            crate::tokenizer::words(t)
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>()
        };
        (set(text) == set(&self.caption(class))).then_some(class)
    }
}
