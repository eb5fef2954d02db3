//! The terms against closed forms and each other: IWAE, DReG, learned fusions, alignment, mixtures, the conditional objective, the image-only latent.

use super::*;

#[test]
fn iwae_with_one_sample_is_the_moe_elbo() {
    let _rng = testutil::rng_lock();
    let dev = Device::flex();
    dev.seed(6);
    let mut s = Setup::image_text().fusion(Fusion::Moe);
    s.modalities[0].cross_weight = 1.0;
    let m = s.init(&dev);
    let elbo_plan = s.plan(&m);
    let mut iwae = s.clone();
    iwae.loss.objective = Objective::Iwae;
    iwae.loss.k = 1;
    let batch = s.host().to_device(&dev);
    let b = 4;
    let e = Tensor::<2>::random([3 * b, 4], Distribution::Normal(0.0, 1.0), &dev);
    let a = m.loss_with_noise(&batch, &s.loss, &elbo_plan, 0.8, e.clone());
    let c = m.loss_with_noise(&batch, &iwae.loss, &elbo_plan, 0.8, e.narrow(0, b, 2 * b));
    let (a, c) = (a.terms.to_host(), c.terms.to_host());
    // The objective, the cross terms and the alignment agree (the ELBO
    // reports the joint term's NLLs and KL, which IWAE has not).
    for k in ["loss", "cross/image->text", "cross/text->image", "align"] {
        assert!(
            (a[k] - c[k]).abs() < 1e-3 * a[k].abs().max(1.0),
            "{k}: {a:?} vs {c:?}"
        );
    }
}

#[test]
fn dreg_keeps_the_bound_and_the_decoder_gradients_and_changes_the_encoders() {
    let _rng = testutil::rng_lock();
    let ad = Device::flex().autodiff();
    ad.seed(12);
    let mut s = Setup::image_text().fusion(Fusion::Moe);
    s.modalities[0].cross_weight = 1.0;
    s.loss.objective = Objective::Iwae;
    s.loss.k = 4;
    let mut dreg = s.clone();
    dreg.loss.objective = Objective::Dreg;
    let m = s.init(&ad);
    let plan = s.plan(&m);
    let batch = s.host().to_device(&ad);
    let eps = Tensor::<2>::random([2 * 4 * 4, 4], Distribution::Normal(0.0, 1.0), &ad);
    let run = |l: &LossConfig| {
        let out = m.loss_with_noise(&batch, l, &plan, 1.0, eps.clone());
        let v = scalar(out.total.clone());
        let g = out.total.backward();
        let of = |part: &dyn Fn(&mut GradsOf)| {
            let mut gv = GradsOf(&g, Vec::new());
            part(&mut gv);
            gv.1.concat()
        };
        let dec = of(&|gv| {
            m.image_expert().decoder.visit(gv);
            m.text_expert().decoder.visit(gv);
        });
        let enc = of(&|gv| {
            m.image_expert().encoder.visit(gv);
            m.text_expert().encoder.visit(gv);
        });
        (v, dec, enc)
    };
    let (vi, di, ei) = run(&s.loss);
    let (vd, dd, ed) = run(&dreg.loss);
    assert!((vi - vd).abs() < 1e-4 * vi.abs(), "{vi} vs {vd}");
    assert_eq!(di.len(), dd.len());
    for (x, y) in di.iter().zip(&dd) {
        assert!(
            (x - y).abs() <= 1e-4 + 1e-3 * x.abs().max(y.abs()),
            "decoder {x} vs {y}"
        );
    }
    let differ = ei
        .iter()
        .zip(&ed)
        .filter(|(x, y)| (*x - *y).abs() > 1e-3 * x.abs().max(y.abs()).max(1e-3))
        .count();
    assert!(
        differ * 2 > ei.len(),
        "only {differ} of {} encoder gradients differ",
        ei.len()
    );
}

#[test]
fn learned_fusion_posteriors_serve_inference_and_dropout_masks_the_joint() {
    let _rng = testutil::rng_lock();
    let dev = Device::flex();
    dev.seed(4);
    let mut s = Setup::image_text().fusion(Fusion::Concat);
    let m = s.init(&dev);
    let batch = s.host().to_device(&dev);
    let v = |g: Gaussian| g.mu.try_into_vec_as::<f32>().unwrap();
    // encode_image is the fusion network with the text masked out, not
    // the expert with the prior.
    let (qx, _) = m.image_experts(batch.images());
    let head = m.fusion_head.as_ref().unwrap();
    let any = Gaussian::new(qx.mu.zeros_like(), qx.logvar.zeros_like());
    let mask = Tensor::<2>::from_data(TensorData::new([1.0f32, 0.0].repeat(4), [4, 2]), &dev);
    let want = head.fuse(&[qx.clone(), any], &mask);
    assert_eq!(v(m.encode_image(batch.images())), v(want));
    assert_ne!(v(m.encode_image(batch.images())), v(qx.with_prior()));
    // With dropout the joint term changes (some items lose a modality),
    // the single-modality terms do not.
    let plan = s.plan(&m);
    let eps = Tensor::<2>::random([16, 4], Distribution::Normal(0.0, 1.0), &dev);
    let plain = m
        .loss_with_noise(&batch, &s.loss, &plan, 1.0, eps.clone().narrow(0, 0, 12))
        .terms
        .to_host();
    s.loss.modality_dropout = 0.99;
    let dropped = m
        .loss_with_noise(&batch, &s.loss, &plan, 1.0, eps)
        .terms
        .to_host();
    assert_ne!(
        plain["kl"], dropped["kl"],
        "joint KL unchanged under dropout"
    );
    assert_eq!(plain["cross/image->text"], dropped["cross/image->text"]);
    assert_eq!(plain["cross/text->image"], dropped["cross/text->image"]);
}

#[test]
fn info_nce_matches_a_hand_computed_case_and_skips_invalid_rows() {
    let dev = Device::flex();
    // Unit vectors at 0°, 90° and 180°; b = a, temperature 0.5.
    let a = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]], &dev);
    let all = Tensor::<1>::ones([3], &dev);
    let v = info_nce(a.clone(), a.clone(), 0.5, &all)
        .try_into_vec_as::<f32>()
        .unwrap();
    // Row 0 similarities [1, 0, −1] / 0.5 = [2, 0, −2]; symmetric, so
    // both directions give the same cross-entropy.
    let ce = |own: f32, all: &[f32]| -(own - all.iter().map(|x| x.exp()).sum::<f32>().ln());
    let want = [
        ce(2.0, &[2.0, 0.0, -2.0]),
        ce(2.0, &[0.0, 2.0, 0.0]),
        ce(2.0, &[-2.0, 0.0, 2.0]),
    ];
    for (g, w) in v.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{v:?} vs {want:?}");
    }
    // Row 1 invalid: rows 0 and 2 choose between themselves.
    let valid = Tensor::<1>::from_floats([1.0, 0.0, 1.0], &dev);
    let v = info_nce(a.clone(), a, 0.5, &valid)
        .try_into_vec_as::<f32>()
        .unwrap();
    for (g, w) in [v[0], v[2]]
        .iter()
        .zip([ce(2.0, &[2.0, -2.0]), ce(2.0, &[-2.0, 2.0])])
    {
        assert!((g - w).abs() < 1e-5, "{v:?}");
    }
}

#[test]
fn alignment_terms_are_the_named_divergences() {
    let _rng = testutil::rng_lock();
    let dev = Device::flex();
    dev.seed(2);
    let mut s = Setup::image_text();
    s.loss.cycle_weight = 0.0;
    let m = s.init(&dev);
    let plan = s.plan(&m);
    let batch = s.host().to_device(&dev);
    let qx = m.encode_image(batch.images());
    let qy = m.encode_caption(&batch);
    let (tokens, last) = batch.tokens();
    let qj = Gaussian::product_with_prior(&[
        m.image_experts(batch.images()).0,
        m.text_expert().encoder.forward(tokens, last),
    ]);
    let mean = |t: Tensor<1>| scalar(t.mean());
    let all = Tensor::<1>::ones([4], &dev);
    for (align, want) in [
        (Alignment::Jmvae, mean(qj.kl(&qx) + qj.kl(&qy))),
        (Alignment::ImageTextKl, mean(qx.kl(&qy))),
        (Alignment::Mse, mean(qx.moment_mse(&qy))),
        (
            Alignment::InfoNce,
            mean(info_nce(
                qx.mu.clone(),
                qy.mu.clone(),
                s.loss.temperature,
                &all,
            )),
        ),
    ] {
        s.loss.align = align;
        let got = m.loss(&batch, &s.loss, &plan, 1.0).terms.to_host()["align"] as f64;
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{align:?}: {got} vs {want}"
        );
        assert!(want > 0.0, "{align:?}");
    }
}

#[test]
fn mixture_objectives_relate_to_the_poe_terms() {
    let _rng = testutil::rng_lock();
    let mut s = Setup::image_text();
    s.loss.align_weight = 0.0;
    s.loss.cycle_weight = 0.0;
    s.modalities[0].cross_weight = 1.0;
    let dev = Device::flex();
    let eps = Tensor::<2>::random([12, 4], Distribution::Normal(0.0, 1.0), &dev);
    let total = |f: Fusion| {
        dev.seed(8);
        let s = s.clone().fusion(f);
        let m = s.init(&dev);
        let batch = s.host().to_device(&dev);
        scalar(
            m.loss_with_noise(&batch, &s.loss, &s.plan(&m), 0.9, eps.clone())
                .total,
        )
    };
    // MoPoE's stratified ELBO is the mean of the three subset ELBOs,
    // which PoE with every term reconstructing every modality sums.
    let (poe, mopoe, moe) = (total(Fusion::Poe), total(Fusion::MoPoe), total(Fusion::Moe));
    assert!(
        (mopoe - poe / 3.0).abs() < 1e-4 * poe.abs(),
        "{mopoe} vs {poe}/3"
    );
    assert!(
        moe.is_finite() && (moe - mopoe).abs() > 1e-3,
        "{moe} {mopoe}"
    );
}

#[test]
fn mvtcae_is_the_joint_elbo_with_the_total_correlation_kl() {
    let _rng = testutil::rng_lock();
    let dev = Device::flex();
    let s = Setup::three(Fusion::Mvtcae);
    let init = |s: &Setup| {
        dev.seed(10);
        s.init(&dev)
    };
    let model = init(&s);
    let batch = s.host().to_device(&dev);
    let eps = Tensor::<2>::random([16, 4], Distribution::Normal(0.0, 1.0), &dev);
    let beta = 0.8f32;
    let total = |m: &Mvae, t: &Setup| {
        scalar(
            m.loss_with_noise(&batch, &t.loss, &t.plan(m), beta, eps.clone())
                .total,
        )
    };
    let with_alpha = |alpha: f32| {
        let mut t = s.clone();
        t.loss.mvtcae_alpha = Some(alpha);
        total(&model, &t)
    };
    // With α = 0 it is the joint ELBO: β·KL(q(z|X) ‖ N(0, I)) plus the
    // reconstructions, the same draw as PoE's joint term alone (the same
    // weights: neither fusion has parameters of its own; PoE's three
    // report-only single-modality terms read the later noise blocks).
    let mut poe = s.clone().fusion(Fusion::Poe);
    poe.loss.unimodal_target = UnimodalTarget::None;
    let joint = total(&init(&poe), &poe);
    let zero = with_alpha(0.0);
    assert!(
        (zero - joint).abs() < 1e-5 * joint.abs(),
        "{zero} vs {joint}"
    );
    // Otherwise (M − α)/M of the reconstructions, and the KL split: 1 − α
    // to the prior, α/M to each modality's own posterior.
    let q = model.posterior_given(&batch, Subset::full(3));
    let kl_prior = scalar(q.kl_standard().mean());
    let kl_own: f64 = (0..3)
        .map(|m| {
            scalar(
                q.kl(&model.posterior_given(&batch, Subset::single(m)))
                    .mean(),
            )
        })
        .sum();
    let nll = zero - beta as f64 * kl_prior;
    let alpha = 0.4f64;
    let want =
        (3.0 - alpha) / 3.0 * nll + beta as f64 * ((1.0 - alpha) * kl_prior + alpha / 3.0 * kl_own);
    let got = with_alpha(alpha as f32);
    assert!(kl_own > 1e-3 && (got - zero).abs() > 1e-4, "{got} {zero}");
    assert!((got - want).abs() < 1e-4 * want.abs(), "{got} vs {want}");
}

#[test]
fn conditional_objective_puts_the_caption_posterior_under_the_image() {
    let _rng = testutil::rng_lock();
    let mut s = Setup::image_text();
    s.loss.align_weight = 0.0;
    s.loss.cycle_weight = 0.0;
    let dev = Device::flex();
    dev.seed(9);
    let model = s.init(&dev);
    let batch = s.host().to_device(&dev);
    let eps = Tensor::<2>::random([12, 4], Distribution::Normal(0.0, 1.0), &dev);
    let beta = 0.7f32;
    let total = |target: UnimodalTarget, cross: f32| {
        let mut t = s.clone();
        t.loss.unimodal_target = target;
        t.modalities[0].cross_weight = cross;
        scalar(
            model
                .loss_with_noise(&batch, &t.loss, &t.plan(&model), beta, eps.clone())
                .total,
        )
    };
    // The same reconstructions as "all" without the image-from-caption
    // term; only the image-only KL changes: KL(q(z|x) ‖ q(z|y)) for
    // KL(q(z|x) ‖ N(0, I)), batch mean, times β.
    let cond = total(UnimodalTarget::Conditional, 1.0);
    let all = total(UnimodalTarget::All, 0.0);
    let (q_x, q_y) = (
        model.encode_image(batch.images()),
        model.encode_caption(&batch),
    );
    let shift = scalar((q_x.kl(&q_y) - q_x.kl_standard()).mean()) * beta as f64;
    assert!(shift.abs() > 1e-3, "{shift}");
    assert!(
        (cond - all - shift).abs() < 1e-4 * cond.abs().max(1.0),
        "{cond} - {all} vs {shift}"
    );
}

#[test]
fn image_only_latent_feeds_the_image_decoder_alone() {
    let _rng = testutil::rng_lock();
    let mut s = Setup::image_text();
    s.cfg.private_latent = 2;
    let dev = Device::flex();
    dev.seed(6);
    let model = s.init(&dev);
    let batch = s.host().to_device(&dev);
    assert_eq!(model.encode_image(batch.images()).mu.dims(), [4, 4]);
    let full = model.encode_image_full(batch.images());
    assert_eq!(full.mu.dims(), [4, 6]);
    // The shared part of the full posterior is q(z|x) itself.
    let a = model.encode_image(batch.images()).mu;
    let b = model.shared_part(full.mu.clone());
    assert_eq!(
        a.try_into_vec_as::<f32>().unwrap(),
        b.try_into_vec_as::<f32>().unwrap()
    );
    // A shared latent is completed with w = 0 (mean) or w ~ N(0, I).
    let z = Tensor::<2>::ones([4, 4], &dev);
    let mean = model.with_private(z.clone(), false);
    assert_eq!(mean.dims(), [4, 6]);
    let w: Vec<f32> = mean.narrow(1, 4, 2).try_into_vec_as().unwrap();
    assert!(w.iter().all(|&v| v == 0.0));
    let s1 = model
        .decode_image(z.clone())
        .try_into_vec_as::<f32>()
        .unwrap();
    let s2 = model.decode_image(z).try_into_vec_as::<f32>().unwrap();
    assert_ne!(s1, s2, "prior draws of w should change the image");
    // The text-only term sees w only through its noise columns: changing
    // them moves the text→image term and nothing else.
    let plan = s.plan(&model);
    let eps = Tensor::<2>::random([12, 6], Distribution::Normal(0.0, 1.0), &dev);
    let r = |eps: Tensor<2>| {
        model
            .loss_with_noise(&batch, &s.loss, &plan, 1.0, eps)
            .terms
            .to_host()
    };
    let base = r(eps.clone());
    let mut d = eps.try_into_vec_as::<f32>().unwrap();
    for row in 8..12 {
        d[row * 6 + 4] += 1.0;
    }
    let moved = r(Tensor::from_data(TensorData::new(d, [12, 6]), &dev));
    assert_ne!(base["cross/text->image"], moved["cross/text->image"]);
    for k in ["nll/image", "nll/text", "kl", "cross/image->text"] {
        assert_eq!(base[k], moved[k], "{k}");
    }
}

#[test]
fn a_zero_cross_weight_skips_only_the_terms_it_zeroes() {
    let _rng = testutil::rng_lock();
    let s = Setup::three(Fusion::Poe);
    let dev = Device::flex();
    dev.seed(12);
    let model = s.init(&dev);
    let batch = s.host().to_device(&dev);
    // joint + three single-modality terms, four items each
    let eps = Tensor::<2>::random([16, 4], Distribution::Normal(0.0, 1.0), &dev);
    let run = |cross: f32| {
        let mut t = s.clone();
        t.modalities[2].cross_weight = cross;
        let out = model.loss_with_noise(&batch, &t.loss, &t.plan(&model), 1.0, eps.clone());
        (scalar(out.total), out.terms.to_host())
    };
    let (with, terms) = run(1.0);
    let (without, skipped) = run(0.0);
    // The label decoded from the image or the caption alone is neither
    // weighed nor measured; everything else is the same draw, the same NLL.
    for k in ["cross/image->label", "cross/text->label"] {
        assert!(terms.contains_key(k) && !skipped.contains_key(k), "{k}");
    }
    for k in ["nll/label", "cross/label->image", "cross/image->text", "kl"] {
        assert_eq!(terms[k], skipped[k], "{k}");
    }
    let w = s.modalities[2].weight as f64;
    let cross = (terms["cross/image->label"] + terms["cross/text->label"]) as f64;
    assert!(
        (with - without - w * cross).abs() < 1e-4 * with.abs().max(1.0),
        "{with} - {without} vs {w} × {cross}"
    );
    // Weight 0: the label is an input only, never decoded.
    let mut t = s.clone();
    t.modalities[2].weight = 0.0;
    let input = model
        .loss_with_noise(&batch, &t.loss, &t.plan(&model), 1.0, eps.clone())
        .terms
        .to_host();
    assert!(input.keys().all(|k| !k.ends_with("label")), "{input:?}");
    assert_eq!(input["cross/label->image"], terms["cross/label->image"]);
}
