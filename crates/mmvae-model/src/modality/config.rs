//! A model's modalities as data: `[[modalities]]` in a config, each with a
//! name, a kind, the kind's model section and its likelihood weights.
//!
//! ```toml
//! [[modalities]]
//! name = "image"
//! kind = "image"
//! model = { kind = "conv", channels = 16, hidden = 256 }
//! likelihood = { kind = "bernoulli" }   # image only (the default)
//!
//! [[modalities]]
//! name = "text"
//! kind = "text"
//! model = { kind = "gru", embed = 32, hidden = 64 }
//! weight = 50.0
//!
//! [[modalities]]
//! name = "label"
//! kind = "label"
//! model = { classes = 10, hidden = 64 }
//! ```
//!
//! A modality may read its input with another modality's encoder
//! (`share_encoder = "image"`: one set of weights, trained by both), as
//! for a transformed copy of the image that shows the same objects.

use serde::{Deserialize, Serialize};

use crate::config::{ImageLikelihood, ImageModel, TextModel};

/// The model of a `label` modality: one categorical value among `classes`,
/// embedded and read through `hidden` units; decoded by a softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelModel {
    pub classes: usize,
    pub hidden: usize,
}

/// What a modality is, with its model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpertConfig {
    /// An image (the dataset's pictures), with its pixel likelihood.
    Image {
        model: ImageModel,
        likelihood: ImageLikelihood,
    },
    /// A caption, read by one of the sequence (or multi-hot) models.
    Text { model: TextModel },
    /// One categorical value (the dataset's class label).
    Label { model: LabelModel },
}

/// The kinds of modality, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModalityKind {
    Image,
    Text,
    Label,
}

impl ExpertConfig {
    pub fn kind(&self) -> ModalityKind {
        match self {
            ExpertConfig::Image { .. } => ModalityKind::Image,
            ExpertConfig::Text { .. } => ModalityKind::Text,
            ExpertConfig::Label { .. } => ModalityKind::Label,
        }
    }
}

impl std::fmt::Display for ModalityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModalityKind::Image => "image",
            ModalityKind::Text => "text",
            ModalityKind::Label => "label",
        })
    }
}

/// One modality of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawModality", into = "RawModality")]
pub struct ModalityConfig {
    /// Its name: what `--given NAME=…`, the metrics (`nll/NAME`) and the
    /// dataset's fields call it.
    pub name: String,
    pub expert: ExpertConfig,
    /// Likelihood weight of its reconstruction.
    pub weight: f32,
    /// Scale of its reconstruction from a subset of the other modalities
    /// (with `unimodal_target = "all"`). An image read from a caption alone
    /// is one-to-many, so its pixel likelihood pulls every such image
    /// towards one class-average blur; below 1 this pull eases.
    pub cross_weight: f32,
    /// The modality of the same kind whose encoder reads this one's input
    /// (`None`: its own). Its own `model` section then builds only the
    /// decoder that counts; the encoder it also sizes is not used.
    pub share_encoder: Option<String>,
}

impl ModalityConfig {
    /// A modality with unit likelihood and cross weights.
    pub fn new(name: &str, expert: ExpertConfig) -> Self {
        ModalityConfig {
            name: name.to_string(),
            expert,
            weight: 1.0,
            cross_weight: 1.0,
            share_encoder: None,
        }
    }

    /// This modality with likelihood weight `w`.
    pub fn with_weight(mut self, w: f32) -> Self {
        self.weight = w;
        self
    }

    /// An image modality with the Bernoulli likelihood.
    pub fn image(name: &str, model: ImageModel) -> Self {
        Self::new(
            name,
            ExpertConfig::Image {
                model,
                likelihood: ImageLikelihood::Bernoulli,
            },
        )
    }

    /// A caption modality.
    pub fn text(name: &str, model: TextModel) -> Self {
        Self::new(name, ExpertConfig::Text { model })
    }

    pub fn kind(&self) -> ModalityKind {
        self.expert.kind()
    }
}

/// The TOML form: `kind` names the kind, `model` is that kind's section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModality {
    name: String,
    kind: ModalityKind,
    model: toml::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    likelihood: Option<ImageLikelihood>,
    #[serde(default = "one")]
    weight: f32,
    #[serde(default = "one")]
    cross_weight: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    share_encoder: Option<String>,
}

fn one() -> f32 {
    1.0
}

impl TryFrom<RawModality> for ModalityConfig {
    type Error = String;

    fn try_from(r: RawModality) -> Result<Self, String> {
        let at = |e: toml::de::Error| {
            format!(
                "modality `{}`: model: {}",
                r.name,
                e.message().replace('\n', " ")
            )
        };
        let model = r.model.clone();
        let expert = match r.kind {
            ModalityKind::Image => ExpertConfig::Image {
                model: model.try_into().map_err(at)?,
                likelihood: r.likelihood.unwrap_or_default(),
            },
            ModalityKind::Text | ModalityKind::Label if r.likelihood.is_some() => {
                return Err(format!(
                    "modality `{}`: `likelihood` applies only to image modalities",
                    r.name
                ))
            }
            ModalityKind::Text => ExpertConfig::Text {
                model: model.try_into().map_err(at)?,
            },
            ModalityKind::Label => ExpertConfig::Label {
                model: model.try_into().map_err(at)?,
            },
        };
        Ok(ModalityConfig {
            name: r.name,
            expert,
            weight: r.weight,
            cross_weight: r.cross_weight,
            share_encoder: r.share_encoder,
        })
    }
}

impl From<ModalityConfig> for RawModality {
    fn from(m: ModalityConfig) -> Self {
        let value = |v: Result<toml::Value, toml::ser::Error>| v.expect("model sections serialise");
        let (kind, model, likelihood) = match m.expert {
            ExpertConfig::Image { model, likelihood } => (
                ModalityKind::Image,
                value(toml::Value::try_from(model)),
                Some(likelihood),
            ),
            ExpertConfig::Text { model } => (
                ModalityKind::Text,
                value(toml::Value::try_from(model)),
                None,
            ),
            ExpertConfig::Label { model } => (
                ModalityKind::Label,
                value(toml::Value::try_from(model)),
                None,
            ),
        };
        RawModality {
            name: m.name,
            kind,
            model,
            likelihood,
            weight: m.weight,
            cross_weight: m.cross_weight,
            share_encoder: m.share_encoder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Levels;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct List {
        modalities: Vec<ModalityConfig>,
    }

    #[test]
    fn modalities_read_and_write_their_toml_form() {
        let src = r#"
[[modalities]]
name = "image"
kind = "image"
model = { kind = "conv", channels = 16, hidden = 256 }

[[modalities]]
name = "caption"
kind = "text"
model = { kind = "gru", embed = 32, hidden = 64 }
weight = 50.0

[[modalities]]
name = "digit"
kind = "label"
model = { classes = 10, hidden = 32 }
cross_weight = 0.5
"#;
        let l: List = toml::from_str(src).unwrap();
        assert_eq!(l.modalities.len(), 3);
        assert_eq!(l.modalities[0].kind(), ModalityKind::Image);
        assert_eq!(
            l.modalities[0].expert,
            ExpertConfig::Image {
                model: ImageModel::Conv {
                    channels: 16,
                    hidden: 256,
                    max_channels: None,
                    refine: false,
                    levels: Levels::Off,
                    holes: None,
                },
                likelihood: ImageLikelihood::Bernoulli
            }
        );
        assert_eq!(l.modalities[1].weight, 50.0);
        assert_eq!(
            l.modalities[2].expert,
            ExpertConfig::Label {
                model: LabelModel {
                    classes: 10,
                    hidden: 32
                }
            }
        );
        assert_eq!(l.modalities[2].cross_weight, 0.5);
        let back: List = toml::from_str(&toml::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn a_wrong_model_section_names_the_modality() {
        let bad = |src: &str| toml::from_str::<List>(src).unwrap_err().to_string();
        let e = bad("[[modalities]]\nname = \"t\"\nkind = \"text\"\nmodel = { kind = \"gru\", embed = 4 }\n");
        assert!(e.contains("modality `t`") && e.contains("hidden"), "{e}");
        let e = bad("[[modalities]]\nname = \"l\"\nkind = \"label\"\nmodel = { classes = 3, hidden = 4 }\nlikelihood = { kind = \"bernoulli\" }\n");
        assert!(e.contains("only to image"), "{e}");
        let e = bad("[[modalities]]\nname = \"x\"\nkind = \"audio\"\nmodel = {}\n");
        assert!(e.contains("audio"), "{e}");
    }
}
