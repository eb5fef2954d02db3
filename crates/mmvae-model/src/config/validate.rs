//! The checks a config passes before anything is built from it: every
//! value that would crash or silently do nothing is refused with the
//! field's name.

use super::*;
use crate::objective::plan::MAX_MODALITIES;

pub(super) fn check(ok: bool, field: &str, msg: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(ModelError::Config(format!("`{field}` {msg}")))
    }
}

/// The checks of one loss configuration; `at` names it in messages.
pub(super) fn check_loss(
    l: &LossConfig,
    c: &TrainConfig,
    w: &TargetWeights,
    at: &str,
) -> Result<()> {
    let m = &c.model;
    check_weights(l, c, w, at)?;
    check_terms(l, c, at)?;
    check_mvtcae(l, c, at)?;
    check(
        m.fusion.sums_subset_elbos() || l.unimodal_target == UnimodalTarget::All,
        &format!("{at}.unimodal_target"),
        "must be \"all\" (the default) with fusion \"moe\", \"mopoe\" or \"mvtcae\": their terms always reconstruct every modality",
    )?;
    check(
        l.beta.is_finite() && l.beta >= 0.0,
        &format!("{at}.beta"),
        "must be >= 0",
    )?;
    check(
        l.cycle_weight.is_finite() && l.cycle_weight >= 0.0,
        &format!("{at}.cycle_weight"),
        "must be >= 0",
    )?;
    check(
        l.align_weight.is_finite() && l.align_weight >= 0.0,
        &format!("{at}.align_weight"),
        "must be >= 0",
    )?;
    check(
        l.modality_dropout.is_finite() && (0.0..1.0).contains(&l.modality_dropout),
        &format!("{at}.modality_dropout"),
        "must be in [0, 1)",
    )?;
    check(
        l.modality_dropout == 0.0 || m.fusion.is_learned(),
        &format!("{at}.modality_dropout"),
        "applies only to the learned fusions (\"concat\", \"attention\")",
    )?;
    check(
        l.temperature.is_finite() && l.temperature > 0.0,
        &format!("{at}.temperature"),
        "must be > 0",
    )?;
    check(
        l.objective == Objective::Elbo || m.fusion == Fusion::Moe,
        &format!("{at}.objective"),
        "\"iwae\" and \"dreg\" need fusion \"moe\"",
    )?;
    check(
        l.objective == Objective::Elbo || m.private_latent == 0,
        &format!("{at}.objective"),
        "\"iwae\" and \"dreg\" do not support model.private_latent yet",
    )?;
    check(
        (1..=1000).contains(&l.k),
        &format!("{at}.k"),
        "must be in 1..=1000",
    )?;
    check(
        l.perceptual_weight.is_finite() && l.perceptual_weight >= 0.0,
        &format!("{at}.perceptual_weight"),
        "must be >= 0",
    )?;
    check(
        l.adversarial_weight.is_finite() && l.adversarial_weight >= 0.0,
        &format!("{at}.adversarial_weight"),
        "must be >= 0",
    )?;
    Ok(())
}

fn check_image_model(model: &ImageModel, at: &str) -> Result<()> {
    match *model {
        ImageModel::Mlp { hidden } => check(
            (1..=16384).contains(&hidden),
            &format!("{at}.hidden"),
            "must be in 1..=16384",
        )?,
        ImageModel::Conv {
            channels, hidden, ..
        }
        | ImageModel::Residual {
            channels, hidden, ..
        } => {
            check(
                (1..=1024).contains(&channels),
                &format!("{at}.channels"),
                "must be in 1..=1024",
            )?;
            check(
                (1..=16384).contains(&hidden),
                &format!("{at}.hidden"),
                "must be in 1..=16384",
            )?;
        }
    }
    if let ImageModel::Conv {
        channels,
        max_channels: Some(max),
        ..
    } = *model
    {
        check(
            (channels..=1024).contains(&max),
            &format!("{at}.max_channels"),
            "must be in channels..=1024",
        )?;
    }
    Ok(())
}

fn check_text_model(model: &TextModel, max_len: usize, at: &str) -> Result<()> {
    match *model {
        TextModel::Gru { embed, hidden }
        | TextModel::Lstm { embed, hidden, .. }
        | TextModel::XLstm { embed, hidden } => {
            check(
                (1..=4096).contains(&embed),
                &format!("{at}.embed"),
                "must be in 1..=4096",
            )?;
            check(
                (1..=4096).contains(&hidden),
                &format!("{at}.hidden"),
                "must be in 1..=4096",
            )?;
        }
        TextModel::MultiHot { hidden } => {
            check(
                (1..=16384).contains(&hidden),
                &format!("{at}.hidden"),
                "must be in 1..=16384",
            )?;
        }
        TextModel::Transformer {
            d_model,
            heads,
            layers,
            ff,
        } => {
            check(
                (1..=4096).contains(&d_model),
                &format!("{at}.d_model"),
                "must be in 1..=4096",
            )?;
            check(
                heads >= 1 && d_model % heads == 0,
                &format!("{at}.heads"),
                "must be at least 1 and divide d_model",
            )?;
            check(
                (1..=24).contains(&layers),
                &format!("{at}.layers"),
                "must be in 1..=24",
            )?;
            check(
                (1..=16384).contains(&ff),
                &format!("{at}.ff"),
                "must be in 1..=16384",
            )?;
            check(
                max_len <= crate::modality::text::transformer::MAX_POSITIONS,
                "model.max_len",
                "must be at most 64 with the transformer text model",
            )?;
        }
    }
    Ok(())
}

/// Each modality's likelihood weights (after a phase's overrides).
fn check_weights(l: &LossConfig, c: &TrainConfig, w: &TargetWeights, at: &str) -> Result<()> {
    for (i, m) in c.modalities.iter().enumerate() {
        check(
            w.weight[i].is_finite() && w.weight[i] >= 0.0,
            &format!("{at}: modalities.{}.weight", m.name),
            "must be >= 0 (0: an input only, never reconstructed)",
        )?;
        check(
            w.cross[i].is_finite() && w.cross[i] >= 0.0,
            &format!("{at}: modalities.{}.cross_weight", m.name),
            "must be >= 0",
        )?;
        check(
            w.cross[i] == 1.0
                || (c.model.fusion.sums_subset_elbos() && l.unimodal_target == UnimodalTarget::All),
            &format!("{at}: modalities.{}.cross_weight", m.name),
            "applies only with fusion \"poe\", \"concat\" or \"attention\" and unimodal_target \"all\" (leave it at 1 otherwise)",
        )?;
    }
    check(
        w.weight.iter().any(|&x| x > 0.0),
        &format!("{at}: modalities"),
        "at least one modality needs a weight > 0 (something to reconstruct)",
    )?;
    Ok(())
}

/// MVTCAE's α belongs to it; its one joint term has no draw from the
/// caption alone for the terms that judge one.
fn check_mvtcae(l: &LossConfig, c: &TrainConfig, at: &str) -> Result<()> {
    let mvtcae = c.model.fusion == Fusion::Mvtcae;
    check(
        l.mvtcae_alpha.is_none() || mvtcae,
        &format!("{at}.mvtcae_alpha"),
        "applies only with fusion \"mvtcae\"",
    )?;
    check(
        (0.0..=1.0).contains(&l.mvtcae_alpha()),
        &format!("{at}.mvtcae_alpha"),
        "must be in [0, 1]",
    )?;
    for (w, field) in [
        (l.cycle_weight, "cycle_weight"),
        (l.adversarial_weight, "adversarial_weight"),
    ] {
        check(
            w == 0.0 || !mvtcae,
            &format!("{at}.{field}"),
            "judges the images drawn from the caption alone: fusion \"mvtcae\" draws only from the joint posterior",
        )?;
    }
    Ok(())
}

/// The terms that only make sense for some sets of modalities.
fn check_terms(l: &LossConfig, c: &TrainConfig, at: &str) -> Result<()> {
    let n = c.modalities.len();
    let image_text = c.modality_of_kind(ModalityKind::Image).is_some()
        && c.modality_of_kind(ModalityKind::Text).is_some();
    check(
        l.unimodal_target != UnimodalTarget::Conditional || (n == 2 && image_text),
        &format!("{at}.unimodal_target"),
        "\"conditional\" puts the caption's posterior under the image: it needs exactly an image and a text modality",
    )?;
    check(
        l.align_weight == 0.0 || l.align == Alignment::Jmvae || n == 2,
        &format!("{at}.align"),
        "compares two modalities: with more, use \"jmvae\" (every unimodal posterior against the joint)",
    )?;
    check(
        l.cycle_weight == 0.0 || image_text,
        &format!("{at}.cycle_weight"),
        "the caption cycle (text → image → caption) needs an image and a text modality",
    )?;
    check(
        l.cycle_weight == 0.0 || c.model.fusion != Fusion::MoPoe || l.sampled_subsets == 0,
        &format!("{at}.cycle_weight"),
        "needs the caption-only term every step: with fusion \"mopoe\", leave sampled_subsets at 0",
    )?;
    let images = c
        .modalities
        .iter()
        .filter(|m| m.kind() == ModalityKind::Image)
        .count();
    for (w, field) in [
        (l.adversarial_weight, "adversarial_weight"),
        (l.perceptual_weight, "perceptual_weight"),
    ] {
        check(
            w == 0.0 || (images == 1 && image_text && n == 2),
            &format!("{at}.{field}"),
            "judges images generated from the caption: it needs exactly an image and a text modality",
        )?;
        check(
            w == 0.0 || c.data.paired_fraction == 1.0,
            &format!("{at}.{field}"),
            "needs every training item paired (data.paired_fraction = 1)",
        )?;
    }
    check(
        l.sampled_subsets == 0 || !matches!(c.model.fusion, Fusion::Moe | Fusion::Mvtcae),
        &format!("{at}.sampled_subsets"),
        "applies to \"poe\", \"mopoe\" and the learned fusions (\"moe\" has only single-modality terms, \"mvtcae\" only the joint one)",
    )?;
    check(
        l.sampled_subsets <= 1024,
        &format!("{at}.sampled_subsets"),
        "must be in 0..=1024",
    )?;
    Ok(())
}

impl TrainConfig {
    /// The modality list: names, kinds and each expert's architecture.
    pub(super) fn check_modalities(&self) -> Result<()> {
        let n = self.modalities.len();
        check(
            n >= 1,
            "modalities",
            "must list at least one modality (`[[modalities]]` with name, kind and model; or `model.image` + `model.text`)",
        )?;
        check(
            n <= MAX_MODALITIES,
            "modalities",
            &format!("can hold at most {MAX_MODALITIES} modalities"),
        )?;
        for (i, m) in self.modalities.iter().enumerate() {
            let at = format!("modalities.{}", m.name);
            check(
                !m.name.is_empty()
                    && m.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                &format!("modalities[{i}].name"),
                "must be letters, digits, `_` or `-`",
            )?;
            check(
                !self.modalities[..i].iter().any(|o| o.name == m.name),
                &format!("modalities[{i}].name"),
                &format!("`{}` is given twice", m.name),
            )?;
            match &m.expert {
                ExpertConfig::Image { model, likelihood } => {
                    let views = self.data.dataset.image_views();
                    check(
                        views.is_empty() || views.contains(&m.name.as_str()),
                        &format!("modalities[{i}].name"),
                        &format!(
                            "is `{}`: it must name one of the {} dataset's images ({}), as an image modality reads the image of its name",
                            m.name,
                            self.data.dataset,
                            views.join(", ")
                        ),
                    )?;
                    check_image_model(model, &format!("{at}.model"))?;
                    likelihood
                        .check()
                        .map_err(|e| ModelError::Config(format!("`{at}.likelihood.scale` {e}")))?;
                }
                ExpertConfig::Text { model } => {
                    check_text_model(model, self.model.max_len, &format!("{at}.model"))?
                }
                ExpertConfig::Label { model } => {
                    check(
                        (2..=100_000).contains(&model.classes),
                        &format!("{at}.model.classes"),
                        "must be in 2..=100000",
                    )?;
                    check(
                        (1..=16384).contains(&model.hidden),
                        &format!("{at}.model.hidden"),
                        "must be in 1..=16384",
                    )?;
                }
            }
        }
        check(
            self.model.private_latent == 0 || self.modality_of_kind(ModalityKind::Image).is_some(),
            "model.private_latent",
            "is the image modalities' own latent: the model has no image modality",
        )?;
        Ok(())
    }

    /// Each `share_encoder`: another modality of the same kind, with an
    /// encoder of its own.
    pub(super) fn check_shared_encoders(&self) -> Result<()> {
        for m in &self.modalities {
            let Some(name) = &m.share_encoder else {
                continue;
            };
            let field = format!("modalities.{}.share_encoder", m.name);
            let Some(owner) = self.modalities.iter().find(|o| &o.name == name) else {
                let names: Vec<&str> = self.modalities.iter().map(|o| o.name.as_str()).collect();
                return check(
                    false,
                    &field,
                    &format!(
                        "is `{name}`, which is not a modality ({})",
                        names.join(", ")
                    ),
                );
            };
            check(owner.name != m.name, &field, "names the modality itself")?;
            check(
                owner.kind() == m.kind(),
                &field,
                &format!(
                    "is `{name}`, whose kind is {}, and `{}` is {}: an encoder reads inputs of its own kind",
                    owner.kind(),
                    m.name,
                    m.kind()
                ),
            )?;
            check(
                owner.share_encoder.is_none(),
                &field,
                &format!(
                    "is `{name}`, which shares an encoder itself: name the modality that owns it"
                ),
            )?;
        }
        Ok(())
    }

    /// Weak supervision's settings.
    pub(super) fn check_data(&self) -> Result<()> {
        let d = &self.data;
        check(
            d.paired_fraction.is_finite() && d.paired_fraction > 0.0 && d.paired_fraction <= 1.0,
            "data.paired_fraction",
            "must be in (0, 1]",
        )?;
        if let Some(s) = d.paired_share {
            check(
                s.is_finite() && s > 0.0 && s < 1.0 && d.paired_fraction < 1.0,
                "data.paired_share",
                "must be in (0, 1), with data.paired_fraction below 1",
            )?;
            check(
                d.unpaired != Unpaired::Drop,
                "data.paired_share",
                "has no unpaired items to share with under unpaired = \"drop\"",
            )?;
        }
        if let Some(st) = &d.self_training {
            check(
                d.paired_fraction < 1.0 && d.unpaired != Unpaired::Drop,
                "data.self_training",
                "fills in unpaired items: needs data.paired_fraction below 1 and unpaired items kept (not \"drop\")",
            )?;
            check(
                st.from_epoch >= 1,
                "data.self_training.from_epoch",
                "counts epochs from 1",
            )?;
            check(
                st.min_confidence.is_finite()
                    && st.min_confidence > 0.0
                    && st.min_confidence <= 1.0,
                "data.self_training.min_confidence",
                "must be in (0, 1]",
            )?;
            check(
                (1..=64).contains(&st.draws),
                "data.self_training.draws",
                "must be in 1..=64",
            )?;
            check(
                self.modalities
                    .iter()
                    .any(|m| matches!(m.kind(), ModalityKind::Text | ModalityKind::Label)),
                "data.self_training",
                "fills in captions and labels: the model has neither",
            )?;
        }
        if let Unpaired::Only(name) = &d.unpaired {
            check(
                self.modality(name).is_some(),
                "data.unpaired",
                &format!("names no modality `{name}` (give \"random\", \"first\", \"alternate\" or a modality's name)"),
            )?;
        }
        self.check_copies()
    }

    /// `data.mask_side` and `data.edges`: how the vision copies are made.
    fn check_copies(&self) -> Result<()> {
        let d = &self.data;
        let vision = matches!(d.dataset, DatasetKind::Vision(_));
        for (set, field) in [
            (d.mask_side.is_some(), "data.mask_side"),
            (!d.edges.is_luminance(), "data.edges"),
        ] {
            check(
                !set || vision,
                field,
                "sets how the vision copies are made: only the vision datasets have them",
            )?;
        }
        check(
            d.mask_side != Some(0),
            "data.mask_side",
            "must be at least 1 (pixels)",
        )
    }
}
