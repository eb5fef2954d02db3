//! [`DatasetKind`]: every dataset the toolkit knows, its name, shape,
//! classes, attribute slots and where its files are.

use super::*;

/// What a `label` modality reads of an item (see [`DatasetKind::label_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSource {
    /// The item's class.
    Class,
    /// The value of one attribute slot (an index into [`DatasetKind::slots`]).
    Slot(usize),
}

/// The image–label datasets the toolkit knows. Adding one means adding a
/// variant here; everything else is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    Mnist,
    FashionMnist,
    /// The CdSprites+-style shapes benchmark at one level (see [`shapes`]).
    Shapes(Level),
    /// One to four MNIST digits in a 2×2 grid, captioned by the digit
    /// string (see [`crate::multimnist`]); built from the MNIST files.
    MultiMnist,
    /// CelebA faces captioned by a chosen set of binary attributes (see
    /// [`crate::celeba`]); the official files, supplied by the user.
    CelebA(AttrSet),
    /// Five image modalities `m0`…`m4` of one digit on five backgrounds
    /// (see [`crate::polymnist`]); rendered from the MNIST files, or the
    /// published files when a folder holds them.
    PolyMnist,
    /// MVAE's computer-vision experiment: the image, its greyscale, edges,
    /// a masked copy and a watermarked copy, and the caption (see
    /// [`crate::vision`]), computed from the images of a source dataset
    /// (shapes level 3 for `vision`, rendered in code).
    Vision(VisionSource),
    /// The user's own image–caption pairs (see [`crate::pairs`]): no class
    /// labels, each image with its own caption; read from a captions file
    /// named by `data.dir` / `--data-dir`.
    Pairs,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 13] = [
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::MultiMnist,
        DatasetKind::PolyMnist,
        DatasetKind::Shapes(Level::L1),
        DatasetKind::Shapes(Level::L2),
        DatasetKind::Shapes(Level::L3),
        DatasetKind::Shapes(Level::L4),
        DatasetKind::Shapes(Level::L5),
        DatasetKind::CelebA(AttrSet::DEFAULT),
        DatasetKind::Vision(VisionSource::Shapes(Level::L3)),
        DatasetKind::Vision(VisionSource::Mnist),
        DatasetKind::Vision(VisionSource::CelebA(AttrSet::DEFAULT)),
    ];

    /// The name used on the command line and in configs (CelebA with a
    /// chosen attribute set: `celeba:Young,Male,…`; the vision views of a
    /// source other than shapes level 3: `vision-mnist`, `vision-celeba`, …).
    pub fn name(self) -> String {
        match self {
            DatasetKind::CelebA(set) => set.dataset_name(),
            DatasetKind::Vision(source) => source.dataset_name(),
            k => k.base_name().into(),
        }
    }

    /// The name as a folder name (`:` and `,` become `-`).
    pub fn dir_name(self) -> String {
        self.name().replace([':', ','], "-")
    }

    /// The dataset's name without options: where its files live (the
    /// source's, for the vision views of a dataset with files).
    pub fn base_name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Shapes(Level::L1) => "shapes-l1",
            DatasetKind::Shapes(Level::L2) => "shapes-l2",
            DatasetKind::Shapes(Level::L3) => "shapes-l3",
            DatasetKind::Shapes(Level::L4) => "shapes-l4",
            DatasetKind::Shapes(Level::L5) => "shapes-l5",
            DatasetKind::MultiMnist => "multimnist",
            DatasetKind::PolyMnist => "polymnist",
            DatasetKind::CelebA(_) => "celeba",
            DatasetKind::Vision(source) if !source.kind().is_synthetic() => {
                source.kind().base_name()
            }
            DatasetKind::Vision(_) => "vision",
            DatasetKind::Pairs => "pairs",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        if let Some(set) = AttrSet::from_dataset_name(s) {
            return Ok(DatasetKind::CelebA(set?));
        }
        if let Some(source) = VisionSource::parse(s) {
            return Ok(DatasetKind::Vision(source?));
        }
        Self::ALL
            .into_iter()
            .chain([DatasetKind::Pairs])
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<String> = Self::ALL
                    .iter()
                    .chain(&[DatasetKind::Pairs])
                    .map(|k| k.name())
                    .collect();
                DataError::Invalid(format!(
                    "unknown dataset `{s}` (expected one of: {}, celeba19, celeba:ATTRIBUTE,…, or vision-DATASET for the vision views of another)",
                    names.join(", ")
                ))
            })
    }

    /// Rendered in code: nothing to locate or download.
    pub fn is_synthetic(self) -> bool {
        match self {
            DatasetKind::Shapes(_) => true,
            DatasetKind::Vision(source) => source.kind().is_synthetic(),
            DatasetKind::Mnist
            | DatasetKind::FashionMnist
            | DatasetKind::MultiMnist
            | DatasetKind::PolyMnist
            | DatasetKind::CelebA(_)
            | DatasetKind::Pairs => false,
        }
    }

    /// The dataset whose classes, captions and attribute slots this one
    /// uses: itself, or the source of the computed vision views.
    pub fn classes_of(self) -> DatasetKind {
        match self {
            DatasetKind::Vision(source) => source.kind(),
            k => k,
        }
    }

    /// Whether items carry class labels (every dataset but the user's own
    /// pairs): coherence, FID, probes and evaluation classifiers need them.
    pub fn is_labelled(self) -> bool {
        self != DatasetKind::Pairs
    }

    /// The names of the images each item holds, where there is more than
    /// one (PolyMNIST's `m0`…`m4`); empty for a dataset of one image per
    /// item. An image modality of a model reads the image of its name.
    pub fn image_views(self) -> &'static [&'static str] {
        match self {
            DatasetKind::PolyMnist => &polymnist::NAMES,
            DatasetKind::Vision(_) => &crate::vision::NAMES,
            DatasetKind::Mnist
            | DatasetKind::FashionMnist
            | DatasetKind::Shapes(_)
            | DatasetKind::MultiMnist
            | DatasetKind::CelebA(_)
            | DatasetKind::Pairs => &[],
        }
    }

    /// The attribute slots a class is made of, as (name, number of values).
    /// A plain labelled dataset has one slot, its class.
    pub fn slots(self) -> Vec<(&'static str, usize)> {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist | DatasetKind::PolyMnist => {
                vec![("class", self.num_classes())]
            }
            DatasetKind::Shapes(l) => l
                .slots()
                .iter()
                .map(|s| (s.name(), s.values().len()))
                .collect(),
            DatasetKind::MultiMnist => multimnist::SLOT_NAMES
                .iter()
                .map(|n| (*n, multimnist::EMPTY + 1))
                .collect(),
            DatasetKind::CelebA(set) => set.attributes().iter().map(|a| (a.slot, 2)).collect(),
            DatasetKind::Vision(source) => source.kind().slots(),
            DatasetKind::Pairs => Vec::new(),
        }
    }

    /// The names of each slot's values, in the order of
    /// [`DatasetKind::slots`]: the class names of MNIST and Fashion-MNIST,
    /// the caption words of shapes, `0`–`9` and `empty` for a MultiMNIST
    /// cell, `no`/`yes` for a CelebA attribute; none for pairs.
    ///
    /// `slot_values()[k].len() == slots()[k].1` for every slot `k`.
    pub fn slot_values(self) -> Vec<Vec<String>> {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist | DatasetKind::PolyMnist => {
                vec![self.class_names()]
            }
            DatasetKind::Shapes(l) => l
                .slots()
                .iter()
                .map(|s| s.values().iter().map(|v| v.to_string()).collect())
                .collect(),
            DatasetKind::MultiMnist => {
                let cell: Vec<String> = (0..multimnist::EMPTY)
                    .map(|d| d.to_string())
                    .chain(["empty".to_string()])
                    .collect();
                vec![cell; multimnist::SLOT_NAMES.len()]
            }
            DatasetKind::CelebA(set) => {
                vec![vec!["no".to_string(), "yes".to_string()]; set.attributes().len()]
            }
            DatasetKind::Vision(source) => source.kind().slot_values(),
            DatasetKind::Pairs => Vec::new(),
        }
    }

    /// What a `label` modality called `name` reads: the attribute slot of
    /// that name where the dataset's class is made of several (CelebA's
    /// `male`, shapes' `shape`), else the class.
    pub fn label_source(self, name: &str) -> LabelSource {
        let slots = self.slots();
        match slots.iter().position(|s| s.0 == name) {
            Some(k) if slots.len() > 1 => LabelSource::Slot(k),
            _ => LabelSource::Class,
        }
    }

    /// The value a label read from `source` has for an item of `class`.
    pub fn label_value(self, source: LabelSource, class: usize) -> usize {
        match source {
            LabelSource::Class => class,
            LabelSource::Slot(k) => self.attributes(class)[k],
        }
    }

    /// How many values a label read from `source` takes.
    pub fn label_count(self, source: LabelSource) -> usize {
        match source {
            LabelSource::Class => self.num_classes(),
            LabelSource::Slot(k) => self.slots()[k].1,
        }
    }

    /// The names of the values of a label read from `source`, in value
    /// order: the class names, or the slot's values (`no`/`yes` for a
    /// CelebA attribute).
    pub fn label_names(self, source: LabelSource) -> Vec<String> {
        match source {
            LabelSource::Class => self.class_names(),
            LabelSource::Slot(k) => self.slot_values().swap_remove(k),
        }
    }

    /// The value of each slot for `class` (see [`DatasetKind::slots`]).
    pub fn attributes(self, class: usize) -> Vec<usize> {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist | DatasetKind::PolyMnist => vec![class],
            DatasetKind::Shapes(l) => l.attributes(class),
            DatasetKind::MultiMnist => multimnist::attributes(class),
            DatasetKind::CelebA(set) => set.class_attributes(class),
            DatasetKind::Vision(source) => source.kind().attributes(class),
            DatasetKind::Pairs => Vec::new(),
        }
    }

    /// Image channels: 1 grey, 3 RGB (for pairs, the default of
    /// `data.channels`).
    pub fn channels(self) -> usize {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist | DatasetKind::MultiMnist => 1,
            DatasetKind::Shapes(_) => shapes::CHANNELS,
            DatasetKind::Vision(source) => source.kind().channels(),
            DatasetKind::PolyMnist => polymnist::CHANNELS,
            DatasetKind::CelebA(_) | DatasetKind::Pairs => celeba::CHANNELS,
        }
    }

    /// Human-readable class names in label order, as they appear in captions
    /// (for shapes: each class's caption).
    pub fn class_names(self) -> Vec<String> {
        self.static_class_names()
            .map(|n| n.iter().map(|s| s.to_string()).collect())
            .unwrap_or_else(|| match self {
                DatasetKind::Shapes(l) => (0..l.num_classes()).map(|c| l.caption(c)).collect(),
                DatasetKind::MultiMnist => (0..multimnist::NUM_CLASSES)
                    .map(multimnist::caption)
                    .collect(),
                DatasetKind::CelebA(set) => {
                    (0..set.num_classes()).map(|c| set.caption(c)).collect()
                }
                DatasetKind::Pairs => vec!["pair".into()],
                DatasetKind::Vision(source) => source.kind().class_names(),
                _ => Vec::new(),
            })
    }

    /// Class names of the labelled datasets (None for shapes).
    pub fn static_class_names(self) -> Option<&'static [&'static str]> {
        Some(match self {
            DatasetKind::Mnist | DatasetKind::PolyMnist => &[
                "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
            ],
            DatasetKind::FashionMnist => &[
                "t-shirt",
                "trouser",
                "pullover",
                "dress",
                "coat",
                "sandal",
                "shirt",
                "sneaker",
                "bag",
                "ankle boot",
            ],
            DatasetKind::Shapes(_)
            | DatasetKind::MultiMnist
            | DatasetKind::CelebA(_)
            | DatasetKind::Vision(_)
            | DatasetKind::Pairs => return None,
        })
    }

    pub fn num_classes(self) -> usize {
        match self {
            DatasetKind::Shapes(l) => l.num_classes(),
            DatasetKind::Vision(source) => source.kind().num_classes(),
            DatasetKind::MultiMnist => multimnist::NUM_CLASSES,
            DatasetKind::CelebA(set) => set.num_classes(),
            DatasetKind::Pairs => 1,
            _ => self.static_class_names().map_or(0, |n| n.len()),
        }
    }

    /// Image side length in pixels (for pairs, the default of
    /// `data.image_size`).
    pub fn image_size(self) -> (usize, usize) {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => (28, 28),
            DatasetKind::PolyMnist => (polymnist::SIDE, polymnist::SIDE),
            DatasetKind::Shapes(_) => (shapes::SIDE, shapes::SIDE),
            DatasetKind::Vision(source) => source.kind().image_size(),
            DatasetKind::MultiMnist => (multimnist::SIDE, multimnist::SIDE),
            DatasetKind::CelebA(_) | DatasetKind::Pairs => (celeba::SIDE, celeba::SIDE),
        }
    }

    /// Extra places where an OS package installs the files.
    pub(super) fn system_dirs(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist
            | DatasetKind::Shapes(_)
            | DatasetKind::MultiMnist
            | DatasetKind::PolyMnist
            | DatasetKind::CelebA(_)
            | DatasetKind::Pairs => &[],
            DatasetKind::FashionMnist => &["/usr/share/datasets/fashion-mnist"],
            DatasetKind::Vision(source) => source.kind().system_dirs(),
        }
    }

    pub(super) fn how_to_get(self) -> String {
        if let DatasetKind::Vision(source) = self {
            return source.kind().how_to_get();
        }
        if let DatasetKind::CelebA(_) = self {
            return celeba::HOW_TO_GET.into();
        }
        if self == DatasetKind::Pairs {
            return "Point `data.dir` or --data-dir at a captions file (CSV with `file,caption[,split]` columns, or JSON lines) or a folder holding captions.csv / captions.jsonl".into();
        }
        if self == DatasetKind::MultiMnist {
            return DatasetKind::Mnist.how_to_get()
                + " (multimnist is composed from the MNIST files)";
        }
        if self == DatasetKind::PolyMnist {
            return DatasetKind::Mnist.how_to_get()
                + " (polymnist is rendered from the MNIST files), or point --data-dir at the published PolyMNIST folder (train/m0 … test/m4)";
        }
        let mut s = format!(
            "Get it with `mmvae data fetch {}` or point --data-dir / {DATA_ENV} at a folder with the four IDX files",
            self.name()
        );
        if self == DatasetKind::FashionMnist {
            s.push_str(" (on Debian/Ubuntu: `apt-get install dataset-fashion-mnist`)");
        }
        s
    }
}

impl Serialize for DatasetKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for DatasetKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DatasetKind::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
