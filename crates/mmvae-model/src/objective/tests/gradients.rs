//! Gradients of every objective, fusion and model family against central differences.

use super::*;

/// Every parameter's gradient of the loss against central differences
/// of step `h`.
fn gradient_check_with(s: &Setup, hb: &HostBatch, h: f32) {
    let _rng = testutil::rng_lock();
    let ad = Device::flex().autodiff();
    ad.seed(11);
    let model = s.init(&ad);
    let plan = s.plan(&model);
    ad.seed(5);
    let out = model.loss(&hb.to_device(&ad), &s.loss, &plan, 0.7);
    let ad_value = scalar(out.total.clone());
    let grads = out.total.backward();
    let mut gv = GradsOf(&grads, Vec::new());
    model.visit(&mut gv);
    let analytic = gv.1;

    let plain = Device::flex();
    let base = model.valid();
    let batch = hb.to_device(&plain);
    let loss_of = |m: &Mvae| {
        plain.seed(5);
        scalar(m.loss(&batch, &s.loss, &plan, 0.7).total)
    };
    assert!(
        (loss_of(&base) - ad_value).abs() < 1e-4 * ad_value.abs().max(1.0),
        "{} vs {ad_value}",
        loss_of(&base)
    );
    let (mut checked, mut bad) = (0, Vec::new());
    for (target, g) in analytic.iter().enumerate() {
        // Three elements spread over each parameter tensor.
        for index in [0, g.len() / 2, g.len() - 1] {
            let shifted = |h: f32| {
                base.clone().map(&mut Perturb {
                    target,
                    index,
                    h,
                    seen: 0,
                })
            };
            let fd = (loss_of(&shifted(h)) - loss_of(&shifted(-h))) / (2.0 * h as f64);
            let an = g[index] as f64;
            checked += 1;
            if (fd - an).abs() > 0.05 * fd.abs().max(an.abs()) + 1e-2 {
                bad.push((target, index, an, fd));
            }
        }
    }
    assert!(checked >= 60, "only {checked} elements checked");
    // ReLU kinks can make an isolated central difference disagree.
    assert!(
        bad.len() * 50 <= checked,
        "{} of {checked} gradients disagree with finite differences: {bad:?}",
        bad.len()
    );
}

fn gradient_check(s: Setup) {
    gradient_check_with(&s, &s.host(), 1e-2);
}

#[test]
fn gradients_match_finite_differences_mlp_and_conv() {
    gradient_check(Setup::image_text());
    for refine in [false, true] {
        gradient_check(Setup::image_text().image(ImageModel::Conv {
            channels: 2,
            hidden: 6,
            max_channels: None,
            refine,
            levels: Levels::Off,
            holes: None,
        }));
    }
    // The levels layer. The levels an image takes are a step function of
    // it, so there is no caption cycle (which re-encodes generated images);
    // a smaller step, as the random test pixels take nearly every level and
    // a weight's change moves every item's hidden units, over more kinks.
    let mut levels = Setup::image_text().image(ImageModel::Conv {
        channels: 2,
        hidden: 6,
        max_channels: None,
        refine: false,
        levels: Levels::Counts,
        holes: None,
    });
    levels.loss.cycle_weight = 0.0;
    gradient_check_with(&levels, &levels.host(), 3e-3);
}

#[test]
fn gradients_match_finite_differences_for_each_text_model() {
    for text in [
        TextModel::Lstm {
            embed: 4,
            hidden: 5,
            bidirectional: false,
        },
        TextModel::Lstm {
            embed: 4,
            hidden: 5,
            bidirectional: true,
        },
        TextModel::XLstm {
            embed: 4,
            hidden: 5,
        },
        TextModel::MultiHot { hidden: 6 },
        TextModel::Transformer {
            d_model: 4,
            heads: 2,
            layers: 1,
            ff: 6,
        },
    ] {
        gradient_check(Setup::image_text().text(text));
    }
}

#[test]
fn gradients_match_finite_differences_with_image_only_latent_and_scales() {
    let mut s = Setup::image_text();
    s.cfg.private_latent = 2;
    gradient_check(s.clone());
    gradient_check(s.fusion(Fusion::MoPoe));
    for lk in [
        ImageLikelihood::Gaussian {
            scale: 0.3,
            learned: true,
        },
        ImageLikelihood::Laplace {
            scale: 0.3,
            learned: true,
        },
        ImageLikelihood::Gaussian {
            scale: 0.5,
            learned: false,
        },
    ] {
        let mut s = Setup::image_text();
        s.modalities[0].expert = ExpertConfig::Image {
            model: ImageModel::Mlp { hidden: 6 },
            likelihood: lk,
        };
        gradient_check(s);
    }
}

#[test]
fn gradients_match_finite_differences_for_each_alignment_and_objective() {
    for align in [Alignment::ImageTextKl, Alignment::Mse, Alignment::InfoNce] {
        let mut s = Setup::image_text();
        s.loss.align = align;
        s.loss.align_weight = 2.0;
        gradient_check(s);
    }
    let mut s = Setup::image_text();
    s.loss.unimodal_target = UnimodalTarget::Conditional;
    s.modalities[0].cross_weight = 1.0;
    gradient_check(s);
    let mut s = Setup::image_text().fusion(Fusion::Moe);
    s.modalities[0].cross_weight = 1.0;
    gradient_check(s.clone());
    s.loss.objective = Objective::Iwae;
    s.loss.k = 3;
    gradient_check(s);
    for (fusion, dropout) in [(Fusion::Concat, 0.0), (Fusion::Attention, 0.5)] {
        let mut s = Setup::image_text().fusion(fusion);
        s.loss.modality_dropout = dropout;
        gradient_check(s);
    }
}

#[test]
fn gradients_match_finite_differences_with_three_modalities_for_each_fusion() {
    for fusion in [
        Fusion::Poe,
        Fusion::Moe,
        Fusion::MoPoe,
        Fusion::Mvtcae,
        Fusion::Concat,
        Fusion::Attention,
    ] {
        let mut s = Setup::three(fusion);
        s.loss.align_weight = 0.5;
        let mut hb = s.host();
        // Item 1 has no caption, item 3 only its label.
        hb.present[3 + 1] = 0.0;
        hb.present[9] = 0.0;
        hb.present[9 + 1] = 0.0;
        gradient_check_with(&s, &hb, 1e-2);
    }
    let mut s = Setup::three(Fusion::Poe);
    s.loss.sampled_subsets = 1;
    s.loss.unimodal_target = UnimodalTarget::Observed;
    gradient_check(s);
}
