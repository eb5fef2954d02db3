//! Config parsing and validation tests.

use super::*;

/// The one-line error for `text` read as the config file `file`.
fn refusal(text: &str, file: &str) -> String {
    TrainConfig::from_toml_str(text, Path::new(file))
        .unwrap_err()
        .to_string()
}

#[test]
fn toml_round_trip() {
    let c = TrainConfig::tiny(DatasetKind::Mnist);
    let s = c.to_toml();
    assert_eq!(
        TrainConfig::from_toml_str(&s, Path::new("x.toml")).unwrap(),
        c
    );
}

#[test]
fn core_sharing_defaults_to_a_core_per_shard_and_reads_both_names() {
    let c = TrainConfig::tiny(DatasetKind::Mnist);
    assert_eq!(c.optim.core_sharing, CoreSharing::CorePerShard);
    // Configs written before the field existed read as the default.
    let old = c
        .to_toml()
        .replace("core_sharing = \"core-per-shard\"\n", "");
    assert!(!old.contains("core_sharing"));
    let read = TrainConfig::from_toml_str(&old, Path::new("c.toml")).unwrap();
    assert_eq!(read.optim.core_sharing, CoreSharing::CorePerShard);
    let shared = c.to_toml().replace(
        "core_sharing = \"core-per-shard\"",
        "core_sharing = \"shared-kernel-pool\"",
    );
    let read = TrainConfig::from_toml_str(&shared, Path::new("c.toml")).unwrap();
    assert_eq!(read.optim.core_sharing, CoreSharing::SharedKernelPool);
    let bad = c.to_toml().replace("core-per-shard", "one-core");
    let e = refusal(&bad, "c.toml");
    assert!(e.contains("one-core") && e.contains("c.toml"), "{e}");
    // The same names on the command line (`bench --core-sharing`).
    assert_eq!(
        CoreSharing::parse("shared-kernel-pool").unwrap(),
        CoreSharing::SharedKernelPool
    );
    let e = CoreSharing::parse("one-core").unwrap_err().to_string();
    assert!(
        e.contains("one-core") && e.contains("core-per-shard"),
        "{e}"
    );
}

#[test]
fn bad_values_name_the_field() {
    let mut c = TrainConfig::tiny(DatasetKind::Mnist);
    c.optim.lr = -1.0;
    let e = refusal(&c.to_toml(), "c.toml");
    assert!(e.contains("optim.lr") && e.contains("c.toml"), "{e}");
    let e = refusal("seed = 1\n[model\n", "c.toml");
    assert!(e.contains("c.toml") && !e.contains('\n'), "{e}");
    let bad = c.to_toml().replace("epochs = 1", "epochs = 1\nepochz = 3");
    let e = refusal(&bad, "c.toml");
    assert!(e.contains("epochz"), "{e}");
    // Text models: every kind round-trips; a transformer's heads must
    // divide its width.
    for text in [
        TextModel::Lstm {
            embed: 8,
            hidden: 16,
            bidirectional: true,
        },
        TextModel::XLstm {
            embed: 8,
            hidden: 16,
        },
        TextModel::Transformer {
            d_model: 16,
            heads: 4,
            layers: 2,
            ff: 32,
        },
        TextModel::MultiHot { hidden: 32 },
    ] {
        let mut t = TrainConfig::tiny(DatasetKind::Mnist);
        t.modalities[1].expert = ExpertConfig::Text { model: text };
        let back = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml")).unwrap();
        assert_eq!(
            back.modalities[1].expert,
            ExpertConfig::Text { model: text }
        );
    }
    let mut t = TrainConfig::tiny(DatasetKind::Mnist);
    t.modalities[1].expert = ExpertConfig::Text {
        model: TextModel::Transformer {
            d_model: 10,
            heads: 4,
            layers: 1,
            ff: 8,
        },
    };
    let e = refusal(&t.to_toml(), "t.toml");
    assert!(e.contains("modalities.text.model.heads"), "{e}");
    // A conv model's width cap round-trips, and may not be below its
    // first layer's width; configs without it still read.
    let conv = |max_channels| ImageModel::Conv {
        channels: 8,
        hidden: 16,
        max_channels,
        refine: false,
        levels: Levels::Off,
        holes: None,
    };
    let image = |model| ExpertConfig::Image {
        model,
        likelihood: ImageLikelihood::Bernoulli,
    };
    let mut t = TrainConfig::tiny(DatasetKind::Mnist);
    t.modalities[0].expert = image(conv(Some(16)));
    let back = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml")).unwrap();
    assert_eq!(back.modalities[0].expert, image(conv(Some(16))));
    t.modalities[0].expert = image(conv(None));
    assert!(!t.to_toml().contains("max_channels"));
    t.modalities[0].expert = image(conv(Some(4)));
    let e = refusal(&t.to_toml(), "t.toml");
    assert!(e.contains("modalities.image.model.max_channels"), "{e}");
    // `refine` round-trips and is left out when off.
    t.modalities[0].expert = image(ImageModel::Conv {
        channels: 8,
        hidden: 16,
        max_channels: None,
        refine: true,
        levels: Levels::Off,
        holes: None,
    });
    assert!(t.to_toml().contains("refine = true"));
    let back = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml")).unwrap();
    assert_eq!(back.modalities[0].expert, t.modalities[0].expert);
    t.modalities[0].expert = image(conv(None));
    assert!(!t.to_toml().contains("refine"));
    // `holes` names the level of a hole; left out when off; a level past
    // 255 is refused with the field named.
    let holes = ImageModel::Conv {
        channels: 8,
        hidden: 16,
        max_channels: None,
        refine: false,
        levels: Levels::Off,
        holes: Some(128),
    };
    t.modalities[0].expert = image(holes);
    assert!(t.to_toml().contains("holes = 128"));
    let back = TrainConfig::from_toml_str(&t.to_toml(), Path::new("t.toml")).unwrap();
    assert_eq!(back.modalities[0].expert, image(holes));
    let e = refusal(&t.to_toml().replace("holes = 128", "holes = 300"), "t.toml");
    assert!(e.contains("holes") && e.contains("t.toml"), "{e}");
    t.modalities[0].expert = image(conv(None));
    assert!(!t.to_toml().contains("holes"));
}

#[test]
fn phases_schedule_the_loss_and_are_checked() {
    let base = TrainConfig::tiny(DatasetKind::Mnist);
    let text = format!(
        "{}\n[adversarial]\nloss = \"non-saturating\"\n\n[[phases]]\nname = \"vae\"\nepochs = 2\n\n[[phases]]\nname = \"refine\"\nepochs = 1\nlr = 0.0005\nloss = {{ adversarial_weight = 0.5, beta = 2.0 }}\n",
        base.to_toml().replace("epochs = 1", "epochs = 3")
    );
    let c = TrainConfig::from_toml_str(&text, Path::new("p.toml")).unwrap();
    assert_eq!(c.phases.len(), 2);
    assert_eq!(
        c.adversarial.as_ref().unwrap().loss,
        AdversarialLoss::NonSaturating
    );
    assert_eq!(c.phase_at(1).unwrap().1.name, "vae");
    assert_eq!(c.phase_at(2).unwrap().1.name, "refine");
    assert!(c.phase_at(3).is_none());
    // `--epochs` cuts the phases off, or lets the last one run on.
    let epochs = |n: usize| {
        let mut d = c.clone();
        d.set_epochs(n);
        d.validate().unwrap();
        let e: Vec<_> = d
            .phases
            .iter()
            .map(|p| (p.name.clone(), p.epochs))
            .collect();
        (d.optim.epochs, e)
    };
    let (vae, refine) = (String::from("vae"), String::from("refine"));
    assert_eq!(epochs(1), (1, vec![(vae.clone(), 1)]));
    assert_eq!(epochs(2), (2, vec![(vae.clone(), 2)]));
    assert_eq!(epochs(3), (3, vec![(vae.clone(), 2), (refine.clone(), 1)]));
    assert_eq!(epochs(5), (5, vec![(vae, 2), (refine, 3)]));
    assert_eq!(c.loss_at(0), c.loss);
    let l = c.loss_at(2);
    assert_eq!((l.adversarial_weight, l.beta), (0.5, 2.0));
    assert_eq!(c.weights_at(2), c.weights_at(0));
    assert_eq!((c.lr_at(0), c.lr_at(2)), (c.optim.lr, 0.0005));
    assert!(c.uses_adversary());
    // Round trip through TOML (as saved beside the weights).
    assert_eq!(
        TrainConfig::from_toml_str(&c.to_toml(), Path::new("x")).unwrap(),
        c
    );

    let bad = |edit: &dyn Fn(&mut TrainConfig), field: &str| {
        let mut b = c.clone();
        edit(&mut b);
        let e = refusal(&b.to_toml(), "p.toml");
        assert!(e.contains(field) && e.contains("p.toml"), "{field}: {e}");
    };
    bad(&|b| b.optim.epochs = 4, "optim.epochs");
    bad(&|b| b.adversarial = None, "adversarial");
    bad(
        &|b| b.phases[1].loss.perceptual_weight = Some(1.0),
        "perceptual",
    );
    bad(
        &|b| b.phases[1].loss.beta = Some(-1.0),
        "phases[1].loss.beta",
    );
    bad(&|b| b.phases[0].epochs = 0, "phases[0].epochs");
    bad(&|b| b.phases[1].lr = Some(2.0), "phases[1].lr");
    bad(&|b| b.phases[0].name = " ".into(), "phases[0].name");
    let e = refusal(&text.replace("beta = 2.0", "betta = 2.0"), "p.toml");
    assert!(e.contains("betta"), "{e}");
}

#[test]
fn schedules_and_alignments_by_name() {
    let base = TrainConfig::tiny(DatasetKind::Mnist).to_toml();
    let text = base
        .replace("kl_anneal = \"linear\"", "kl_anneal = \"cyclical\"")
        .replace("align = \"jmvae\"", "align = \"image-text-kl\"")
        .replace("align_anneal = \"linear\"", "align_anneal = \"sigmoid\"")
        .replace("align_anneal_steps = 0", "align_anneal_steps = 7");
    let c = TrainConfig::from_toml_str(&text, Path::new("s.toml")).unwrap();
    assert_eq!(c.loss.kl_anneal, Anneal::Cyclical);
    assert_eq!(c.loss.align, Alignment::ImageTextKl);
    assert_eq!(c.loss.align_anneal, Anneal::Sigmoid);
    assert_eq!(c.loss.align_anneal_steps, 7);
    let e = refusal(&text.replace("\"cyclical\"", "\"cosine\""), "s.toml");
    assert!(e.contains("cosine") && e.contains("s.toml"), "{e}");
}

#[test]
fn the_two_modality_form_reads_as_image_and_text_modalities() {
    let legacy = r#"seed = 1
[model]
latent = 8
max_len = 10
image = { kind = "mlp", hidden = 32 }
image_likelihood = { kind = "laplace", scale = 0.1 }
text = { kind = "gru", embed = 8, hidden = 16 }
[optim]
lr = 0.001
batch_size = 16
epochs = 2
[data]
dataset = "mnist"
val_size = 16
caption_seed = 0
[loss]
beta = 1.0
kl_anneal_steps = 0
image_weight = 1.5
text_weight = 20.0
cross_weight = 0.5
[[phases]]
name = "a"
epochs = 1
[[phases]]
name = "b"
epochs = 1
loss = { text_weight = 5.0, cross_weight = 0.25 }
"#;
    let c = TrainConfig::from_toml_str(legacy, Path::new("old.toml")).unwrap();
    let names: Vec<&str> = c.modalities.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["image", "text"]);
    assert_eq!(
        c.modalities[0].expert,
        ExpertConfig::Image {
            model: ImageModel::Mlp { hidden: 32 },
            likelihood: ImageLikelihood::Laplace {
                scale: 0.1,
                learned: false
            },
        }
    );
    assert_eq!(
        (c.modalities[0].weight, c.modalities[0].cross_weight),
        (1.5, 0.5)
    );
    assert_eq!(
        (c.modalities[1].weight, c.modalities[1].cross_weight),
        (20.0, 1.0)
    );
    // The phase's weights apply by name.
    assert_eq!(c.weights_at(0).weight, vec![1.5, 20.0]);
    assert_eq!(c.weights_at(1).weight, vec![1.5, 5.0]);
    assert_eq!(c.weights_at(1).cross, vec![0.25, 1.0]);
    // Written in the new form, and read back the same.
    let s = c.to_toml();
    assert!(
        s.contains("[[modalities]]") && !s.contains("image_weight"),
        "{s}"
    );
    assert_eq!(
        TrainConfig::from_toml_str(&s, Path::new("new.toml")).unwrap(),
        c
    );
    // Both forms at once, or half of the old one, are refused.
    let both = format!("{s}\n").replace(
        "[model]\n",
        "[model]\ntext = { kind = \"gru\", embed = 8, hidden = 16 }\n",
    );
    let e = refusal(&both, "b.toml");
    assert!(e.contains("not both") && e.contains("b.toml"), "{e}");
    let half = legacy.replace("text = { kind = \"gru\", embed = 8, hidden = 16 }\n", "");
    let e = refusal(&half, "h.toml");
    assert!(e.contains("model.text"), "{e}");
    let stray = s.replace("[loss]\n", "[loss]\nimage_weight = 2.0\n");
    let e = refusal(&stray, "s.toml");
    assert!(e.contains("loss.image_weight"), "{e}");
}

/// `share_encoder` names another modality of the same kind that owns its
/// encoder; it reads and writes back, and anything else is refused by name.
#[test]
fn shared_encoders_name_an_owner_of_the_same_kind() {
    let with = |share: &[(&str, &str)]| {
        let mut c = TrainConfig::tiny(DatasetKind::parse("vision").unwrap());
        for name in ["grey", "masked"] {
            let mut m = c.modalities[0].clone();
            m.name = name.into();
            m.weight = 0.0;
            c.modalities.push(m);
        }
        for (m, owner) in share {
            let at = c.modalities.iter().position(|x| x.name == *m).unwrap();
            c.modalities[at].share_encoder = Some(owner.to_string());
        }
        TrainConfig::from_toml_str(&c.to_toml(), Path::new("v.toml"))
    };
    let c = with(&[("masked", "image")]).unwrap();
    assert_eq!(c.modalities[3].share_encoder.as_deref(), Some("image"));
    assert!(c.to_toml().contains("share_encoder = \"image\""));
    assert!(with(&[])
        .unwrap()
        .modalities
        .iter()
        .all(|m| m.share_encoder.is_none()));
    assert!(!with(&[]).unwrap().to_toml().contains("share_encoder"));
    for (share, want) in [
        (
            vec![("masked", "nope")],
            "`nope`, which is not a modality (image, text, grey, masked)",
        ),
        (vec![("masked", "masked")], "names the modality itself"),
        (
            vec![("text", "image")],
            "whose kind is image, and `text` is text",
        ),
        (
            vec![("masked", "grey"), ("grey", "image")],
            "`grey`, which shares an encoder itself",
        ),
    ] {
        let e = with(&share).unwrap_err().to_string();
        assert!(
            e.contains(want) && e.contains("v.toml") && e.contains("share_encoder"),
            "{e}"
        );
    }
}

/// `data.mask_side` and `data.edges` set how a vision dataset's copies
/// are made, and only a vision dataset's.
#[test]
fn the_vision_copies_are_set_on_vision_datasets_only() {
    let read = |dataset: &str, edit: &dyn Fn(&mut TrainConfig)| {
        let mut c = TrainConfig::tiny(DatasetKind::parse(dataset).unwrap());
        edit(&mut c);
        TrainConfig::from_toml_str(&c.to_toml(), Path::new("d.toml"))
    };
    let small = |c: &mut TrainConfig| {
        c.data.mask_side = Some(12);
        c.data.edges = Edges::Colour;
    };
    let c = read("vision", &small).unwrap();
    assert_eq!(
        c.data.copies(),
        Copies {
            mask_side: Some(12),
            edges: Edges::Colour
        }
    );
    assert!(c.to_toml().contains("mask_side = 12") && c.to_toml().contains("edges = \"colour\""));
    let plain = read("vision", &|_| {}).unwrap();
    assert_eq!(plain.data.copies(), Copies::default());
    assert!(!plain.to_toml().contains("mask_side") && !plain.to_toml().contains("edges ="));
    let refused = |dataset: &str, edit: &dyn Fn(&mut TrainConfig), field: &str, want: &str| {
        let e = read(dataset, edit).unwrap_err().to_string();
        assert!(
            e.contains(field) && e.contains(want) && e.contains("d.toml"),
            "{e}"
        );
    };
    refused(
        "mnist",
        &|c| c.data.mask_side = Some(12),
        "data.mask_side",
        "only the vision datasets",
    );
    refused(
        "shapes-l3",
        &|c| c.data.edges = Edges::Colour,
        "data.edges",
        "only the vision datasets",
    );
    refused(
        "vision",
        &|c| c.data.mask_side = Some(0),
        "data.mask_side",
        "at least 1",
    );
}

#[test]
fn modalities_and_weak_supervision_are_checked() {
    let three = || {
        let mut c = TrainConfig::tiny(DatasetKind::Mnist);
        c.modalities.push(ModalityConfig::new(
            "digit",
            ExpertConfig::Label {
                model: LabelModel {
                    classes: 10,
                    hidden: 8,
                },
            },
        ));
        c
    };
    let ok = |c: &TrainConfig| TrainConfig::from_toml_str(&c.to_toml(), Path::new("m.toml"));
    let c = ok(&three()).unwrap();
    assert_eq!(c.modalities[2].kind(), ModalityKind::Label);
    let bad = |edit: &dyn Fn(&mut TrainConfig), field: &str| {
        let mut c = three();
        edit(&mut c);
        let e = ok(&c).unwrap_err().to_string();
        assert!(
            e.contains(field) && e.contains("m.toml") && !e.contains('\n'),
            "{field}: {e}"
        );
    };
    bad(
        &|c| c.modalities[2].name = "text".into(),
        "`text` is given twice",
    );
    bad(
        &|c| c.modalities[2].name = "a/b".into(),
        "modalities[2].name",
    );
    bad(&|c| c.modalities.clear(), "modalities");
    bad(&|c| c.modalities[1].weight = -1.0, "modalities.text.weight");
    bad(
        &|c| c.modalities.iter_mut().for_each(|m| m.weight = 0.0),
        "at least one modality needs a weight > 0",
    );
    bad(
        &|c| {
            c.modalities[2].expert = ExpertConfig::Label {
                model: LabelModel {
                    classes: 1,
                    hidden: 8,
                },
            }
        },
        "modalities.digit.model.classes",
    );
    bad(&|c| c.data.paired_fraction = 0.0, "data.paired_fraction");
    bad(&|c| c.data.paired_fraction = 1.5, "data.paired_fraction");
    bad(
        &|c| c.data.unpaired = Unpaired::Only("audio".into()),
        "data.unpaired",
    );
    // Self-training fills in unpaired items, so it needs some.
    let st = SelfTraining {
        from_epoch: 2,
        min_confidence: 0.9,
        draws: 8,
    };
    fn weak(st: &SelfTraining, edit: impl Fn(&mut SelfTraining)) -> impl Fn(&mut TrainConfig) {
        let mut st = st.clone();
        edit(&mut st);
        move |c: &mut TrainConfig| {
            c.data.paired_fraction = 0.1;
            c.data.self_training = Some(st.clone());
        }
    }
    bad(
        &|c| c.data.self_training = Some(st.clone()),
        "data.self_training",
    );
    bad(
        &|c| {
            weak(&st, |_| {})(c);
            c.data.unpaired = Unpaired::Drop;
        },
        "data.self_training",
    );
    bad(
        &weak(&st, |s| s.from_epoch = 0),
        "data.self_training.from_epoch",
    );
    bad(
        &weak(&st, |s| s.min_confidence = 0.0),
        "data.self_training.min_confidence",
    );
    bad(&weak(&st, |s| s.draws = 0), "data.self_training.draws");
    // Which epoch best/ keeps, by name.
    let mut c = three();
    c.optim.best = BestEpoch::Last;
    assert!(c.to_toml().contains("best = \"last\""));
    assert_eq!(ok(&c).unwrap(), c);
    let e = refusal(
        &c.to_toml().replace("best = \"last\"", "best = \"first\""),
        "m.toml",
    );
    assert!(e.contains("m.toml") && e.contains("first"), "{e}");
    let mut c = three();
    weak(&st, |_| {})(&mut c);
    assert!(c.to_toml().contains("min_confidence = 0.9"));
    assert_eq!(ok(&c).unwrap(), c);
    // Terms that compare an image and a caption, or two modalities.
    bad(
        &|c| c.loss.unimodal_target = UnimodalTarget::Conditional,
        "loss.unimodal_target",
    );
    bad(
        &|c| {
            c.loss.align = Alignment::ImageTextKl;
            c.loss.align_weight = 1.0;
        },
        "loss.align",
    );
    bad(
        &|c| {
            c.modalities.remove(1);
            c.loss.cycle_weight = 1.0;
        },
        "loss.cycle_weight",
    );
    bad(
        &|c| {
            c.model.fusion = Fusion::Moe;
            c.loss.sampled_subsets = 2;
        },
        "loss.sampled_subsets",
    );
    // A phase may only weigh modalities the model has.
    let mut c = three();
    c.optim.epochs = 1;
    c.phases.push(Phase {
        name: "p".into(),
        epochs: 1,
        lr: None,
        loss: LossOverride {
            weights: [("sound".to_string(), 2.0)].into(),
            ..LossOverride::default()
        },
    });
    let e = ok(&c).unwrap_err().to_string();
    assert!(e.contains("phases[0].loss") && e.contains("sound"), "{e}");
    // Weak supervision round-trips; every policy by name.
    for (u, name) in [
        (Unpaired::Random, "random"),
        (Unpaired::First, "first"),
        (Unpaired::Alternate, "alternate"),
        (Unpaired::Drop, "drop"),
        (Unpaired::Only("digit".into()), "digit"),
    ] {
        let mut c = three();
        c.data.paired_fraction = 0.1;
        c.data.unpaired = u.clone();
        let s = c.to_toml();
        assert!(s.contains("paired_fraction = 0.1"), "{s}");
        assert!(
            u == Unpaired::Random || s.contains(&format!("unpaired = \"{name}\"")),
            "{s}"
        );
        assert_eq!(ok(&c).unwrap(), c);
    }
}
