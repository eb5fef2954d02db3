//! Which intensity levels occur in an image, and how often: the input of a
//! conv encoder's `levels` pathway ([`crate::config::ImageModel::Conv`]).

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Levels of an 8-bit channel.
pub const LEVELS: usize = 256;

/// What a conv encoder's `levels` pathway reads of each channel's 256
/// intensity levels. In a config: `levels = "counts"`, `"presence"` or
/// `"off"`; `true` and `false` read as `"presence"` and `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Levels {
    /// No levels pathway.
    #[default]
    Off,
    /// Whether some pixel takes each level ([`level_presence`]).
    Presence,
    /// How many pixels take each level, as ln(1 + count)
    /// ([`level_counts`]): also how much of the image each level covers.
    Counts,
}

impl Levels {
    pub fn is_off(&self) -> bool {
        *self == Levels::Off
    }

    /// The pathway's input for `x`, `None` when it is off.
    ///
    /// # Shapes
    /// `x`: `[batch, colours * pixels]` (planar) → `[batch, colours * 256]`
    pub fn features(self, x: Tensor<2>, colours: usize) -> Option<Tensor<2>> {
        match self {
            Levels::Off => None,
            Levels::Presence => Some(level_presence(x, colours)),
            Levels::Counts => Some(level_counts(x, colours)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Levels::Off => "off",
            Levels::Presence => "presence",
            Levels::Counts => "counts",
        }
    }
}

impl Serialize for Levels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Levels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Named;
        impl Visitor<'_> for Named {
            type Value = Levels;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"counts\", \"presence\", \"off\", true or false")
            }
            fn visit_bool<E: de::Error>(self, on: bool) -> Result<Levels, E> {
                Ok(if on { Levels::Presence } else { Levels::Off })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Levels, E> {
                [Levels::Off, Levels::Presence, Levels::Counts]
                    .into_iter()
                    .find(|l| l.name() == v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(Named)
    }
}

/// For each image and channel, the number of pixels at each of the 256
/// levels (a pixel `v` in [0, 1] is at level `round(255 v)`). A constant
/// of the input: no gradient flows through it.
///
/// # Shapes
/// `x`: `[batch, colours * pixels]` (planar) → `[batch, colours * 256]`,
/// channel by channel.
fn level_histogram(x: Tensor<2>, colours: usize) -> Tensor<2> {
    let [b, n] = x.dims();
    let device = x.device();
    let per_channel = n / colours;
    let level = x
        .detach()
        .mul_scalar((LEVELS - 1) as f32)
        .round()
        .clamp(0.0, (LEVELS - 1) as f32)
        .int()
        .reshape([b, colours, per_channel]);
    // Channel c's levels go to columns c·256 … c·256 + 255.
    let offset = Tensor::<1, Int>::arange(0..colours as i64, &device)
        .mul_scalar(LEVELS as i64)
        .reshape([1, colours, 1]);
    let index = (level + offset).reshape([b, n]);
    Tensor::<2>::zeros([b, colours * LEVELS], &device).scatter(
        1,
        index,
        Tensor::ones([b, n], &device),
        IndexingUpdateOp::Add,
    )
}

/// 1 at each level that some pixel of the channel takes, 0 elsewhere.
///
/// # Shapes
/// `x`: `[batch, colours * pixels]` (planar) → `[batch, colours * 256]`
pub fn level_presence(x: Tensor<2>, colours: usize) -> Tensor<2> {
    level_histogram(x, colours).clamp_max(1.0)
}

/// ln(1 + the number of pixels of the channel at each level): a level a
/// single pixel takes reads ln 2, one that covers a 64×64 image ln 4097,
/// so a few telling pixels stay within a factor of twelve of the most
/// common level.
///
/// # Shapes
/// `x`: `[batch, colours * pixels]` (planar) → `[batch, colours * 256]`
pub fn level_counts(x: Tensor<2>, colours: usize) -> Tensor<2> {
    level_histogram(x, colours).log1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(pixels: &[f32], colours: usize) -> Vec<f32> {
        let dev = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(pixels.to_vec(), [1, pixels.len()]), &dev);
        level_presence(x, colours)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn each_level_taken_is_marked_once_per_channel() {
        // One grey channel of four pixels: 0, 95/255 twice, 1.
        let p = presence(&[0.0, 95.0 / 255.0, 95.0 / 255.0, 1.0], 1);
        assert_eq!(p.len(), 256);
        let on: Vec<usize> = (0..256).filter(|&i| p[i] == 1.0).collect();
        assert_eq!(on, vec![0, 95, 255]);
        assert_eq!(p.iter().sum::<f32>(), 3.0);
        // Two channels of two pixels: levels {2, 97} then {97}; values off
        // the grid round to the nearest level.
        let p = presence(&[2.2 / 255.0, 96.6 / 255.0, 97.4 / 255.0, 97.0 / 255.0], 2);
        let on: Vec<usize> = (0..512).filter(|&i| p[i] == 1.0).collect();
        assert_eq!(on, vec![2, 97, 256 + 97]);
    }

    #[test]
    fn counts_are_the_log_of_one_plus_the_pixels_at_each_level() {
        let dev = Device::flex();
        // One grey channel of four pixels: 0, 95/255 twice, 1; then two
        // channels of two pixels.
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.0, 95.0 / 255.0, 95.4 / 255.0, 1.0], [1, 4]),
            &dev,
        );
        let c = level_counts(x.clone(), 1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let mut want = vec![0.0f32; 256];
        (want[0], want[95], want[255]) = (2f32.ln(), 3f32.ln(), 2f32.ln());
        for (got, want) in c.iter().zip(&want) {
            assert!((got - want).abs() < 1e-6, "{got} against {want}");
        }
        let two = level_counts(x, 2)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(two.len(), 512);
        assert!((two[95] - 2f32.ln()).abs() < 1e-6 && (two[256 + 95] - 2f32.ln()).abs() < 1e-6);
        assert!((two[256 + 255] - 2f32.ln()).abs() < 1e-6 && two[255] == 0.0);
    }

    #[test]
    fn the_config_names_what_the_pathway_reads() {
        #[derive(Deserialize, Serialize)]
        struct M {
            #[serde(default, skip_serializing_if = "Levels::is_off")]
            levels: Levels,
        }
        let read = |t: &str| toml::from_str::<M>(t).map(|m| m.levels);
        assert_eq!(read("levels = \"counts\"").unwrap(), Levels::Counts);
        assert_eq!(read("levels = \"presence\"").unwrap(), Levels::Presence);
        assert_eq!(read("levels = true").unwrap(), Levels::Presence);
        assert_eq!(read("levels = false").unwrap(), Levels::Off);
        assert_eq!(read("").unwrap(), Levels::Off);
        let e = read("levels = \"count\"").unwrap_err().to_string();
        assert!(
            e.contains("\"count\"") && e.contains("\"counts\", \"presence\""),
            "{e}"
        );
        let written = |l| toml::to_string(&M { levels: l }).unwrap();
        assert_eq!(written(Levels::Counts).trim(), "levels = \"counts\"");
        assert_eq!(written(Levels::Off), "");
    }

    #[test]
    fn features_follow_the_setting() {
        let dev = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, 0.5], [1, 2]), &dev);
        assert!(Levels::Off.features(x.clone(), 1).is_none());
        let at = |l: Levels| {
            l.features(x.clone(), 1)
                .unwrap()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap()[128]
        };
        assert_eq!(at(Levels::Presence), 1.0);
        assert!((at(Levels::Counts) - 3f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn the_input_is_left_as_it_was() {
        let dev = Device::flex();
        let x =
            Tensor::<2>::from_data(TensorData::new(vec![0.25f32, 0.5, 0.75, 1.0], [2, 2]), &dev);
        let _ = level_presence(x.clone(), 1);
        let _ = level_presence(x.clone(), 1);
        assert_eq!(
            x.into_data().try_into_vec::<f32>().unwrap(),
            vec![0.25, 0.5, 0.75, 1.0]
        );
    }

    #[test]
    fn a_batch_keeps_its_items_apart() {
        let dev = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.0, 0.0, 1.0, 1.0], [2, 2]), &dev);
        let p = level_presence(x, 1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!((p[0], p[255]), (1.0, 0.0));
        assert_eq!((p[256], p[256 + 255]), (0.0, 1.0));
    }
}
