//! Generating any modality from any subset of the others: the values given
//! by name (an image file, a caption, a class), the posterior of the shared
//! latent given them, and the target modality decoded from its draws.

use burn::prelude::*;
use mmvae_data::imageio::Image;

use crate::error::{ModelError, Result};
use crate::infer::{Draw, Loaded};
use crate::io::batch::{Batch, Input};
use crate::modality::expert::Expert;
use crate::objective::Subset;

/// What was generated for the target modality, one entry per draw.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    Images(Vec<Image>),
    Captions(Vec<String>),
    /// Class names (the dataset's, or the class index).
    Labels(Vec<String>),
}

impl Loaded {
    /// The input of modality `m` from a command-line value: an image file,
    /// a caption (every word must be in the vocabulary), or a class given
    /// by its index or its name.
    pub fn given_input(&self, m: usize, value: &str) -> Result<Input> {
        let name = &self.model.names[m];
        match &self.model.experts[m] {
            Expert::Image(_) => {
                let img = self
                    .read_image(std::path::Path::new(value))
                    .map_err(|e| ModelError::Invalid(format!("--given {name}={value}: {e}")))?;
                Ok(Input::Image(self.image_batch(&[img])?))
            }
            Expert::Text(_) => {
                let (ids, last) = self
                    .text_batch(&[value.to_string()], true)
                    .map_err(|e| ModelError::Invalid(format!("--given {name}: {e}")))?;
                Ok(Input::Tokens { ids, last })
            }
            Expert::Label(l) => {
                let names = self.label_names(m);
                let class = value
                    .parse::<usize>()
                    .ok()
                    .or_else(|| names.iter().position(|n| n == value))
                    .filter(|&c| c < l.classes)
                    .ok_or_else(|| {
                        let kind = self.checkpoint.config.data.dataset;
                        let what = match kind.label_source(name) {
                            mmvae_data::LabelSource::Class => "a class".to_string(),
                            mmvae_data::LabelSource::Slot(_) => format!("a value of {name}"),
                        };
                        ModelError::Invalid(format!(
                            "--given {name}={value}: not {what} (give 0..{} or a name such as `{}`)",
                            l.classes - 1,
                            names.first().map_or("", String::as_str)
                        ))
                    })?;
                Ok(Input::Label(Tensor::from_data(
                    TensorData::new(vec![class as i64], [1]),
                    &self.device,
                )))
            }
        }
    }

    /// The names of the values of label modality `m`: the dataset's class
    /// names, or the values of the attribute slot it is named after.
    pub fn label_names(&self, m: usize) -> Vec<String> {
        let kind = self.checkpoint.config.data.dataset;
        kind.label_names(kind.label_source(&self.model.names[m]))
    }

    /// `n` draws of modality `to` from the posterior given the `(name,
    /// value)` pairs (at least one; each modality at most once).
    pub fn predict(
        &self,
        given: &[(String, String)],
        to: &str,
        n: usize,
        how: Draw,
    ) -> Result<Prediction> {
        let names = self.model.names.join(", ");
        let index = |name: &str| {
            self.model.index_of(name).ok_or_else(|| {
                ModelError::Invalid(format!(
                    "the model has no modality `{name}` (it has {names})"
                ))
            })
        };
        if given.is_empty() {
            return Err(ModelError::Invalid(
                "give at least one --given NAME=VALUE".into(),
            ));
        }
        let target = index(to)?;
        let mut inputs: Vec<Option<Input>> = vec![None; self.model.modalities()];
        for (name, value) in given {
            let m = index(name)?;
            if inputs[m].is_some() {
                return Err(ModelError::Invalid(format!(
                    "--given {name} is given twice"
                )));
            }
            inputs[m] = Some(self.given_input(m, value)?);
        }
        let refs: Vec<Option<&Input>> = inputs.iter().map(Option::as_ref).collect();
        let q = self.model.posterior_of(&refs).repeat_rows(n);
        let z = Self::draw(&q, how);
        Ok(self.decode_modality(target, z, how))
    }

    /// Every modality generated from the members of `given` of each item of
    /// `batch`: one draw per item, one [`Prediction`] per modality in the
    /// model's order (cross-generation; the given ones are reconstructed).
    pub fn cross_generate(&self, batch: &Batch, given: Subset, how: Draw) -> Vec<Prediction> {
        let z = Self::draw(&self.model.posterior_given(batch, given), how);
        (0..self.model.modalities())
            .map(|m| self.decode_modality(m, z.clone(), how))
            .collect()
    }

    /// Modality `target` decoded from latents `z` (`[n, latent]`).
    fn decode_modality(&self, target: usize, z: Tensor<2>, how: Draw) -> Prediction {
        match &self.model.experts[target] {
            Expert::Image(img) => Prediction::Images(
                self.to_images(img.decode(self.model.with_private(z, how == Draw::Sample))),
            ),
            Expert::Text(t) => Prediction::Captions(self.to_captions(t.decoder.decode(
                z,
                self.model.max_len,
                None,
            ))),
            Expert::Label(l) => {
                let names = self.label_names(target);
                Prediction::Labels(
                    l.decode(z)
                        .into_iter()
                        .map(|c| names.get(c).cloned().unwrap_or_else(|| c.to_string()))
                        .collect(),
                )
            }
        }
    }
}
