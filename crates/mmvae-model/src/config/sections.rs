//! A training config's validation, section by section: `[model]`,
//! `[optim]`, `[data]`'s images, the phases and the optional sections.
//! The checks of single values live in `validate.rs`.

use mmvae_data::DatasetKind;

use super::validate::{check, check_loss};
use super::*;

impl TrainConfig {
    /// Reject values that would crash or silently do nothing.
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.text_prior {
            p.validate()?;
        }
        self.check_model()?;
        self.check_modalities()?;
        self.check_shared_encoders()?;
        self.check_optim()?;
        self.check_images()?;
        self.check_data()?;
        check_loss(&self.loss, self, &self.weights_at(usize::MAX), "loss")?;
        self.check_phases()?;
        self.check_sections()
    }

    /// `[model]`.
    fn check_model(&self) -> Result<()> {
        let m = &self.model;
        check(
            (1..=4096).contains(&m.latent),
            "model.latent",
            "must be in 1..=4096",
        )?;
        check(
            (1..=16384).contains(&m.fusion_hidden),
            "model.fusion_hidden",
            "must be in 1..=16384",
        )?;
        if m.fusion == Fusion::Attention {
            check(
                m.fusion_hidden.is_multiple_of(4),
                "model.fusion_hidden",
                "must be divisible by the 4 attention heads",
            )?;
            check(
                (2 * m.latent).is_multiple_of(crate::fusion::TOKENS),
                "model.latent",
                "must be even with fusion \"attention\" (each expert's output is cut into 4 tokens)",
            )?;
        }
        check(
            m.private_latent <= 4096,
            "model.private_latent",
            "must be in 0..=4096",
        )?;
        check(
            (3..=256).contains(&m.max_len),
            "model.max_len",
            "must be in 3..=256",
        )?;
        Ok(())
    }

    /// `[optim]`.
    fn check_optim(&self) -> Result<()> {
        let o = &self.optim;
        check(
            o.lr.is_finite() && o.lr > 0.0 && o.lr < 1.0,
            "optim.lr",
            "must be in (0, 1)",
        )?;
        check(
            (1..=100_000).contains(&o.batch_size),
            "optim.batch_size",
            "must be in 1..=100000",
        )?;
        check(
            (1..=100_000).contains(&o.epochs),
            "optim.epochs",
            "must be in 1..=100000",
        )?;
        if let Some(c) = o.grad_clip {
            check(
                c.is_finite() && c > 0.0,
                "optim.grad_clip",
                "must be positive",
            )?;
        }
        Ok(())
    }

    /// `[data]`'s sizes and the image fields of the pairs dataset.
    fn check_images(&self) -> Result<()> {
        let d = &self.data;
        check(d.val_size >= 1, "data.val_size", "must be at least 1")?;
        check(
            d.dataset != DatasetKind::MultiMnist || d.tokenizer == mmvae_data::TokenLevel::Char,
            "data.tokenizer",
            "must be \"char\" for multimnist (its captions are digit strings)",
        )?;
        if let Some(n) = d.train_limit {
            check(n >= 1, "data.train_limit", "must be at least 1")?;
        }
        let pairs = d.dataset == DatasetKind::Pairs;
        for (set, field) in [
            (d.image_size.is_some(), "data.image_size"),
            (d.channels.is_some(), "data.channels"),
            (d.bad_items != Default::default(), "data.bad_items"),
        ] {
            check(
                pairs || !set,
                field,
                "applies to the pairs dataset only (the others have fixed images)",
            )?;
        }
        if let Some(side) = d.image_size {
            check(
                (8..=512).contains(&side),
                "data.image_size",
                "must be in 8..=512",
            )?;
        }
        if let Some(c) = d.channels {
            check(c == 1 || c == 3, "data.channels", "must be 1 or 3")?;
        }
        Ok(())
    }

    /// Each phase's fields and objective, and their epochs' sum.
    fn check_phases(&self) -> Result<()> {
        let mut total = 0usize;
        for (i, p) in self.phases.iter().enumerate() {
            let at = format!("phases[{i}]");
            check(
                !p.name.trim().is_empty(),
                &format!("{at}.name"),
                "must not be empty",
            )?;
            check(
                (1..=100_000).contains(&p.epochs),
                &format!("{at}.epochs"),
                "must be in 1..=100000",
            )?;
            if let Some(lr) = p.lr {
                check(
                    lr.is_finite() && lr > 0.0 && lr < 1.0,
                    &format!("{at}.lr"),
                    "must be in (0, 1)",
                )?;
            }
            for name in p.loss.weights.keys().chain(p.loss.cross_weights.keys()) {
                check(
                    self.modality(name).is_some(),
                    &format!("{at}.loss"),
                    &format!("names no modality `{name}`"),
                )?;
            }
            let start: usize = self.phases[..i].iter().map(|q| q.epochs).sum();
            check_loss(
                &p.loss.apply(&self.loss),
                self,
                &self.weights_at(start),
                &format!("{at}.loss"),
            )?;
            total += p.epochs;
        }
        if !self.phases.is_empty() {
            check(
                total == self.optim.epochs,
                "optim.epochs",
                &format!("must equal the sum of the phases' epochs ({total})"),
            )?;
        }
        Ok(())
    }

    /// The `[adversarial]` and `[perceptual]` sections where the objective
    /// needs them, and their values.
    fn check_sections(&self) -> Result<()> {
        let adversarial = self.loss.adversarial_weight > 0.0
            || self
                .phases
                .iter()
                .any(|p| p.loss.adversarial_weight.is_some_and(|w| w > 0.0));
        check(
            !adversarial || self.adversarial.is_some(),
            "adversarial",
            "section is needed when an adversarial_weight is above 0 (add `[adversarial]`; every field has a default)",
        )?;
        check(
            !self.uses_perceptual() || self.perceptual.is_some(),
            "perceptual",
            "section is needed when a perceptual_weight is above 0 (add `[perceptual]` with `network = { kind = \"classifier\" }` or `{ kind = \"vgg16\", weights = \"vgg16.safetensors\" }`)",
        )?;
        if let Some(a) = &self.adversarial {
            check(
                (1..=1024).contains(&a.channels),
                "adversarial.channels",
                "must be in 1..=1024",
            )?;
            check(
                a.lr.is_finite() && a.lr > 0.0 && a.lr < 1.0,
                "adversarial.lr",
                "must be in (0, 1)",
            )?;
            check(
                a.r1.is_finite() && (0.0..=1e4).contains(&a.r1),
                "adversarial.r1",
                "must be in 0..=10000",
            )?;
            check(
                a.beta1.is_finite() && (0.0..1.0).contains(&a.beta1),
                "adversarial.beta1",
                "must be in [0, 1)",
            )?;
        }
        Ok(())
    }
}
