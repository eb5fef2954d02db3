//! Inception-v3 as the FID feature network of pytorch-fid (Heusel et al.'s
//! TensorFlow graph ported to PyTorch): the torchvision layout with the FID
//! variants of blocks A, C and E (average pools that do not count padding,
//! a max pool in the last block), images resized to 299×299 bilinearly and
//! scaled to [−1, 1], features the 2048-d global average pool ("pool3").
//!
//! The weights are not shipped: users supply pytorch-fid's
//! `pt_inception-2015-12-05-6726825d.pth` (PyTorch) or a safetensors file
//! with the same tensor names. Field names follow those tensor names, so
//! the files load without renaming.

#![allow(non_snake_case)]

use crate::nn::conv::conv2d;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};
use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, interpolate, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use std::path::Path;

use crate::error::{ModelError, Result};

/// Dimension of the pool3 features.
pub const FEATURES: usize = 2048;

/// Convolution without bias, batch norm (ε = 0.001), ReLU.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    conv: Conv2d,
    bn: BatchNorm,
}

impl BasicConv2d {
    fn new(
        c_in: usize,
        c_out: usize,
        k: [usize; 2],
        stride: usize,
        pad: [usize; 2],
        d: &Device,
    ) -> Self {
        Self {
            conv: Conv2dConfig::new([c_in, c_out], k)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[0], pad[1]))
                .with_bias(false)
                .init(d),
            bn: BatchNormConfig::new(c_out).with_epsilon(0.001).init(d),
        }
    }

    fn sq(c_in: usize, c_out: usize, k: usize, d: &Device) -> Self {
        Self::new(c_in, c_out, [k, k], 1, [k / 2, k / 2], d)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(conv2d(&self.conv, x)))
    }
}

/// 3×3 average pool, stride 1, padding 1, padding not counted.
fn avg3(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(
        x,
        AvgPoolOptions::new([3, 3])
            .with_stride([1, 1])
            .with_padding([1, 1])
            .with_count_include_pad(false),
    )
}

/// 3×3 max pool with `stride` and `pad`.
fn max3(x: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([3, 3])
            .with_stride([stride, stride])
            .with_padding([pad, pad]),
    )
}

#[derive(Module, Debug)]
pub struct InceptionA {
    branch1x1: BasicConv2d,
    branch5x5_1: BasicConv2d,
    branch5x5_2: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3: BasicConv2d,
    branch_pool: BasicConv2d,
}

impl InceptionA {
    fn new(c: usize, pool: usize, d: &Device) -> Self {
        Self {
            branch1x1: BasicConv2d::sq(c, 64, 1, d),
            branch5x5_1: BasicConv2d::sq(c, 48, 1, d),
            branch5x5_2: BasicConv2d::sq(48, 64, 5, d),
            branch3x3dbl_1: BasicConv2d::sq(c, 64, 1, d),
            branch3x3dbl_2: BasicConv2d::sq(64, 96, 3, d),
            branch3x3dbl_3: BasicConv2d::sq(96, 96, 3, d),
            branch_pool: BasicConv2d::sq(c, pool, 1, d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b5 = self
            .branch5x5_2
            .forward(self.branch5x5_1.forward(x.clone()));
        let b3 = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = self.branch_pool.forward(avg3(x));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }
}

/// Mixed_6a.
#[derive(Module, Debug)]
pub struct InceptionB {
    branch3x3: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3: BasicConv2d,
}

impl InceptionB {
    fn new(c: usize, d: &Device) -> Self {
        Self {
            branch3x3: BasicConv2d::new(c, 384, [3, 3], 2, [0, 0], d),
            branch3x3dbl_1: BasicConv2d::sq(c, 64, 1, d),
            branch3x3dbl_2: BasicConv2d::sq(64, 96, 3, d),
            branch3x3dbl_3: BasicConv2d::new(96, 96, [3, 3], 2, [0, 0], d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3.forward(x.clone());
        let bd = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        Tensor::cat(vec![b3, bd, max3(x, 2, 0)], 1)
    }
}

#[derive(Module, Debug)]
pub struct InceptionC {
    branch1x1: BasicConv2d,
    branch7x7_1: BasicConv2d,
    branch7x7_2: BasicConv2d,
    branch7x7_3: BasicConv2d,
    branch7x7dbl_1: BasicConv2d,
    branch7x7dbl_2: BasicConv2d,
    branch7x7dbl_3: BasicConv2d,
    branch7x7dbl_4: BasicConv2d,
    branch7x7dbl_5: BasicConv2d,
    branch_pool: BasicConv2d,
}

impl InceptionC {
    fn new(c: usize, c7: usize, d: &Device) -> Self {
        let row = |i, o| BasicConv2d::new(i, o, [1, 7], 1, [0, 3], d);
        let col = |i, o| BasicConv2d::new(i, o, [7, 1], 1, [3, 0], d);
        Self {
            branch1x1: BasicConv2d::sq(c, 192, 1, d),
            branch7x7_1: BasicConv2d::sq(c, c7, 1, d),
            branch7x7_2: row(c7, c7),
            branch7x7_3: col(c7, 192),
            branch7x7dbl_1: BasicConv2d::sq(c, c7, 1, d),
            branch7x7dbl_2: col(c7, c7),
            branch7x7dbl_3: row(c7, c7),
            branch7x7dbl_4: col(c7, c7),
            branch7x7dbl_5: row(c7, 192),
            branch_pool: BasicConv2d::sq(c, 192, 1, d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b7 = self.branch7x7_3.forward(
            self.branch7x7_2
                .forward(self.branch7x7_1.forward(x.clone())),
        );
        let mut bd = self.branch7x7dbl_1.forward(x.clone());
        for l in [
            &self.branch7x7dbl_2,
            &self.branch7x7dbl_3,
            &self.branch7x7dbl_4,
            &self.branch7x7dbl_5,
        ] {
            bd = l.forward(bd);
        }
        let bp = self.branch_pool.forward(avg3(x));
        Tensor::cat(vec![b1, b7, bd, bp], 1)
    }
}

/// Mixed_7a.
#[derive(Module, Debug)]
pub struct InceptionD {
    branch3x3_1: BasicConv2d,
    branch3x3_2: BasicConv2d,
    branch7x7x3_1: BasicConv2d,
    branch7x7x3_2: BasicConv2d,
    branch7x7x3_3: BasicConv2d,
    branch7x7x3_4: BasicConv2d,
}

impl InceptionD {
    fn new(c: usize, d: &Device) -> Self {
        Self {
            branch3x3_1: BasicConv2d::sq(c, 192, 1, d),
            branch3x3_2: BasicConv2d::new(192, 320, [3, 3], 2, [0, 0], d),
            branch7x7x3_1: BasicConv2d::sq(c, 192, 1, d),
            branch7x7x3_2: BasicConv2d::new(192, 192, [1, 7], 1, [0, 3], d),
            branch7x7x3_3: BasicConv2d::new(192, 192, [7, 1], 1, [3, 0], d),
            branch7x7x3_4: BasicConv2d::new(192, 192, [3, 3], 2, [0, 0], d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self
            .branch3x3_2
            .forward(self.branch3x3_1.forward(x.clone()));
        let mut b7 = self.branch7x7x3_1.forward(x.clone());
        for l in [
            &self.branch7x7x3_2,
            &self.branch7x7x3_3,
            &self.branch7x7x3_4,
        ] {
            b7 = l.forward(b7);
        }
        Tensor::cat(vec![b3, b7, max3(x, 2, 0)], 1)
    }
}

/// Mixed_7b (average pool) and Mixed_7c (max pool) in their FID variants.
#[derive(Module, Debug)]
pub struct InceptionE {
    branch1x1: BasicConv2d,
    branch3x3_1: BasicConv2d,
    branch3x3_2a: BasicConv2d,
    branch3x3_2b: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3a: BasicConv2d,
    branch3x3dbl_3b: BasicConv2d,
    branch_pool: BasicConv2d,
    #[module(skip)]
    max_pool: bool,
}

impl InceptionE {
    fn new(c: usize, max_pool: bool, d: &Device) -> Self {
        let row = |i, o| BasicConv2d::new(i, o, [1, 3], 1, [0, 1], d);
        let col = |i, o| BasicConv2d::new(i, o, [3, 1], 1, [1, 0], d);
        Self {
            branch1x1: BasicConv2d::sq(c, 320, 1, d),
            branch3x3_1: BasicConv2d::sq(c, 384, 1, d),
            branch3x3_2a: row(384, 384),
            branch3x3_2b: col(384, 384),
            branch3x3dbl_1: BasicConv2d::sq(c, 448, 1, d),
            branch3x3dbl_2: BasicConv2d::sq(448, 384, 3, d),
            branch3x3dbl_3a: row(384, 384),
            branch3x3dbl_3b: col(384, 384),
            branch_pool: BasicConv2d::sq(c, 192, 1, d),
            max_pool,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b3 = self.branch3x3_1.forward(x.clone());
        let b3 = Tensor::cat(
            vec![
                self.branch3x3_2a.forward(b3.clone()),
                self.branch3x3_2b.forward(b3),
            ],
            1,
        );
        let bd = self
            .branch3x3dbl_2
            .forward(self.branch3x3dbl_1.forward(x.clone()));
        let bd = Tensor::cat(
            vec![
                self.branch3x3dbl_3a.forward(bd.clone()),
                self.branch3x3dbl_3b.forward(bd),
            ],
            1,
        );
        let pooled = if self.max_pool {
            max3(x, 1, 1)
        } else {
            avg3(x)
        };
        let bp = self.branch_pool.forward(pooled);
        Tensor::cat(vec![b1, b3, bd, bp], 1)
    }
}

/// The FID Inception-v3 up to its 2048-d pool3 features.
#[derive(Module, Debug)]
pub struct InceptionV3 {
    Conv2d_1a_3x3: BasicConv2d,
    Conv2d_2a_3x3: BasicConv2d,
    Conv2d_2b_3x3: BasicConv2d,
    Conv2d_3b_1x1: BasicConv2d,
    Conv2d_4a_3x3: BasicConv2d,
    Mixed_5b: InceptionA,
    Mixed_5c: InceptionA,
    Mixed_5d: InceptionA,
    Mixed_6a: InceptionB,
    Mixed_6b: InceptionC,
    Mixed_6c: InceptionC,
    Mixed_6d: InceptionC,
    Mixed_6e: InceptionC,
    Mixed_7a: InceptionD,
    Mixed_7b: InceptionE,
    Mixed_7c: InceptionE,
}

impl InceptionV3 {
    /// The network with freshly initialised weights (load real ones with
    /// [`InceptionV3::load`]).
    pub fn init(d: &Device) -> Self {
        Self {
            Conv2d_1a_3x3: BasicConv2d::new(3, 32, [3, 3], 2, [0, 0], d),
            Conv2d_2a_3x3: BasicConv2d::new(32, 32, [3, 3], 1, [0, 0], d),
            Conv2d_2b_3x3: BasicConv2d::sq(32, 64, 3, d),
            Conv2d_3b_1x1: BasicConv2d::sq(64, 80, 1, d),
            Conv2d_4a_3x3: BasicConv2d::new(80, 192, [3, 3], 1, [0, 0], d),
            Mixed_5b: InceptionA::new(192, 32, d),
            Mixed_5c: InceptionA::new(256, 64, d),
            Mixed_5d: InceptionA::new(288, 64, d),
            Mixed_6a: InceptionB::new(288, d),
            Mixed_6b: InceptionC::new(768, 128, d),
            Mixed_6c: InceptionC::new(768, 160, d),
            Mixed_6d: InceptionC::new(768, 160, d),
            Mixed_6e: InceptionC::new(768, 192, d),
            Mixed_7a: InceptionD::new(768, d),
            Mixed_7b: InceptionE::new(1280, false, d),
            Mixed_7c: InceptionE::new(2048, true, d),
        }
    }

    /// Load weights from a PyTorch file (`.pth`/`.pt`, e.g. pytorch-fid's
    /// `pt_inception-2015-12-05-6726825d.pth`) or a `.safetensors` file with
    /// the same tensor names. Every tensor of the network must be in the
    /// file (the classifier head `fc.*` and batch-norm counters are ignored).
    pub fn load(path: &Path, d: &Device) -> Result<Self> {
        let mut model = Self::init(d);
        let bad = |m: String| ModelError::Invalid(format!("{}: {m}", path.display()));
        if !path.is_file() {
            return Err(bad("no such file".into()));
        }
        let safetensors = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        let result = if safetensors {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .allow_partial(true);
            model
                .load_from(&mut store)
                .map_err(|e| bad(e.to_string()))?
        } else {
            let mut store = PytorchStore::from_file(path).allow_partial(true);
            model
                .load_from(&mut store)
                .map_err(|e| bad(e.to_string()))?
        };
        // The batch norms' `training` flags are burn state, not weights.
        let missing: Vec<&str> = result
            .missing
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| !p.ends_with("training"))
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "not Inception-v3 FID weights: {} tensor(s) missing, e.g. {}",
                missing.len(),
                missing[0]
            )));
        }
        if let Some(e) = result.errors.first() {
            return Err(bad(format!("{e:?}")));
        }
        Ok(model)
    }

    /// Save the weights as safetensors with PyTorch's tensor names (the
    /// format [`InceptionV3::load`] reads), e.g. to convert a `.pth` once.
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let mut store =
            SafetensorsStore::from_file(path).with_to_adapter(burn::store::BurnToPyTorchAdapter);
        self.save_into(&mut store)
            .map_err(|e| ModelError::Invalid(format!("{}: {e}", path.display())))
    }

    /// pool3 features of images with values in [0, 1].
    ///
    /// # Shapes
    /// `images`: `[batch, colours * side * side]` (planar; grey is repeated
    /// to RGB) → `[batch, 2048]`
    pub fn features(&self, images: Tensor<2>, colours: usize, side: usize) -> Tensor<2> {
        let [n, _] = images.dims();
        let mut x = images.reshape([n, colours, side, side]);
        if colours == 1 {
            x = x.repeat_dim(1, 3);
        }
        let x = interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(false)
                .with_output_size([299, 299]),
        );
        self.pool3(x * 2.0 - 1.0)
    }

    /// pool3 features of `[batch, 3, 299, 299]` inputs in [−1, 1].
    pub fn pool3(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.Conv2d_1a_3x3.forward(x);
        let x = self.Conv2d_2a_3x3.forward(x);
        let x = self.Conv2d_2b_3x3.forward(x);
        let x = max3(x, 2, 0);
        let x = self.Conv2d_3b_1x1.forward(x);
        let x = self.Conv2d_4a_3x3.forward(x);
        let x = max3(x, 2, 0);
        let x = self.Mixed_5b.forward(x);
        let x = self.Mixed_5c.forward(x);
        let x = self.Mixed_5d.forward(x);
        let x = self.Mixed_6a.forward(x);
        let x = self.Mixed_6b.forward(x);
        let x = self.Mixed_6c.forward(x);
        let x = self.Mixed_6d.forward(x);
        let x = self.Mixed_6e.forward(x);
        let x = self.Mixed_7a.forward(x);
        let x = self.Mixed_7b.forward(x);
        let x = self.Mixed_7c.forward(x);
        let [n, c, _, _] = x.dims();
        adaptive_avg_pool2d(x, [1, 1]).reshape([n, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::floats as host;

    /// Image k of the reference script: ((7x + 13y + 5c + 11k) mod 17) / 16.
    fn test_images(channels: usize, side: usize, count: usize, d: &Device) -> Tensor<2> {
        let mut v = Vec::with_capacity(count * channels * side * side);
        for k in 0..count {
            for c in 0..channels {
                for y in 0..side {
                    for x in 0..side {
                        v.push(((7 * x + 13 * y + 5 * c + 11 * k) % 17) as f32 / 16.0);
                    }
                }
            }
        }
        Tensor::from_data(TensorData::new(v, [count, channels * side * side]), d)
    }

    #[test]
    fn saved_weights_load_back_and_foreign_files_are_refused() {
        let _rng = crate::testutil::rng_lock();
        let d = Device::flex();
        d.seed(3);
        let net = InceptionV3::init(&d);
        let x = test_images(1, 28, 2, &d);
        let want = host(net.features(x.clone(), 1, 28));
        assert_eq!(want.len(), 2 * FEATURES);
        assert!(
            want.iter().all(|v| v.is_finite() && *v >= 0.0),
            "pooled ReLUs"
        );

        // Saved with PyTorch's names (gamma → weight, …), as a converted
        // pytorch-fid file would be.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inception.safetensors");
        net.save_safetensors(&path).unwrap();
        let loaded = InceptionV3::load(&path, &d).unwrap();
        assert_eq!(host(loaded.features(x, 1, 28)), want);

        // A file of other tensors, and no file at all.
        let other = dir.path().join("other.safetensors");
        let mut store = SafetensorsStore::from_file(&other);
        let small = BasicConv2d::sq(3, 4, 1, &d);
        small.save_into(&mut store).unwrap();
        let e = InceptionV3::load(&other, &d).unwrap_err().to_string();
        assert!(e.contains("not Inception-v3 FID weights"), "{e}");
        let e = InceptionV3::load(&dir.path().join("none.pth"), &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.pth: no such file"), "{e}");
    }

    /// Cross-check against pytorch-fid itself: run
    /// `scripts/inception-reference.py DIR` (needs torch, torchvision and
    /// pytorch-fid) and set MMVAE_INCEPTION_REF=DIR. Skipped otherwise (the
    /// weight file is 96 MB, so CI does not carry it).
    #[test]
    fn matches_pytorch_fid_on_the_same_weights() {
        let Some(dir) = std::env::var_os("MMVAE_INCEPTION_REF") else {
            eprintln!("MMVAE_INCEPTION_REF not set: pytorch-fid cross-check skipped");
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let d = Device::flex();
        let net = InceptionV3::load(&dir.join("inception-random.pth"), &d).unwrap();
        let reference: std::collections::BTreeMap<String, Vec<Vec<f32>>> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("features.json")).unwrap())
                .unwrap();
        for (channels, side) in [(1, 28), (3, 32)] {
            let want = &reference[&format!("{channels}x{side}")];
            let got = host(net.features(test_images(channels, side, 3, &d), channels, side));
            let mut worst = 0f32;
            for (k, w) in want.iter().enumerate() {
                for (a, b) in got[k * FEATURES..(k + 1) * FEATURES].iter().zip(w) {
                    worst = worst.max((a - b).abs() / (1.0 + b.abs()));
                }
            }
            // The images differ from each other by far more than this.
            let spread = want[0]
                .iter()
                .zip(&want[1])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("{channels}x{side}: worst relative error {worst:e}, image spread {spread}");
            assert!(
                worst < 1e-3 && spread > 100.0 * worst,
                "{worst} vs spread {spread}"
            );
        }
    }
}
