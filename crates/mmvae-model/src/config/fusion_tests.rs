//! The fusions' names and the settings each of them refuses.

use super::*;

/// The error a config is refused with when read back from `c.toml`.
fn refusal(c: &TrainConfig) -> String {
    TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn fusion_names_and_their_constraints() {
    let mut c = TrainConfig::tiny(DatasetKind::Mnist);
    for (f, name) in [
        (Fusion::Poe, "poe"),
        (Fusion::Moe, "moe"),
        (Fusion::MoPoe, "mopoe"),
        (Fusion::Concat, "concat"),
        (Fusion::Attention, "attention"),
        (Fusion::Mvtcae, "mvtcae"),
    ] {
        c.model.fusion = f;
        let s = c.to_toml();
        assert!(s.contains(&format!("fusion = \"{name}\"")), "{s}");
        assert_eq!(
            TrainConfig::from_toml_str(&s, Path::new("c.toml")).unwrap(),
            c
        );
    }
    // The mixtures' terms always reconstruct both modalities.
    c.model.fusion = Fusion::MoPoe;
    c.loss.unimodal_target = UnimodalTarget::Observed;
    let e = refusal(&c);
    assert!(e.contains("loss.unimodal_target"), "{e}");
    // cross_weight only has a meaning for poe with "all".
    c.loss.unimodal_target = UnimodalTarget::All;
    c.modalities[0].cross_weight = 0.5;
    let e = refusal(&c);
    assert!(e.contains("modalities.image.cross_weight"), "{e}");
    c.model.fusion = Fusion::Poe;
    assert!(TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml")).is_ok());
    // Modality dropout is for the learned fusions; attention cuts each
    // expert's output into four tokens.
    c.loss.modality_dropout = 0.3;
    let e = refusal(&c);
    assert!(e.contains("loss.modality_dropout"), "{e}");
    c.model.fusion = Fusion::Attention;
    assert!(TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml")).is_ok());
    c.model.latent = 3;
    let e = refusal(&c);
    assert!(e.contains("model.latent"), "{e}");
    c.model.latent = 8;
    c.loss.modality_dropout = 0.0;
    c.model.fusion = Fusion::Poe;
    // Importance-weighted bounds are for the mixture of experts.
    c.modalities[0].cross_weight = 1.0;
    c.loss.objective = Objective::Dreg;
    let e = refusal(&c);
    assert!(e.contains("loss.objective"), "{e}");
    c.model.fusion = Fusion::Moe;
    c.loss.k = 0;
    let e = refusal(&c);
    assert!(e.contains("loss.k"), "{e}");
    c.loss.k = 8;
    assert!(TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml")).is_ok());
    mvtcae_constraints();
}

/// MVTCAE's α belongs to it and lies in [0, 1]; it has no caption-only
/// draw for the critics and the caption cycle to judge, and no subsets to
/// sample.
fn mvtcae_constraints() {
    let refused = |c: &TrainConfig, field: &str| {
        let e = refusal(c);
        assert!(e.contains(field) && e.contains("c.toml"), "{field}: {e}");
    };
    let mut c = TrainConfig::tiny(DatasetKind::Mnist);
    c.loss.mvtcae_alpha = Some(0.3);
    refused(&c, "loss.mvtcae_alpha");
    c.model.fusion = Fusion::Mvtcae;
    let ok = TrainConfig::from_toml_str(&c.to_toml(), Path::new("c.toml")).unwrap();
    assert_eq!(ok.loss.mvtcae_alpha(), 0.3);
    assert!(c.to_toml().contains("mvtcae_alpha = 0.3"));
    c.loss.mvtcae_alpha = None;
    assert!(!c.to_toml().contains("mvtcae_alpha"));
    assert_eq!(c.loss.mvtcae_alpha(), LossConfig::MVTCAE_ALPHA);
    for bad in [1.5, -0.1, f32::NAN] {
        c.loss.mvtcae_alpha = Some(bad);
        refused(&c, "loss.mvtcae_alpha");
    }
    c.loss.mvtcae_alpha = None;
    for (field, set) in [
        (
            "loss.cycle_weight",
            &(|c: &mut TrainConfig| c.loss.cycle_weight = 0.5) as &dyn Fn(&mut TrainConfig),
        ),
        ("loss.sampled_subsets", &|c: &mut TrainConfig| {
            c.loss.sampled_subsets = 1
        }),
        ("loss.unimodal_target", &|c: &mut TrainConfig| {
            c.loss.unimodal_target = UnimodalTarget::Observed
        }),
    ] {
        let mut bad = c.clone();
        set(&mut bad);
        refused(&bad, field);
    }
}
