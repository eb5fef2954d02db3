//! MNIST and Fashion-MNIST: where the files are looked for, and loading a
//! split into memory as bytes.

use crate::error::{DataError, Result};
use crate::idx;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable naming a data directory (a dataset folder, or a folder
/// holding `mnist/` and `fashion-mnist/`).
pub const DATA_ENV: &str = "MMVAE_DATA";

/// The image–label datasets the toolkit knows. Adding one means adding a
/// variant here and its class names; everything else is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    Mnist,
    FashionMnist,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 2] = [DatasetKind::Mnist, DatasetKind::FashionMnist];

    /// The name used on the command line, in configs and as a folder name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                DataError::Invalid(format!(
                    "unknown dataset `{s}` (expected one of: mnist, fashion-mnist)"
                ))
            })
    }

    /// Human-readable class names in label order, as they appear in captions.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[
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
        }
    }

    pub fn num_classes(self) -> usize {
        self.class_names().len()
    }

    /// Image side length in pixels.
    pub fn image_size(self) -> (usize, usize) {
        (28, 28)
    }

    /// Extra places where an OS package installs the files.
    fn system_dirs(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[],
            DatasetKind::FashionMnist => &["/usr/share/datasets/fashion-mnist"],
        }
    }

    fn how_to_get(self) -> String {
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

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

fn has_any(dir: &Path) -> bool {
    FILE_STEMS.iter().any(|s| find_file(dir, s).is_some())
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
        for cand in [root.join(kind.name()), root.clone()] {
            looked.push(cand.display().to_string());
            if cand.is_dir() && has_any(&cand) {
                for stem in FILE_STEMS {
                    if find_file(&cand, stem).is_none() {
                        return Err(DataError::format(
                            &cand,
                            format!(
                                "partial {} folder: {stem}[.gz] is missing. {}",
                                kind.name(),
                                kind.how_to_get()
                            ),
                        ));
                    }
                }
                return Ok(cand);
            }
        }
    }
    Err(DataError::NotFound {
        name: kind.name().into(),
        looked: if looked.is_empty() {
            "(nowhere)".into()
        } else {
            looked.join(", ")
        },
        hint: kind.how_to_get(),
    })
}

/// One split of an image–label dataset, held as bytes.
#[derive(Debug, Clone)]
pub struct ImageLabelSet {
    pub kind: DatasetKind,
    pub rows: usize,
    pub cols: usize,
    /// `[n, rows * cols]`, row-major, 0 = background.
    pub images: Vec<u8>,
    /// `[n]`, each `< kind.num_classes()`.
    pub labels: Vec<u8>,
}

impl ImageLabelSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
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
    }
    /// Split off the last `n` items into a new set (for a validation split).
    pub fn split_off_tail(&mut self, n: usize) -> ImageLabelSet {
        let n = n.min(self.len());
        let at = self.len() - n;
        ImageLabelSet {
            kind: self.kind,
            rows: self.rows,
            cols: self.cols,
            images: self.images.split_off(at * self.pixels()),
            labels: self.labels.split_off(at),
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
        Ok(ImageLabelSet {
            kind,
            rows,
            cols,
            images: images.data,
            labels: labels.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
