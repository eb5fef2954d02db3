//! Perceptual loss: the squared distance between a reconstruction's and
//! its image's activations in a fixed feature network (Johnson et al. 2016),
//! which rewards edges and shapes where a pixel likelihood rewards the
//! average.
//!
//! Feature networks: an image classifier trained in this repository
//! (`mmvae classifier train`), or VGG16's convolutions from a safetensors
//! file that the user supplies (torchvision's `features.N.weight/bias`
//! names), loaded through burn's store.

use std::path::{Path, PathBuf};

use crate::nn::conv::conv2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::relu;
use mmvae_data::DatasetKind;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::eval::classifier::Classifier;

/// The network whose activations the perceptual loss compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum FeatureNetwork {
    /// An evaluation classifier of this repository (`dir`, by default
    /// `runs/classifier-<dataset>`): the activations after each of its
    /// convolution blocks. Note that the same classifier also scores
    /// coherence and FID; a separately trained one keeps those honest.
    Classifier {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<PathBuf>,
    },
    /// VGG16 (`torchvision.models.vgg16().features`) from a safetensors
    /// file: the first `layers` convolutions (1..=13); activations after the
    /// last convolution of each block reached. Inputs are normalised with
    /// the ImageNet mean and deviation; grey images are repeated to RGB.
    Vgg16 {
        weights: PathBuf,
        #[serde(default = "default_vgg_layers")]
        layers: usize,
    },
}

fn default_vgg_layers() -> usize {
    4
}

/// `[perceptual]`: the network whose activations the loss compares (its
/// weight is `loss.perceptual_weight`, which phases may change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceptualConfig {
    pub network: FeatureNetwork,
}

/// VGG16's convolution widths, `0` marking a 2×2 max-pool.
const VGG16: [usize; 18] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The first `layers` convolutions of VGG16's feature extractor.
#[derive(Module, Debug)]
pub struct Vgg16Features {
    /// Named `features.0`, `features.1`, … (torchvision's indices, which
    /// skip the ReLU and pooling layers, are made contiguous on loading).
    features: Vec<Conv2d>,
    pool: MaxPool2d,
}

impl Vgg16Features {
    /// Randomly initialised (for tests and for saving a template file).
    pub fn init(layers: usize, device: &Device) -> Self {
        let mut features = Vec::new();
        let mut c_in = 3;
        for &c in VGG16.iter().filter(|&&c| c > 0).take(layers) {
            features.push(crate::modality::image::conv::conv3(c_in, c, device));
            c_in = c;
        }
        Self {
            features,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    /// Load the first `layers` convolutions from a safetensors file with
    /// torchvision's names; other tensors in the file are ignored.
    pub fn load(path: &Path, layers: usize, device: &Device) -> Result<Self> {
        let bad = |m: String| ModelError::Invalid(format!("{}: {m}", path.display()));
        if !(1..=13).contains(&layers) {
            return Err(bad(format!(
                "VGG16 has 13 convolutions, asked for {layers}"
            )));
        }
        if !path.is_file() {
            return Err(bad("no such file".into()));
        }
        let mut model = Self::init(layers, device);
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .map_indices_contiguous(true)
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| bad(e.to_string()))?;
        if let Some((p, _)) = result.missing.first() {
            return Err(bad(format!(
                "not VGG16 feature weights: {} tensor(s) missing, e.g. {p}",
                result.missing.len()
            )));
        }
        if let Some(e) = result.errors.first() {
            return Err(bad(format!("{e:?}")));
        }
        Ok(model)
    }

    /// Save with torchvision's names (`features.0`, `features.2`, `features.5`, …).
    pub fn save_torchvision(&self, path: &Path) -> Result<()> {
        // Contiguous index → torchvision index, highest first so that no
        // renamed key is renamed again.
        let mut tv = Vec::new();
        let mut idx = 0;
        for &c in VGG16.iter() {
            if c > 0 {
                tv.push(idx);
                idx += 2; // conv, relu
            } else {
                idx += 1; // pool
            }
        }
        let mut patterns = Vec::new();
        for i in (0..self.features.len()).rev() {
            if tv[i] != i {
                patterns.push((format!(r"^features\.{i}\."), format!("features.{}.", tv[i])));
            }
        }
        let remap = burn::store::KeyRemapper::from_patterns(patterns)
            .map_err(|e| ModelError::Invalid(e.to_string()))?;
        let mut store = SafetensorsStore::from_file(path)
            .with_to_adapter(burn::store::BurnToPyTorchAdapter)
            .remap(remap);
        self.save_into(&mut store)
            .map_err(|e| ModelError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Activations after the last convolution of each block reached, and
    /// after the last convolution, flattened per image.
    ///
    /// # Shapes
    /// `x`: `[batch, 3, h, w]`, ImageNet-normalised → `[batch, c_l·h_l·w_l]` per layer
    pub fn feature_maps(&self, x: Tensor<4>) -> Vec<Tensor<2>> {
        let mut out = Vec::new();
        let mut h = x;
        let mut conv = self.features.iter().peekable();
        for (i, &c) in VGG16.iter().enumerate() {
            if c == 0 {
                h = self.pool.forward(h);
                continue;
            }
            let Some(layer) = conv.next() else { break };
            h = relu(conv2d(layer, h));
            let last = conv.peek().is_none();
            if last || VGG16.get(i + 1) == Some(&0) {
                out.push(h.clone().flatten::<2>(1, 3));
            }
            if last {
                break;
            }
        }
        out
    }
}

/// A loaded feature network.
#[derive(Module, Debug)]
// One value per model: the variants' sizes do not matter, and burn's
// Module derive does not box them.
#[allow(clippy::large_enum_variant)]
pub enum FeatureNet {
    Classifier(Classifier),
    Vgg16(Vgg16Features),
}

impl FeatureNet {
    /// Build the network `network` names, for `kind`'s images.
    pub fn load(network: &FeatureNetwork, kind: DatasetKind, device: &Device) -> Result<Self> {
        match network {
            FeatureNetwork::Classifier { dir } => {
                let dir = crate::eval::classifier::dir_or_default(dir.as_deref(), kind);
                let (c, _) = crate::eval::classifier::load(&dir, kind, device)?;
                Ok(FeatureNet::Classifier(c))
            }
            FeatureNetwork::Vgg16 { weights, layers } => Ok(FeatureNet::Vgg16(
                Vgg16Features::load(weights, *layers, device)?,
            )),
        }
    }

    /// # Shapes
    /// `images`: `[batch, colours * side * side]` in [0, 1] → activations per layer
    pub fn feature_maps(&self, images: Tensor<2>, colours: usize, side: usize) -> Vec<Tensor<2>> {
        match self {
            FeatureNet::Classifier(c) => c.feature_maps(images),
            FeatureNet::Vgg16(v) => {
                let [n, _] = images.dims();
                let mut x = images.reshape([n, colours, side, side]);
                if colours == 1 {
                    x = x.repeat_dim(1, 3);
                }
                let device = x.device();
                let mean = Tensor::<1>::from_floats(IMAGENET_MEAN, &device).reshape([1, 3, 1, 1]);
                let std = Tensor::<1>::from_floats(IMAGENET_STD, &device).reshape([1, 3, 1, 1]);
                v.feature_maps((x - mean) / std)
            }
        }
    }

    /// Σ over layers and activations of (φ(a) − φ(b))², per image.
    ///
    /// # Shapes
    /// `a`, `b`: `[batch, colours * side * side]` → `[batch]`
    pub fn distance(&self, a: Tensor<2>, b: Tensor<2>, colours: usize, side: usize) -> Tensor<1> {
        let fa = self.feature_maps(a, colours, side);
        let fb = self.feature_maps(b, colours, side);
        fa.into_iter()
            .zip(fb)
            .map(|(x, y)| (x - y).powi_scalar(2).sum_dim(1).squeeze_dim::<1>(1))
            .reduce(|s, t| s + t)
            .expect("at least one feature layer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::floats as host;

    #[test]
    fn vgg16_round_trips_through_torchvision_names() {
        let _rng = crate::testutil::rng_lock();
        let dev = Device::flex();
        dev.seed(21);
        let net = Vgg16Features::init(4, &dev);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vgg16.safetensors");
        net.save_torchvision(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
        // torchvision's indices: conv layers 0, 2, 5, 7.
        for key in [
            "features.0.weight",
            "features.2.bias",
            "features.5.weight",
            "features.7.bias",
        ] {
            assert!(text.contains(key), "{key} missing from the header: {text}");
        }
        assert!(!text.contains("features.1.weight"), "{text}");

        let x = Tensor::<2>::random([2, 3 * 16 * 16], burn::tensor::Distribution::Default, &dev);
        let a = FeatureNet::Vgg16(net);
        let loaded = Vgg16Features::load(&path, 4, &dev).unwrap();
        // Fewer layers than the file holds load too.
        assert!(Vgg16Features::load(&path, 2, &dev).is_ok());
        let b = FeatureNet::Vgg16(loaded);
        let (fa, fb) = (a.feature_maps(x.clone(), 3, 16), b.feature_maps(x, 3, 16));
        // relu1_2 at 16×16, then the last layer reached (conv2_2 at 8×8).
        assert_eq!(fa.len(), 2);
        assert_eq!(fa[0].dims(), [2, 64 * 16 * 16]);
        assert_eq!(fa[1].dims(), [2, 128 * 8 * 8]);
        for (u, v) in fa.into_iter().zip(fb) {
            assert_eq!(host(u), host(v));
        }

        // More layers than the file holds, and no file.
        let e = Vgg16Features::load(&path, 6, &dev).unwrap_err().to_string();
        assert!(
            e.contains("not VGG16 feature weights") && e.contains("vgg16.safetensors"),
            "{e}"
        );
        let e = Vgg16Features::load(&dir.path().join("none.safetensors"), 2, &dev)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn distance_is_zero_on_equal_images_and_differentiable() {
        let _rng = crate::testutil::rng_lock();
        let ad = Device::flex().autodiff();
        ad.seed(4);
        let net = FeatureNet::Classifier(Classifier::new(8, 1, &[3], &ad));
        crate::mvae::force_init(&net);
        let net = net.no_grad();
        // Irregular pixels: a periodic pattern gives equal activations in a
        // pooling window, where a central difference sees half the gradient.
        let x0: Vec<f32> = (0..64)
            .map(|i| ((i as f32 * 0.731).sin() + 1.0) / 2.0)
            .collect();
        let y0: Vec<f32> = (0..64)
            .map(|i| ((i as f32 * 1.37).cos() + 1.0) / 2.0)
            .collect();
        let y = Tensor::<2>::from_data(TensorData::new(y0.clone(), [1, 64]), &ad);
        let same = net.distance(y.clone(), y.clone(), 1, 8);
        assert_eq!(same.try_into_vec_as::<f32>().unwrap(), vec![0.0]);
        let x = Tensor::<2>::from_data(TensorData::new(x0.clone(), [1, 64]), &ad).require_grad();
        let d = net.distance(x.clone(), y, 1, 8).sum();
        let g = x
            .grad(&d.backward())
            .unwrap()
            .try_into_vec_as::<f32>()
            .unwrap();
        let plain = Device::flex();
        let pn = net.valid();
        let yp = Tensor::<2>::from_data(TensorData::new(y0, [1, 64]), &plain);
        let f = |v: &[f32]| -> f64 {
            let t = Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, 64]), &plain);
            pn.distance(t, yp.clone(), 1, 8)
                .try_into_vec_as::<f32>()
                .unwrap()[0] as f64
        };
        let h = 1e-3f32;
        let mut bad = 0;
        for i in 0..64 {
            let (mut p, mut m) = (x0.clone(), x0.clone());
            p[i] += h;
            m[i] -= h;
            let num = (f(&p) - f(&m)) / (2.0 * h as f64);
            if (num - g[i] as f64).abs() > 1e-2 + 5e-2 * num.abs() {
                bad += 1;
            }
        }
        // A ReLU or max-pool kink within ±h of a pixel can make its central
        // difference disagree; a wrong gradient would fail most pixels.
        assert!(bad <= 3, "{bad} of 64 pixel gradients disagree");
    }
}
