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
use burn::optim::GradientsParams;
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use mmvae_data::captions::splitmix64;
use mmvae_data::{fsutil, DatasetKind, ImageLabelSet};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};
use crate::io::batch::shuffled;
use crate::nn::heads::{multi_head_argmax, multi_head_nll};
use crate::nn::linear::linear;
use crate::nn::pool::relu_max_pool2d;

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
        DatasetKind::Vision => vec![0],
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

#[derive(Debug, Clone)]
pub struct ClassifierTrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub progress: bool,
    /// Use only the first N training images (all if `None`).
    pub train_limit: Option<usize>,
    /// On datasets of several images per item, one classifier per image
    /// modality ([`crate::eval::classifiers`]) instead of one for all.
    pub per_modality: bool,
}

impl ClassifierTrainOptions {
    /// Defaults that reach ≥ 99% on MNIST and ≥ 91% on Fashion-MNIST.
    pub fn for_dataset(kind: DatasetKind) -> Self {
        let epochs = match kind {
            DatasetKind::Mnist => 4,
            DatasetKind::FashionMnist => 10,
            // Textured shapes (level 3 on) are harder to tell apart: the
            // level 3 classifier reads shape right 89.8% of the time after 4
            // epochs, 98.2% after 12.
            DatasetKind::Shapes(mmvae_data::shapes::Level::L1 | mmvae_data::shapes::Level::L2) => 4,
            DatasetKind::Shapes(_) | DatasetKind::Vision => 12,
            DatasetKind::MultiMnist | DatasetKind::CelebA(_) => 4,
            // One classifier per image modality: 98.57–98.72% each after 3.
            DatasetKind::PolyMnist => 3,
            // No labels to learn: `train` refuses it.
            DatasetKind::Pairs => 0,
        };
        Self {
            epochs,
            batch_size: 128,
            lr: 1e-3,
            seed: 7,
            progress: true,
            train_limit: None,
            per_modality: kind == DatasetKind::PolyMnist,
        }
    }

    /// One classifier for every image modality of the dataset, each epoch
    /// reading a seeded random image of each item (on PolyMNIST, 8 epochs).
    pub fn one_for_all(mut self, kind: DatasetKind) -> Self {
        if self.per_modality && kind == DatasetKind::PolyMnist {
            self.epochs = 8;
        }
        self.per_modality = false;
        self
    }
}

/// Items `idx`, each item's image `view(i)`, as `[n, pixels]` in `[0, 1]`.
fn images_tensor(
    data: &ImageLabelSet,
    idx: &[usize],
    view: impl Fn(usize) -> usize,
    device: &Device,
) -> Tensor<2> {
    let mut v = Vec::with_capacity(idx.len() * data.pixels());
    for &i in idx {
        v.extend(
            data.view_image(view(i), i)
                .iter()
                .map(|&b| b as f32 / 255.0),
        );
    }
    Tensor::from_data(TensorData::new(v, [idx.len(), data.pixels()]), device)
}

fn targets(data: &ImageLabelSet, idx: &[usize], device: &Device) -> Tensor<2, Int> {
    let slots = data.kind.slots().len();
    let mut v = Vec::with_capacity(idx.len() * slots);
    for &i in idx {
        v.extend(
            data.kind
                .attributes(data.labels[i] as usize)
                .into_iter()
                .map(|a| a as i64),
        );
    }
    Tensor::from_data(TensorData::new(v, [idx.len(), slots]), device)
}

/// Accuracy of `model` on `data`: (all attributes right, each attribute),
/// averaged over the dataset's images where it has several; and the
/// accuracy on each of those images (empty for one image per item).
pub fn accuracy(
    model: &Classifier,
    data: &ImageLabelSet,
    device: &Device,
) -> (f64, Vec<f64>, Vec<(String, f64)>) {
    let names = data.image_names();
    let views = read_views(data);
    let mut strict = 0.0;
    let mut per = vec![0.0; data.kind.slots().len()];
    let mut by_view = Vec::new();
    for &v in &views {
        let (s, p) = view_accuracy(model, data, v, device);
        strict += s / views.len() as f64;
        for (a, b) in per.iter_mut().zip(p) {
            *a += b / views.len() as f64;
        }
        by_view.push((names[v].to_string(), s));
    }
    if views.len() == 1 {
        by_view.clear();
    }
    (strict, per, by_view)
}

/// Accuracy on image `view` of every item: (all attributes right, each
/// attribute).
pub(crate) fn view_accuracy(
    model: &Classifier,
    data: &ImageLabelSet,
    view: usize,
    device: &Device,
) -> (f64, Vec<f64>) {
    let idx: Vec<usize> = (0..data.len()).collect();
    let slots = data.kind.slots().len();
    let mut strict = 0usize;
    let mut per = vec![0usize; slots];
    for chunk in idx.chunks(500) {
        let pred = model.predict(images_tensor(data, chunk, |_| view, device));
        for (&i, p) in chunk.iter().zip(pred) {
            let truth = data.kind.attributes(data.labels[i] as usize);
            let mut all = true;
            for (k, (a, b)) in truth.iter().zip(&p).enumerate() {
                if a == b {
                    per[k] += 1;
                } else {
                    all = false;
                }
            }
            strict += all as usize;
        }
    }
    let n = data.len().max(1) as f64;
    (
        strict as f64 / n,
        per.into_iter().map(|c| c as f64 / n).collect(),
    )
}

/// The error for a dataset without class labels to learn.
pub(crate) fn check_labelled(train: &ImageLabelSet) -> Result<()> {
    match train.kind.is_labelled() {
        true => Ok(()),
        false => Err(ModelError::Config(format!(
            "the {} dataset has no class labels to train an evaluation classifier on",
            train.kind
        ))),
    }
}

/// Train on the training split, measure on the test split, save to `out`.
pub fn train_classifier(
    train: &ImageLabelSet,
    test: &ImageLabelSet,
    opts: &ClassifierTrainOptions,
    out: &Path,
) -> Result<(Classifier, ClassifierInfo)> {
    check_labelled(train)?;
    let model = fit(train, &read_views(train), opts);
    let (test_accuracy, test_slot_accuracy, test_view_accuracy) =
        accuracy(&model, test, &crate::device::cpu_device());
    let info = ClassifierInfo {
        test_accuracy,
        test_slot_accuracy,
        test_view_accuracy,
        reads: match train.kind {
            DatasetKind::Vision => vec![train.image_names()[0].to_string()],
            _ => Vec::new(),
        },
        ..untested_info(train, opts)
    };
    save(out, &model, &info)?;
    Ok((model, info))
}

/// The description of a classifier trained on `train` with `opts`, before
/// it is measured: no accuracies, reading every image.
pub(crate) fn untested_info(
    train: &ImageLabelSet,
    opts: &ClassifierTrainOptions,
) -> ClassifierInfo {
    ClassifierInfo {
        dataset: train.kind,
        side: train.rows,
        colours: train.channels,
        classes: train.kind.num_classes(),
        heads: train.kind.slots().iter().map(|s| s.1).collect(),
        epochs: opts.epochs,
        seed: opts.seed,
        test_accuracy: 0.0,
        test_slot_accuracy: Vec::new(),
        test_view_accuracy: Vec::new(),
        reads: Vec::new(),
        per_modality: Vec::new(),
    }
}

/// Train a classifier on the images `views` of each training item (a
/// seeded random one of them per item and epoch); returned for inference.
pub(crate) fn fit(
    train: &ImageLabelSet,
    views: &[usize],
    opts: &ClassifierTrainOptions,
) -> Classifier {
    let device = crate::device::cpu_device().autodiff();
    device.seed(opts.seed);
    let heads: Vec<usize> = train.kind.slots().iter().map(|s| s.1).collect();
    let mut model = Classifier::new(train.rows, train.channels, &heads, &device);
    crate::mvae::force_init(&model);
    let mut optim = crate::train::adam::FusedAdamConfig::default()
        .with_epsilon(1e-8)
        .init();
    let n = opts.train_limit.unwrap_or(train.len()).min(train.len());
    for epoch in 0..opts.epochs {
        let order = shuffled(
            n,
            opts.seed ^ (epoch as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D),
        );
        let pb = progress_bar(opts, n, epoch);
        // Halve the learning rate for the last third of training.
        let lr = if epoch * 3 >= opts.epochs * 2 {
            opts.lr * 0.3
        } else {
            opts.lr
        };
        let salt = splitmix64(opts.seed ^ (epoch as u64 + 1));
        let view = |i: usize| views[(splitmix64(salt ^ i as u64) % views.len() as u64) as usize];
        for chunk in order.chunks(opts.batch_size) {
            let x = images_tensor(train, chunk, view, &device);
            let y = targets(train, chunk, &device);
            let loss = model.loss(model.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            pb.inc(1);
        }
        pb.finish_and_clear();
    }
    model.valid()
}

fn progress_bar(opts: &ClassifierTrainOptions, n: usize, epoch: usize) -> ProgressBar {
    let pb = if opts.progress {
        ProgressBar::new(n.div_ceil(opts.batch_size) as u64)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "classifier epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
        )
        .expect("template"),
    );
    pb.set_prefix(format!("{}/{}", epoch + 1, opts.epochs));
    pb
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
