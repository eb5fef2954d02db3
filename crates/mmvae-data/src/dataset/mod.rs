//! The datasets: MNIST and Fashion-MNIST (where the files are looked for,
//! loading a split into memory as bytes) and the synthetic shapes levels
//! (rendered in code).

use crate::celeba::{self, AttrSet};
use crate::error::{DataError, Result};
use crate::idx;
use crate::multimnist;
use crate::polymnist;
use crate::shapes::{self, Level};
use crate::vision::VisionSource;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod kind;

pub use kind::{DatasetKind, LabelSource};

/// `0..len` in a seeded pseudo-random order. Subsets taken from it mix the
/// classes whatever order a split stores its items in (the shapes splits
/// cycle through the classes, so strided subsets would hold few of them).
pub fn shuffled(len: usize, seed: u64) -> Vec<usize> {
    let key = crate::captions::splitmix64(seed ^ 0x5EED_5EED);
    let mut v: Vec<usize> = (0..len).collect();
    v.sort_by_key(|&i| crate::captions::splitmix64(key ^ i as u64));
    v
}

/// The seed the shapes levels are rendered with: fixed, so that every model
/// and evaluation classifier of a level sees the same benchmark.
pub const SHAPES_SEED: u64 = 0;

/// Environment variable naming a data directory (a dataset folder, or a folder
/// holding `mnist/` and `fashion-mnist/`).
pub const DATA_ENV: &str = "MMVAE_DATA";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// The four file stems of an IDX dataset folder.
pub const FILE_STEMS: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Find `stem` or `stem.gz` in `dir`.
fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(format!("{stem}.gz")), dir.join(stem)]
        .into_iter()
        .find(|p| p.is_file())
}

/// The parts of `kind`'s folder: each name and whether `dir` has it.
fn parts(kind: DatasetKind, dir: &Path) -> Vec<(String, bool)> {
    if let DatasetKind::CelebA(_) = kind {
        return [celeba::ATTR_FILE, celeba::PARTITION_FILE]
            .iter()
            .map(|f| (f.to_string(), dir.join(f).is_file()))
            .chain(std::iter::once((
                format!("{}/", celeba::IMAGE_DIR),
                dir.join(celeba::IMAGE_DIR).is_dir(),
            )))
            .collect();
    }
    FILE_STEMS
        .iter()
        .map(|s| (format!("{s}[.gz]"), find_file(dir, s).is_some()))
        .collect()
}

/// Locate the folder holding `kind`'s files: `explicit`, then `$MMVAE_DATA`,
/// then system folders. Each root may be the dataset folder itself or hold it
/// as a sub-folder named after the dataset. A folder that has some but not all
/// of the files is an error naming the missing one.
pub fn locate(kind: DatasetKind, explicit: Option<&Path>) -> Result<PathBuf> {
    let env = std::env::var_os(DATA_ENV).map(PathBuf::from);
    locate_in(kind, explicit, env.as_deref())
}

/// As [`locate`], with the environment value passed in (for tests).
pub fn locate_in(
    kind: DatasetKind,
    explicit: Option<&Path>,
    env: Option<&Path>,
) -> Result<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(e) = explicit {
        roots.push(e.to_path_buf());
    } else {
        if let Some(e) = env {
            roots.push(e.to_path_buf());
        }
        roots.extend(kind.system_dirs().iter().map(PathBuf::from));
    }
    let mut looked = Vec::new();
    for root in roots {
        for cand in [root.join(kind.base_name()), root.clone()] {
            looked.push(cand.display().to_string());
            let parts = parts(kind, &cand);
            if cand.is_dir() && parts.iter().any(|p| p.1) {
                if let Some((missing, _)) = parts.iter().find(|p| !p.1) {
                    return Err(DataError::format(
                        &cand,
                        format!(
                            "partial {} folder: {missing} is missing. {}",
                            kind.name(),
                            kind.how_to_get()
                        ),
                    ));
                }
                return Ok(cand);
            }
        }
    }
    Err(DataError::NotFound {
        name: kind.name(),
        looked: if looked.is_empty() {
            "(nowhere)".into()
        } else {
            looked.join(", ")
        },
        hint: kind.how_to_get(),
    })
}

/// A further image of every item of a set (one of PolyMNIST's
/// modalities): `[n, channels * rows * cols]` like the set's `images`.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub name: String,
    pub images: Vec<u8>,
}

/// One split of an image–label dataset, held as bytes.
#[derive(Debug, Clone)]
pub struct ImageLabelSet {
    pub kind: DatasetKind,
    /// 1 grey, 3 RGB.
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
    /// `[n, channels * rows * cols]`, planar (all of channel 0, then 1, …),
    /// row-major, 0 = background.
    pub images: Vec<u8>,
    /// The further images of datasets with several per item, in the order
    /// of [`DatasetKind::image_views`] after the first (which is `images`).
    pub views: Vec<View>,
    /// `[n]`, each `< kind.num_classes()`.
    pub labels: Vec<u32>,
    /// `[n]` each item's own caption, for datasets that come with captions
    /// (the pairs dataset); `None` where captions are drawn from the labels.
    pub captions: Option<Vec<String>>,
    /// What the loader had to say (items skipped, images converted), one
    /// line each, for the user to read at the end of a run.
    pub notes: Vec<String>,
    /// Items the loader left out (bad lines or images, where the dataset
    /// allows skipping them).
    pub skipped: usize,
    /// How the vision copies in `views` were made (`None`: the set has
    /// none).
    pub copies: Option<crate::vision::Copies>,
}

impl ImageLabelSet {
    /// A labelled set without captions of its own.
    pub fn new(
        kind: DatasetKind,
        channels: usize,
        side: (usize, usize),
        images: Vec<u8>,
        labels: Vec<u32>,
    ) -> Self {
        Self {
            kind,
            channels,
            rows: side.0,
            cols: side.1,
            images,
            views: Vec::new(),
            labels,
            captions: None,
            notes: Vec::new(),
            skipped: 0,
            copies: None,
        }
    }

    /// The names of the images each item holds: the dataset's views
    /// (PolyMNIST's `m0`…`m4`), or `["image"]`.
    pub fn image_names(&self) -> Vec<&str> {
        match self.kind.image_views() {
            [] => vec!["image"],
            names => names.to_vec(),
        }
    }

    /// The image an image modality named `name` reads: the view of that
    /// name; on a dataset of one image per item (no views), that image
    /// whatever the modality's name. `None` where the dataset has views and
    /// none is named so (config validation refuses such a model).
    pub fn view_of(&self, name: &str) -> Option<usize> {
        if self.views.is_empty() {
            return Some(0);
        }
        self.image_names().iter().position(|&n| n == name)
    }

    /// Image `i` of view `v` (0: `images`, then `views`).
    pub fn view_image(&self, v: usize, i: usize) -> &[u8] {
        let p = self.pixels();
        match v {
            0 => &self.images[i * p..(i + 1) * p],
            _ => &self.views[v - 1].images[i * p..(i + 1) * p],
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Values per image: `channels * rows * cols`.
    pub fn pixels(&self) -> usize {
        self.channels * self.rows * self.cols
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels();
        &self.images[i * p..(i + 1) * p]
    }
    /// Keep the first `n` items (all if `n` is larger).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.pixels());
        let p = self.pixels();
        for v in &mut self.views {
            v.images.truncate(n * p);
        }
        if let Some(c) = &mut self.captions {
            c.truncate(n);
        }
    }
    /// The items at `indices`, in that order, as a new set.
    pub fn select(&self, indices: &[usize]) -> ImageLabelSet {
        ImageLabelSet {
            kind: self.kind,
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            images: indices
                .iter()
                .flat_map(|&i| self.image(i).iter().copied())
                .collect(),
            views: (1..=self.views.len())
                .map(|v| View {
                    name: self.views[v - 1].name.clone(),
                    images: indices
                        .iter()
                        .flat_map(|&i| self.view_image(v, i).iter().copied())
                        .collect(),
                })
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            captions: self
                .captions
                .as_ref()
                .map(|c| indices.iter().map(|&i| c[i].clone()).collect()),
            notes: Vec::new(),
            skipped: 0,
            copies: self.copies,
        }
    }

    /// Split off the last `n` items into a new set (for a validation split).
    pub fn split_off_tail(&mut self, n: usize) -> ImageLabelSet {
        let n = n.min(self.len());
        let at = self.len() - n;
        ImageLabelSet {
            kind: self.kind,
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            images: self.images.split_off(at * self.pixels()),
            views: {
                let p = self.pixels();
                self.views
                    .iter_mut()
                    .map(|v| View {
                        name: v.name.clone(),
                        images: v.images.split_off(at * p),
                    })
                    .collect()
            },
            labels: self.labels.split_off(at),
            captions: self.captions.as_mut().map(|c| c.split_off(at)),
            notes: Vec::new(),
            skipped: 0,
            copies: self.copies,
        }
    }

    /// Load `split` of `kind` from the folder `dir` (see [`locate`]).
    pub fn load(kind: DatasetKind, dir: &Path, split: Split) -> Result<Self> {
        let img_stem = format!("{}-images-idx3-ubyte", split.prefix());
        let lbl_stem = format!("{}-labels-idx1-ubyte", split.prefix());
        let img_path = find_file(dir, &img_stem).ok_or_else(|| {
            DataError::format(
                dir,
                format!("{img_stem}[.gz] is missing. {}", kind.how_to_get()),
            )
        })?;
        let lbl_path = find_file(dir, &lbl_stem).ok_or_else(|| {
            DataError::format(
                dir,
                format!("{lbl_stem}[.gz] is missing. {}", kind.how_to_get()),
            )
        })?;
        let images = idx::read(&img_path)?;
        let labels = idx::read(&lbl_path)?;
        if images.dims.len() != 3 {
            return Err(DataError::format(
                &img_path,
                format!(
                    "expected 3 dimensions [n, rows, cols], found {:?}",
                    images.dims
                ),
            ));
        }
        if labels.dims.len() != 1 {
            return Err(DataError::format(
                &lbl_path,
                format!("expected 1 dimension [n], found {:?}", labels.dims),
            ));
        }
        let (rows, cols) = (images.dims[1], images.dims[2]);
        if (rows, cols) != kind.image_size() {
            return Err(DataError::format(
                &img_path,
                format!(
                    "images are {rows}x{cols}, expected {}x{}",
                    kind.image_size().0,
                    kind.image_size().1
                ),
            ));
        }
        if images.dims[0] != labels.dims[0] {
            return Err(DataError::format(
                &lbl_path,
                format!(
                    "image/label count mismatch: {} images in {}, {} labels",
                    images.dims[0],
                    img_path.display(),
                    labels.dims[0]
                ),
            ));
        }
        if let Some((i, &l)) = labels
            .data
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= kind.num_classes())
        {
            return Err(DataError::format(
                &lbl_path,
                format!(
                    "label {l} at index {i} is out of range 0..{}",
                    kind.num_classes()
                ),
            ));
        }
        Ok(ImageLabelSet::new(
            kind,
            1,
            (rows, cols),
            images.data,
            labels.data.into_iter().map(u32::from).collect(),
        ))
    }

    /// Render `split` of a shapes level (see [`shapes`]) on `threads` threads.
    pub fn shapes(level: Level, split: Split, threads: usize) -> Self {
        let idx = match split {
            Split::Train => level.train_indices(),
            Split::Test => level.test_indices(),
        };
        let (images, classes) = shapes::render_many(level, SHAPES_SEED, &idx, threads);
        ImageLabelSet::new(
            DatasetKind::Shapes(level),
            shapes::CHANNELS,
            (shapes::SIDE, shapes::SIDE),
            images,
            classes.into_iter().map(|c| c as u32).collect(),
        )
    }

    /// Load `split` of any dataset: render a shapes level, or find and read
    /// the IDX files (`explicit` folder first, see [`locate`]). A vision
    /// set's copies are made as documented ([`Copies::default`]).
    ///
    /// [`Copies::default`]: crate::vision::Copies
    pub fn open(
        kind: DatasetKind,
        explicit: Option<&Path>,
        split: Split,
        threads: usize,
    ) -> Result<Self> {
        Self::open_with(kind, explicit, split, threads, Default::default())
    }

    /// [`open`](Self::open), a vision set's copies made as `copies` says
    /// (ignored by every other dataset).
    pub fn open_with(
        kind: DatasetKind,
        explicit: Option<&Path>,
        split: Split,
        threads: usize,
        copies: crate::vision::Copies,
    ) -> Result<Self> {
        match kind {
            DatasetKind::Shapes(level) => Ok(Self::shapes(level, split, threads)),
            DatasetKind::Vision(source) => {
                let mut set = Self::open(source.kind(), explicit, split, threads)?;
                set.kind = kind;
                crate::vision::add_views(&mut set, copies)?;
                Ok(set)
            }
            DatasetKind::Mnist | DatasetKind::FashionMnist => {
                let dir = locate(kind, explicit)?;
                Self::load(kind, &dir, split)
            }
            DatasetKind::MultiMnist => {
                let dir = locate(DatasetKind::Mnist, explicit)?;
                let mnist = Self::load(DatasetKind::Mnist, &dir, split)?;
                let seed = match split {
                    Split::Train => multimnist::SEED,
                    Split::Test => multimnist::SEED ^ 0x7E57,
                };
                Ok(multimnist::compose(&mnist, seed))
            }
            DatasetKind::PolyMnist => {
                // The published files: the folder given, or `polymnist/`
                // under the data folder; else rendered from MNIST.
                let published = match explicit {
                    Some(d) => Some(d.to_path_buf()),
                    None => std::env::var_os(DATA_ENV).map(|e| PathBuf::from(e).join("polymnist")),
                };
                if let Some(dir) = published.filter(|d| polymnist::is_published(d)) {
                    return polymnist::load_published(&dir, split);
                }
                let dir = locate(DatasetKind::Mnist, explicit)?;
                let mnist = Self::load(DatasetKind::Mnist, &dir, split)?;
                Ok(polymnist::render(&mnist, split, polymnist::SEED, threads))
            }
            DatasetKind::Pairs => {
                let path = explicit.ok_or_else(|| DataError::Invalid(kind.how_to_get()))?;
                crate::pairs::load_split(path, split, &Default::default(), threads)
            }
            DatasetKind::CelebA(set) => {
                let dir = locate(kind, explicit)?;
                let (images, labels) = celeba::load(&dir, split, set, threads)?;
                Ok(ImageLabelSet::new(
                    kind,
                    celeba::CHANNELS,
                    (celeba::SIDE, celeba::SIDE),
                    images,
                    labels,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_values_name_every_value_of_every_slot() {
        for kind in DatasetKind::ALL.into_iter().chain([DatasetKind::Pairs]) {
            let slots = kind.slots();
            let values = kind.slot_values();
            assert_eq!(values.len(), slots.len(), "{kind:?}");
            for (v, (name, n)) in values.iter().zip(&slots) {
                assert_eq!(v.len(), *n, "{kind:?} {name}");
                let mut unique = v.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), *n, "{kind:?} {name}: names repeat");
            }
        }
        // Each value's name is the one its class's attributes mean.
        let l3 = DatasetKind::Shapes(Level::L3);
        let class = Level::L3.class_of_caption("small pink heart").unwrap();
        let names: Vec<String> = l3
            .attributes(class)
            .iter()
            .zip(l3.slot_values())
            .map(|(&a, v)| v[a].clone())
            .collect();
        assert_eq!(names, ["small", "pink", "heart"]);
        assert_eq!(DatasetKind::Mnist.slot_values()[0][7], "seven");
        assert_eq!(
            DatasetKind::MultiMnist.slot_values()[0][multimnist::EMPTY],
            "empty"
        );
        assert_eq!(
            DatasetKind::CelebA(AttrSet::DEFAULT).slot_values()[1][1],
            "yes"
        );
    }

    #[test]
    fn shuffled_is_a_seeded_permutation_that_mixes_cycled_classes() {
        let v = shuffled(3000, 0);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..3000).collect::<Vec<_>>());
        assert_eq!(v, shuffled(3000, 0));
        assert_ne!(v, shuffled(3000, 1));
        // A split that cycles through 30 classes: any 300 shuffled items
        // hold (nearly) all of them; a stride of 10 would hold 3.
        let classes: std::collections::BTreeSet<usize> = v[..300].iter().map(|i| i % 30).collect();
        assert!(classes.len() >= 29, "{}", classes.len());
    }

    /// Write a tiny, valid dataset folder (n items per split).
    pub fn write_fixture(dir: &Path, n: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for (split, count) in [("train", n), ("t10k", n)] {
            let imgs: Vec<u8> = (0..count * 784).map(|i| (i % 251) as u8).collect();
            let lbls: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
            std::fs::write(
                dir.join(format!("{split}-images-idx3-ubyte")),
                idx::encode(&[count, 28, 28], &imgs),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{split}-labels-idx1-ubyte")),
                idx::encode(&[count], &lbls),
            )
            .unwrap();
        }
    }

    #[test]
    fn locates_dataset_folder_or_parent() {
        let d = tempfile::tempdir().unwrap();
        write_fixture(&d.path().join("mnist"), 3);
        assert_eq!(
            locate_in(DatasetKind::Mnist, Some(d.path()), None).unwrap(),
            d.path().join("mnist")
        );
        assert_eq!(
            locate_in(DatasetKind::Mnist, None, Some(&d.path().join("mnist"))).unwrap(),
            d.path().join("mnist")
        );
        let set =
            ImageLabelSet::load(DatasetKind::Mnist, &d.path().join("mnist"), Split::Test).unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.labels, vec![0, 1, 2]);
        assert_eq!(set.image(1)[0], (784 % 251) as u8);
    }

    #[test]
    fn missing_dataset_says_where_it_looked() {
        let d = tempfile::tempdir().unwrap();
        let e = locate_in(DatasetKind::Mnist, Some(d.path()), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&d.path().display().to_string()) && e.contains("mmvae data fetch mnist"),
            "{e}"
        );
    }

    #[test]
    fn partial_folder_names_missing_file() {
        let d = tempfile::tempdir().unwrap();
        write_fixture(d.path(), 2);
        std::fs::remove_file(d.path().join("t10k-labels-idx1-ubyte")).unwrap();
        let e = locate_in(DatasetKind::Mnist, Some(d.path()), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("partial") && e.contains("t10k-labels-idx1-ubyte"),
            "{e}"
        );
    }

    #[test]
    fn count_mismatch_and_bad_labels_are_errors() {
        let d = tempfile::tempdir().unwrap();
        write_fixture(d.path(), 4);
        std::fs::write(
            d.path().join("t10k-labels-idx1-ubyte"),
            idx::encode(&[3], &[0, 1, 2]),
        )
        .unwrap();
        let e = ImageLabelSet::load(DatasetKind::Mnist, d.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("count mismatch"), "{e}");
        std::fs::write(
            d.path().join("t10k-labels-idx1-ubyte"),
            idx::encode(&[4], &[0, 1, 12, 2]),
        )
        .unwrap();
        let e = ImageLabelSet::load(DatasetKind::Mnist, d.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 12 at index 2"), "{e}");
        std::fs::write(
            d.path().join("t10k-images-idx3-ubyte"),
            idx::encode(&[4, 2, 392], &[0; 4 * 784]),
        )
        .unwrap();
        let e = ImageLabelSet::load(DatasetKind::Mnist, d.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2x392"), "{e}");
    }

    #[test]
    fn split_off_tail_and_truncate() {
        let d = tempfile::tempdir().unwrap();
        write_fixture(d.path(), 10);
        let mut s = ImageLabelSet::load(DatasetKind::Mnist, d.path(), Split::Train).unwrap();
        let v = s.split_off_tail(3);
        assert_eq!((s.len(), v.len()), (7, 3));
        assert_eq!(v.labels, vec![7, 8, 9]);
        assert_eq!(v.images.len(), 3 * 784);
        s.truncate(2);
        assert_eq!(s.images.len(), 2 * 784);
    }

    #[test]
    fn dataset_names_round_trip_through_toml_and_parse() {
        #[derive(Serialize, Deserialize)]
        struct W {
            d: DatasetKind,
        }
        for k in DatasetKind::ALL {
            assert_eq!(DatasetKind::parse(&k.name()).unwrap(), k);
            let t = toml::to_string(&W { d: k }).unwrap();
            assert_eq!(toml::from_str::<W>(&t).unwrap().d, k);
        }
        // CelebA with a chosen attribute set: named in table order.
        let k = DatasetKind::parse("celeba:Bangs, Young").unwrap();
        assert_eq!(k.name(), "celeba:Young,Bangs");
        assert_eq!(
            (k.base_name(), k.dir_name().as_str()),
            ("celeba", "celeba-Young-Bangs")
        );
        let t = toml::to_string(&W { d: k }).unwrap();
        assert_eq!(toml::from_str::<W>(&t).unwrap().d, k);
        assert_eq!(
            DatasetKind::parse("celeba").unwrap(),
            DatasetKind::CelebA(AttrSet::DEFAULT)
        );
        let e = DatasetKind::parse("celeba:Young,Wings")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`Wings`"), "{e}");
        let e = DatasetKind::parse("shapes-l9").unwrap_err().to_string();
        assert!(e.contains("shapes-l9") && e.contains("shapes-l1"), "{e}");
        assert!(toml::from_str::<W>("d = \"cifar\"").is_err());
    }

    /// The vision views of a source are named after it, found where its
    /// files are, and refused for a source that is not one image per item.
    #[test]
    fn vision_names_follow_their_source() {
        // The vision views of CelebA: named after their source, found where
        // its files are.
        let k = DatasetKind::parse("vision-celeba:Bangs,Young").unwrap();
        assert_eq!(k.name(), "vision-celeba:Young,Bangs");
        assert_eq!(
            (k.base_name(), k.dir_name().as_str()),
            ("celeba", "vision-celeba-Young-Bangs")
        );
        assert_eq!(
            k.classes_of(),
            DatasetKind::parse("celeba:Young,Bangs").unwrap()
        );
        assert_eq!(
            DatasetKind::parse("vision-celeba19").unwrap(),
            DatasetKind::Vision(VisionSource::CelebA(AttrSet::CELEBA19))
        );
        assert_eq!(
            DatasetKind::parse("vision").unwrap().classes_of(),
            DatasetKind::Shapes(Level::L3)
        );
        let e = DatasetKind::parse("vision-celeba:Wings")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`Wings`"), "{e}");
        // Of any labelled dataset of one image per item; shapes level 3's
        // keep their short name.
        let k = DatasetKind::parse("vision-shapes-l5").unwrap();
        assert_eq!(
            (k.name(), k.base_name()),
            ("vision-shapes-l5".into(), "vision")
        );
        assert!(k.is_synthetic());
        let k = DatasetKind::parse("vision-mnist").unwrap();
        assert_eq!((k.name(), k.base_name()), ("vision-mnist".into(), "mnist"));
        assert_eq!((k.channels(), k.image_size()), (1, (28, 28)));
        assert!(!k.is_synthetic());
        assert_eq!(
            DatasetKind::parse("vision-shapes-l3").unwrap().name(),
            "vision"
        );
        for bad in ["vision-polymnist", "vision-vision", "vision-pairs"] {
            let e = DatasetKind::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{bad}`")) && e.contains("one image per item"),
                "{e}"
            );
        }
        let e = DatasetKind::parse("vision-cifar").unwrap_err().to_string();
        assert!(e.contains("`vision-cifar`: unknown dataset `cifar`"), "{e}");
        for bad in ["vision-cifar", "vision-", "visions"] {
            let e = DatasetKind::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("unknown dataset") && e.contains("vision-DATASET"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn shapes_split_is_rendered_with_balanced_classes_and_slots() {
        let mut s =
            ImageLabelSet::open(DatasetKind::Shapes(Level::L2), None, Split::Test, 2).unwrap();
        assert_eq!((s.len(), s.channels, s.rows, s.cols), (3000, 3, 64, 64));
        assert_eq!(s.images.len(), 3000 * 3 * 64 * 64);
        let mut counts = [0; 6];
        for &l in &s.labels {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [500; 6]);
        let k = s.kind;
        assert_eq!(k.slots(), vec![("size", 2), ("shape", 3)]);
        assert_eq!(k.attributes(5), vec![1, 2]);
        assert_eq!(k.class_names()[5], "small heart");
        // The validation tail keeps every class.
        let v = s.split_off_tail(60);
        let mut seen: Vec<u32> = v.labels.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 6);
        assert_eq!(v.images.len(), 60 * v.pixels());
        // Nothing to locate: a data folder is ignored.
        assert!(ImageLabelSet::open(k, Some(Path::new("/nonexistent")), Split::Test, 1).is_ok());
    }

    #[test]
    fn multimnist_is_composed_from_the_mnist_folder() {
        let d = tempfile::tempdir().unwrap();
        write_fixture(&d.path().join("mnist"), 40);
        let s =
            ImageLabelSet::open(DatasetKind::MultiMnist, Some(d.path()), Split::Test, 1).unwrap();
        assert_eq!((s.len(), s.channels, s.rows), (40, 1, 56));
        let k = s.kind;
        assert_eq!(k.num_classes(), 11_110);
        assert_eq!(k.slots().len(), 4);
        assert!(s.labels.iter().any(|&l| l >= 1110), "some four-digit items");
        // Its captions are digit strings that name their class.
        let cap = crate::Captioner::new(k, 0);
        let c = s.labels[0] as usize;
        let text = cap.caption(crate::CaptionSet::Train, 0, 0, c);
        assert!(text.chars().all(|ch| ch.is_ascii_digit()), "{text}");
        assert_eq!(cap.class_of(&text), Some(c));
        // Nothing of its own to download: it points at MNIST.
        let empty = tempfile::tempdir().unwrap();
        assert!(crate::fetch::fetch_dataset(k, empty.path(), None)
            .unwrap_err()
            .to_string()
            .contains("data fetch mnist"));
    }

    #[test]
    fn celeba_opens_from_its_folder_or_parent_and_names_a_missing_part() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("celeba");
        let classes = crate::celeba::write_fixture(&dir, 6, 60, 70).unwrap();
        let set = ImageLabelSet::open(
            DatasetKind::CelebA(AttrSet::DEFAULT),
            Some(root.path()),
            Split::Test,
            1,
        )
        .unwrap();
        assert_eq!((set.channels, set.rows, set.cols), (3, 64, 64));
        assert_eq!(set.labels, vec![classes[2] as u32, classes[5] as u32]);
        assert_eq!(set.images.len(), 2 * set.pixels());
        let k = DatasetKind::CelebA(AttrSet::DEFAULT);
        assert_eq!(k.slots().len(), 9);
        assert_eq!(
            k.attributes(classes[2]),
            AttrSet::DEFAULT.class_attributes(classes[2])
        );
        assert_eq!(
            k.class_names()[classes[2]],
            AttrSet::DEFAULT.caption(classes[2])
        );
        // A chosen set reads the same folder: Male and Smiling are bits 1
        // and 2 of the default classes.
        let k2 = DatasetKind::parse("celeba:Smiling,Male").unwrap();
        let set2 = ImageLabelSet::open(k2, Some(root.path()), Split::Test, 1).unwrap();
        let want: Vec<u32> = [2, 5]
            .iter()
            .map(|&i| ((classes[i] >> 1) & 3) as u32)
            .collect();
        assert_eq!(set2.labels, want);
        assert_eq!(k2.slots(), vec![("male", 2), ("smiling", 2)]);
        assert_eq!(
            k2.class_names(),
            [
                "a woman",
                "a man",
                "a woman who is smiling",
                "a man who is smiling"
            ]
        );
        std::fs::remove_file(dir.join(crate::celeba::PARTITION_FILE)).unwrap();
        let e = locate_in(k, Some(root.path()), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("list_eval_partition.txt is missing") && e.contains("mmlab"),
            "{e}"
        );
        let e = locate_in(k, None, None).unwrap_err().to_string();
        assert!(
            e.contains("celeba") && e.contains("cannot be downloaded"),
            "{e}"
        );
    }
}
