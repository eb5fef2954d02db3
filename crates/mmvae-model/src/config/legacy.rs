//! The two-modality config form: `model.image`, `model.image_likelihood`
//! and `model.text`, with `loss.image_weight`, `loss.text_weight` and
//! `loss.cross_weight` (and the same weights in a phase's `loss`). Such a
//! config is read as `[[modalities]]` named `image` and `text`, so every
//! config and checkpoint written before modalities were data still loads
//! and trains the same model.

use super::{ExpertConfig, ModalityConfig, TrainConfig};
use crate::error::{ModelError, Result};

fn config_error(msg: &str) -> ModelError {
    ModelError::Config(msg.to_string())
}

impl TrainConfig {
    /// Move the two-modality form's fields into `modalities` (and the
    /// phases' weight maps); refuse a config that mixes both forms.
    pub(super) fn read_legacy(&mut self) -> Result<()> {
        let m = &mut self.model;
        let l = &mut self.loss;
        let legacy_model = m.legacy_image.is_some()
            || m.legacy_text.is_some()
            || m.legacy_image_likelihood.is_some();
        let legacy_loss = l.legacy_image_weight.is_some()
            || l.legacy_text_weight.is_some()
            || l.legacy_cross_weight.is_some();
        if !legacy_model {
            if legacy_loss {
                return Err(config_error(
                    "`loss.image_weight`, `text_weight` and `cross_weight` belong to the two-modality form (`model.image` + `model.text`); with `[[modalities]]` give each modality its `weight` and `cross_weight`",
                ));
            }
        } else {
            if !self.modalities.is_empty() {
                return Err(config_error(
                    "give the modalities either as `[[modalities]]` or as `model.image` + `model.text`, not both",
                ));
            }
            let image = m
                .legacy_image
                .take()
                .ok_or_else(|| config_error("`model.image` is missing (the two-modality form needs `model.image` and `model.text`)"))?;
            let text = m
                .legacy_text
                .take()
                .ok_or_else(|| config_error("`model.text` is missing (the two-modality form needs `model.image` and `model.text`)"))?;
            let image_weight = l
                .legacy_image_weight
                .take()
                .ok_or_else(|| config_error("`loss.image_weight` is missing"))?;
            let text_weight = l
                .legacy_text_weight
                .take()
                .ok_or_else(|| config_error("`loss.text_weight` is missing"))?;
            self.modalities = vec![
                ModalityConfig {
                    name: "image".into(),
                    expert: ExpertConfig::Image {
                        model: image,
                        likelihood: m.legacy_image_likelihood.take().unwrap_or_default(),
                    },
                    weight: image_weight,
                    cross_weight: l.legacy_cross_weight.take().unwrap_or(1.0),
                    share_encoder: None,
                },
                ModalityConfig {
                    name: "text".into(),
                    expert: ExpertConfig::Text { model: text },
                    weight: text_weight,
                    cross_weight: 1.0,
                    share_encoder: None,
                },
            ];
        }
        for p in &mut self.phases {
            let o = &mut p.loss;
            if let Some(v) = o.legacy_image_weight.take() {
                o.weights.insert("image".into(), v);
            }
            if let Some(v) = o.legacy_text_weight.take() {
                o.weights.insert("text".into(), v);
            }
            if let Some(v) = o.legacy_cross_weight.take() {
                o.cross_weights.insert("image".into(), v);
            }
        }
        Ok(())
    }
}
