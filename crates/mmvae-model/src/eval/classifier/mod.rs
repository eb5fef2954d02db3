//! The evaluation classifier: a small CNN trained in-repo per dataset, used
//! to score generated images (text → image coherence). It has one softmax
//! head per attribute slot of the dataset (one, the class, for MNIST; shape,
//! size, colour, … for the shapes levels), i.e. one classifier per attribute
//! sharing a trunk. Its own test accuracy is measured and stored beside its
//! weights.

use crate::nn::activation::relu;
use crate::nn::conv::conv2d;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use mmvae_data::{fsutil, DatasetKind, ImageLabelSet};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::nn::heads::{multi_head_argmax, multi_head_nll};
use crate::nn::linear::linear;
use crate::nn::pool::relu_max_pool2d;

mod train;
pub use train::{accuracy, train_classifier, ClassifierTrainOptions};
pub(crate) use train::{check_labelled, fit, untested_info, view_accuracy};

/// Up to 28 px: conv3×3(32) → pool → conv3×3(64) → pool; larger images
/// (64 px): conv3×3(16) → pool → conv3×3(32) → pool → conv3×3(64) → pool;
/// then fc(128) → dropout → one linear head per attribute slot.
#[derive(Module, Debug)]
pub struct Classifier {
    c1: Conv2d,
    c2: Conv2d,
    c3: Option<Conv2d>,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
    side: usize,
    colours: usize,
    /// Number of values of each head, in slot order.
    heads: Vec<usize>,
}

impl Classifier {
    pub fn new(side: usize, colours: usize, heads: &[usize], device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let (c1, c2, c3, s) = if side > 32 {
            (
                conv(colours, 16),
                conv(16, 32),
                Some(conv(32, 64)),
                side / 8,
            )
        } else {
            (conv(colours, 32), conv(32, 64), None, side / 4)
        };
        Self {
            c1,
            c2,
            c3,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(64 * s * s, Self::FEATURES).init(device),
            fc2: LinearConfig::new(Self::FEATURES, heads.iter().sum()).init(device),
            dropout: DropoutConfig::new(0.3).init(),
            side,
            colours,
            heads: heads.to_vec(),
        }
    }

    /// # Shapes
    /// `x`: `[batch, colours * side * side]` in `[0, 1]` → logits of all
    /// heads side by side `[batch, sum(heads)]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        linear(&self.fc2, self.dropout.forward(self.features(x)))
    }

    /// Width of [`Classifier::features`].
    pub const FEATURES: usize = 128;

    /// The penultimate layer (after ReLU), the feature space of FID.
    ///
    /// # Shapes
    /// `x`: `[batch, colours * side * side]` → `[batch, 128]`
    pub fn features(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, _] = x.dims();
        let x = x.reshape([b, self.colours, self.side, self.side]);
        let h = relu_max_pool2d(&self.pool, conv2d(&self.c1, x));
        let mut h = relu_max_pool2d(&self.pool, conv2d(&self.c2, h));
        if let Some(c3) = &self.c3 {
            h = relu_max_pool2d(&self.pool, conv2d(c3, h));
        }
        relu(linear(&self.fc1, h.flatten::<2>(1, 3)))
    }

    /// The activations after each convolution block (ReLU, then pooling),
    /// flattened per image: the layers a perceptual loss compares.
    ///
    /// # Shapes
    /// `x`: `[batch, colours * side * side]` → `[batch, c_l·h_l·w_l]` per block
    pub fn feature_maps(&self, x: Tensor<2>) -> Vec<Tensor<2>> {
        let [b, _] = x.dims();
        let x = x.reshape([b, self.colours, self.side, self.side]);
        let mut out = Vec::new();
        let mut h = relu_max_pool2d(&self.pool, conv2d(&self.c1, x));
        out.push(h.clone().flatten::<2>(1, 3));
        h = relu_max_pool2d(&self.pool, conv2d(&self.c2, h));
        out.push(h.clone().flatten::<2>(1, 3));
        if let Some(c3) = &self.c3 {
            h = relu_max_pool2d(&self.pool, conv2d(c3, h));
            out.push(h.flatten::<2>(1, 3));
        }
        out
    }

    /// Summed cross-entropy of all heads, mean over the batch.
    ///
    /// # Shapes
    /// `logits`: `[batch, sum(heads)]`, `targets`: `[batch, heads]`
    pub fn loss(&self, logits: Tensor<2>, targets: Tensor<2, Int>) -> Tensor<1> {
        multi_head_nll(logits, targets, &self.heads)
    }

    /// Most likely value of each head for each image: `[batch][heads]`.
    pub fn predict(&self, x: Tensor<2>) -> Vec<Vec<usize>> {
        multi_head_argmax(self.forward(x), &self.heads)
    }

    /// [`Classifier::predict`] and [`Classifier::features`] from one pass
    /// through the trunk (inference: dropout is the identity on a `valid()`
    /// or plain-device model).
    pub fn predict_with_features(&self, x: Tensor<2>) -> (Vec<Vec<usize>>, Tensor<2>) {
        let f = self.features(x);
        let logits = linear(&self.fc2, self.dropout.forward(f.clone()));
        (multi_head_argmax(logits, &self.heads), f)
    }
}

/// Saved beside the classifier's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierInfo {
    pub dataset: DatasetKind,
    pub side: usize,
    #[serde(default = "one")]
    pub colours: usize,
    pub classes: usize,
    /// Values per head (attribute slot); empty in files from before heads
    /// existed, meaning one head over all classes.
    #[serde(default)]
    pub heads: Vec<usize>,
    pub epochs: usize,
    pub seed: u64,
    /// Accuracy on the dataset's test split (every attribute right).
    pub test_accuracy: f64,
    /// Accuracy of each head on the test split.
    #[serde(default)]
    pub test_slot_accuracy: Vec<f64>,
    /// On datasets of several images per item (PolyMNIST), the accuracy on
    /// each image, by name; `test_accuracy` is their mean. One classifier
    /// reads every image: trained on a seeded random image of each item
    /// per epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_view_accuracy: Vec<(String, f64)>,
    /// The images of each item the classifier reads, where it reads only
    /// some (the `vision` dataset's source image, not its greyscale or
    /// edges); empty: every image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// One classifier per image modality, by name, each in the subfolder of
    /// its name ([`crate::eval::classifiers`]); empty: this folder's own
    /// weights read the images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_modality: Vec<String>,
}

/// The images of `data` a classifier of its dataset reads (indices into
/// [`ImageLabelSet::image_names`]): the computed vision views keep the
/// source's classes but not its look, so only the source image is read.
pub fn read_views(data: &ImageLabelSet) -> Vec<usize> {
    match data.kind {
        DatasetKind::Vision(_) => vec![0],
        _ => (0..data.image_names().len()).collect(),
    }
}

fn one() -> usize {
    1
}

/// A modality name usable as a subfolder: ASCII letters, digits, `-` and
/// `_`, 1 to 64 of them.
fn is_folder_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The longest `classifier.json` read: 1 MiB (one is a few hundred bytes).
pub const MAX_INFO_BYTES: u64 = 1 << 20;

/// The most heads (attribute slots) a classifier may have.
pub const MAX_HEADS: usize = 64;

/// The most values one head may have.
pub const MAX_HEAD_VALUES: usize = 4096;

impl ClassifierInfo {
    /// Parse and check a `classifier.json` read from `dir`: the image side
    /// within 4..=[`MAX_SIDE`](crate::io::checkpoint::MAX_SIDE), 1 or 3
    /// colours, 1 to [`MAX_HEADS`] heads of 2 to [`MAX_HEAD_VALUES`] values
    /// each, all before a classifier is built from it.
    pub fn from_json(bytes: &[u8], dir: &Path) -> Result<ClassifierInfo> {
        let info: ClassifierInfo = serde_json::from_slice(bytes).map_err(|e| {
            ModelError::checkpoint(dir, format!("classifier.json is unreadable: {e}"))
        })?;
        let bad = |msg: String| {
            Err(ModelError::checkpoint(
                dir,
                format!("classifier.json: {msg}"),
            ))
        };
        let max_side = crate::io::checkpoint::MAX_SIDE;
        if !(4..=max_side).contains(&info.side) {
            return bad(format!(
                "image side {} is outside 4..={max_side}",
                info.side
            ));
        }
        if !matches!(info.colours, 1 | 3) {
            return bad(format!(
                "{} colours; 1 (grey) or 3 (RGB) expected",
                info.colours
            ));
        }
        let heads = info.heads();
        if !(1..=MAX_HEADS).contains(&heads.len()) {
            return bad(format!("{} heads, outside 1..={MAX_HEADS}", heads.len()));
        }
        if let Some(h) = heads.iter().find(|h| !(2..=MAX_HEAD_VALUES).contains(h)) {
            return bad(format!(
                "a head of {h} values, outside 2..={MAX_HEAD_VALUES}"
            ));
        }
        if info.per_modality.len() > MAX_HEADS {
            return bad(format!(
                "{} per-modality classifiers, more than {MAX_HEADS}",
                info.per_modality.len()
            ));
        }
        if let Some(n) = info.per_modality.iter().find(|n| !is_folder_name(n)) {
            return bad(format!(
                "per-modality classifier {n:?} is not a plain folder name"
            ));
        }
        Ok(info)
    }

    fn heads(&self) -> Vec<usize> {
        if self.heads.is_empty() {
            vec![self.classes]
        } else {
            self.heads.clone()
        }
    }
}

pub(crate) fn save(dir: &Path, model: &Classifier, info: &ClassifierInfo) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    // Weights first (burn writes them atomically), then the info file that
    // marks the folder complete.
    model
        .clone()
        .save_file(dir.join("classifier.bpk"))
        .map_err(|e| {
            ModelError::checkpoint(dir, format!("cannot write classifier weights: {e}"))
        })?;
    fsutil::write_atomic(
        &dir.join("classifier.json"),
        serde_json::to_string_pretty(info)
            .expect("serialises")
            .as_bytes(),
    )?;
    Ok(())
}

/// Default folder of a dataset's classifier.
pub fn default_dir(kind: DatasetKind) -> PathBuf {
    PathBuf::from("runs").join(format!("classifier-{}", kind.dir_name()))
}

/// The folder a command reads a dataset's classifier from: the one the
/// user named, else [`default_dir`].
pub fn dir_or_default(named: Option<&Path>, kind: DatasetKind) -> PathBuf {
    named.map_or_else(|| default_dir(kind), Path::to_path_buf)
}

/// Default folder of a classifier of some of a dataset's images only
/// (`reads`, by name): not the evaluation classifier's, so a folder of its
/// own, `runs/classifier-<dataset>-<names>`; with none named, that of
/// [`default_dir`].
pub fn default_dir_reading(kind: DatasetKind, reads: &[String]) -> PathBuf {
    let mut dir = default_dir(kind).into_os_string();
    if !reads.is_empty() {
        dir.push(format!("-{}", reads.join("-")));
    }
    PathBuf::from(dir)
}

/// Read and check `dir/classifier.json`: trained on `kind`.
pub(crate) fn read_info(dir: &Path, kind: DatasetKind) -> Result<ClassifierInfo> {
    let ip = dir.join("classifier.json");
    if !ip.is_file() {
        return Err(ModelError::checkpoint(dir, format!("no classifier here; train one with `mmvae classifier train --dataset {kind} --out {}`", dir.display())));
    }
    let bytes = fsutil::read_limited(&ip, MAX_INFO_BYTES, "classifier.json")?;
    let info = ClassifierInfo::from_json(&bytes, dir)?;
    if info.dataset != kind {
        return Err(ModelError::checkpoint(
            dir,
            format!("classifier was trained on {}, not {kind}", info.dataset),
        ));
    }
    Ok(info)
}

/// Load one classifier, checking it was trained on `kind`; a folder of
/// per-modality classifiers is refused (load it with
/// [`crate::eval::classifiers::Classifiers::load`], or name one of its
/// subfolders).
pub fn load(
    dir: &Path,
    kind: DatasetKind,
    device: &Device,
) -> Result<(Classifier, ClassifierInfo)> {
    let info = read_info(dir, kind)?;
    if let Some(first) = info.per_modality.first() {
        return Err(ModelError::checkpoint(
            dir,
            format!(
                "holds one classifier per image modality ({}); name one of them, e.g. {}",
                info.per_modality.join(", "),
                dir.join(first).display()
            ),
        ));
    }
    load_weights(dir, info, device)
}

/// Build the network `info` describes and read its weights from `dir`.
pub(crate) fn load_weights(
    dir: &Path,
    info: ClassifierInfo,
    device: &Device,
) -> Result<(Classifier, ClassifierInfo)> {
    let model = crate::io::checkpoint::load_weights(
        Classifier::new(info.side, info.colours, &info.heads(), device),
        &dir.join("classifier.bpk"),
    )
    .map_err(|e| ModelError::checkpoint(dir, format!("classifier weights are unreadable: {e}")))?;
    Ok((model, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command reads the classifier folder named, else the dataset's own.
    #[test]
    fn a_named_classifier_folder_wins_over_the_default() {
        let kind = DatasetKind::parse("shapes-l3").unwrap();
        let default = Path::new("runs").join("classifier-shapes-l3");
        assert_eq!(dir_or_default(None, kind), default);
        assert_eq!(
            dir_or_default(Some(Path::new("mine")), kind),
            Path::new("mine")
        );
    }

    /// A classifier of some images only gets the evaluation classifier's
    /// folder with the names appended; with none named, that folder.
    #[test]
    fn a_reading_classifiers_folder_appends_the_names() {
        let kind = DatasetKind::parse("vision").unwrap();
        assert_eq!(default_dir_reading(kind, &[]), default_dir(kind));
        let reads = ["grey".to_string(), "edges".to_string()];
        assert_eq!(
            default_dir_reading(kind, &reads),
            Path::new("runs").join("classifier-vision-grey-edges")
        );
    }

    #[test]
    fn classifier_json_is_refused_outside_its_bounds_before_a_classifier_is_built() {
        let info = ClassifierInfo {
            dataset: DatasetKind::Mnist,
            side: 28,
            colours: 1,
            classes: 10,
            heads: vec![10],
            epochs: 3,
            seed: 0,
            test_accuracy: 0.99,
            test_slot_accuracy: vec![0.99],
            test_view_accuracy: Vec::new(),
            reads: Vec::new(),
            per_modality: Vec::new(),
        };
        let dir = Path::new("runs/classifier-mnist");
        let json = |i: &ClassifierInfo| serde_json::to_vec(i).unwrap();
        let back = ClassifierInfo::from_json(&json(&info), dir).unwrap();
        assert_eq!((back.side, back.heads()), (28, vec![10]));
        let bad = [
            (
                ClassifierInfo {
                    side: 3,
                    ..info.clone()
                },
                "image side 3",
            ),
            (
                ClassifierInfo {
                    side: 1 << 40,
                    ..info.clone()
                },
                "outside 4..=512",
            ),
            (
                ClassifierInfo {
                    colours: 2,
                    ..info.clone()
                },
                "2 colours",
            ),
            (
                ClassifierInfo {
                    heads: vec![2; 65],
                    ..info.clone()
                },
                "65 heads",
            ),
            (
                ClassifierInfo {
                    heads: vec![10, 1],
                    ..info.clone()
                },
                "a head of 1 values",
            ),
            (
                ClassifierInfo {
                    heads: Vec::new(),
                    classes: 1 << 20,
                    ..info.clone()
                },
                "a head of 1048576 values",
            ),
        ];
        for (i, want) in bad {
            let e = ClassifierInfo::from_json(&json(&i), dir)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("classifier.json"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let e = ClassifierInfo::from_json(b"{\"side\":\n", dir)
            .unwrap_err()
            .to_string();
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn loss_is_the_sum_of_per_head_cross_entropies() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        let clf = Classifier::new(8, 3, &[2, 3], &dev);
        let logits = Tensor::<2>::from_data(
            TensorData::new(
                vec![0.5f32, -1.0, 2.0, 0.0, 1.0, 0.1, 0.2, 0.3, 0.4, 0.5],
                [2, 5],
            ),
            &dev,
        );
        let targets =
            Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 0, 0, 2], [2, 2]), &dev);
        let got = clf.loss(logits, targets).into_scalar::<f32>();
        let ce = |l: &[f32], t: usize| {
            let lse = l.iter().map(|v| v.exp()).sum::<f32>().ln();
            lse - l[t]
        };
        let want = (ce(&[0.5, -1.0], 1)
            + ce(&[2.0, 0.0, 1.0], 0)
            + ce(&[0.1, 0.2], 0)
            + ce(&[0.3, 0.4, 0.5], 2))
            / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // One prediction per head, each in range.
        let p = clf.predict(Tensor::zeros([4, 3 * 8 * 8], &dev));
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|h| h.len() == 2 && h[0] < 2 && h[1] < 3));
    }
}
