//! The objective's behaviour: gradients against finite differences for
//! every fusion, model family and term (with two and three modalities, and
//! with items that lack some), the masks of weak supervision, and the
//! closed forms the terms must equal.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::align::info_nce;
use super::*;
use crate::config::{
    Alignment, ExpertConfig, Fusion, ImageLikelihood, ImageModel, LossConfig, ModalityConfig,
    ModelConfig, Objective, TextModel, UnimodalTarget,
};
use crate::io::batch::{Batch, HostBatch};
use crate::modality::ModalityKind;
use crate::mvae::Mvae;
use crate::nn::gaussian::Gaussian;
use crate::testutil::{self, GradsOf, Perturb, SHAPE};

/// A model to test: its config, modalities and loss settings.
#[derive(Clone)]
struct Setup {
    cfg: ModelConfig,
    modalities: Vec<ModalityConfig>,
    loss: LossConfig,
}

impl Setup {
    /// Image (MLP) + caption (GRU), the alignment, cross weight and caption
    /// cycle on, so that the gradient checks cover them.
    fn image_text() -> Self {
        let (cfg, mut modalities) = testutil::tiny_image_text(0);
        modalities[0].cross_weight = 0.7;
        Setup {
            cfg,
            modalities,
            loss: LossConfig {
                align_weight: 0.5,
                cycle_weight: 0.3,
                ..LossConfig::default()
            },
        }
    }

    /// Image + caption + label, plain ELBO terms.
    fn three(fusion: Fusion) -> Self {
        Setup {
            cfg: testutil::tiny_model(fusion, 0),
            modalities: testutil::three_modalities(),
            loss: LossConfig::default(),
        }
    }

    fn fusion(mut self, f: Fusion) -> Self {
        self.cfg.fusion = f;
        self
    }

    fn image(mut self, model: ImageModel) -> Self {
        self.modalities[0].expert = ExpertConfig::Image {
            model,
            likelihood: ImageLikelihood::Bernoulli,
        };
        self
    }

    fn text(mut self, model: TextModel) -> Self {
        self.modalities[1].expert = ExpertConfig::Text { model };
        self
    }

    fn init(&self, device: &Device) -> Mvae {
        self.cfg.init(&self.modalities, SHAPE, device)
    }

    fn plan(&self, m: &Mvae) -> Plan {
        m.plan(&self.loss, &testutil::weights(&self.modalities), 0)
    }

    fn kinds(&self) -> Vec<ModalityKind> {
        self.modalities.iter().map(ModalityConfig::kind).collect()
    }

    /// Four items, every modality present.
    fn host(&self) -> HostBatch {
        testutil::host_batch_of(&self.kinds(), 4)
    }
}

fn scalar(t: Tensor<1>) -> f64 {
    t.try_into_vec_as::<f32>().unwrap()[0] as f64
}

/// All parameter values, flattened, in visiting order.
struct Values(Vec<Vec<f32>>);
impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.push(p.val().try_into_vec_as::<f32>().unwrap());
    }
}
fn values<M: Module>(m: &M) -> Vec<Vec<f32>> {
    let mut v = Values(Vec::new());
    m.visit(&mut v);
    v.0
}

/// Every parameter's gradient of the loss against central differences.
fn gradient_check_with(s: &Setup, hb: &HostBatch) {
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
    let h = 1e-2f32;
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
    gradient_check_with(&s, &s.host());
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
        }));
    }
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
        gradient_check_with(&s, &hb);
    }
    let mut s = Setup::three(Fusion::Poe);
    s.loss.sampled_subsets = 1;
    s.loss.unimodal_target = UnimodalTarget::Observed;
    gradient_check(s);
}

#[test]
fn masked_product_is_the_product_of_the_present_experts() {
    let dev = Device::flex();
    let g = |mu: [f32; 2], lv: [f32; 2]| {
        Gaussian::new(
            Tensor::from_data(TensorData::new(mu.to_vec(), [1, 2]), &dev),
            Tensor::from_data(TensorData::new(lv.to_vec(), [1, 2]), &dev),
        )
    };
    let experts = [
        g([1.0, -2.0], [0.0, 1.0]),
        g([3.0, 0.5], [-1.0, 0.5]),
        g([-4.0, 2.0], [2.0, -0.5]),
    ];
    let mask = |m: [f32; 3]| m.map(|v| Tensor::<2>::full([1, 1], v, &dev)).to_vec();
    for present in [
        [1.0, 1.0, 1.0],
        [1.0, 0.0, 1.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0],
    ] {
        let q = Gaussian::masked_product_with_prior(&experts, &mask(present));
        let (mu, lv) = (
            q.mu.try_into_vec_as::<f32>().unwrap(),
            q.logvar.try_into_vec_as::<f32>().unwrap(),
        );
        for d in 0..2 {
            // Precisions add (the prior's is 1); the mean is their weighted mean.
            let (mut prec, mut wsum) = (1.0f64, 0.0f64);
            for (e, &on) in experts.iter().zip(&present) {
                if on == 1.0 {
                    let m = e.mu.clone().try_into_vec_as::<f32>().unwrap()[d] as f64;
                    let v = (e.logvar.clone().try_into_vec_as::<f32>().unwrap()[d] as f64).exp();
                    prec += 1.0 / v;
                    wsum += m / v;
                }
            }
            assert!((mu[d] as f64 - wsum / prec).abs() < 1e-5, "{present:?} {d}");
            assert!((lv[d] as f64 + prec.ln()).abs() < 1e-5, "{present:?} {d}");
        }
    }
}

#[test]
fn mopoe_has_the_seven_subsets_of_three_modalities_and_masks_the_absent() {
    let _rng = testutil::rng_lock();
    let dev = Device::flex();
    dev.seed(3);
    let s = Setup::three(Fusion::MoPoe);
    let m = s.init(&dev);
    let plan = s.plan(&m);
    assert_eq!(plan.len(), 7);
    let mut hb = s.host();
    hb.present[3 + 2] = 0.0; // item 1 has no label
    let batch = hb.to_device(&dev);
    let shared = m.encode_all(&batch).into_iter().map(|e| e.shared).collect();
    let present: Vec<Tensor<2>> = (0..3).map(|i| batch.present_col(i)).collect();
    let post = super::elbo::Posteriors::new(&m, shared, present.clone(), present);
    for term in &plan.terms {
        let v = post.valid(term.given).try_into_vec_as::<f32>().unwrap();
        let want = if term.given.contains(2) { 0.0 } else { 1.0 };
        assert_eq!(v, vec![1.0, want, 1.0, 1.0], "{:?}", term.given);
    }
}

/// The loss of `m` on `hb` with fixed noise, and the gradient of every
/// parameter of `part`.
fn loss_and_part_grads(
    m: &Mvae,
    s: &Setup,
    hb: &HostBatch,
    part: usize,
    device: &Device,
) -> (f64, Vec<f32>) {
    let plan = s.plan(m);
    let eps = Tensor::<2>::random(
        [m.noise_rows(&plan, &s.loss, hb.size), m.noise_dim()],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let out = m.loss_with_noise(&hb.to_device(device), &s.loss, &plan, 1.0, eps);
    let v = scalar(out.total.clone());
    let g = out.total.backward();
    let mut gv = GradsOf(&g, Vec::new());
    m.experts[part].visit(&mut gv);
    (v, gv.1.concat())
}

#[test]
fn an_absent_modality_gets_no_gradient_and_its_input_does_not_matter() {
    let _rng = testutil::rng_lock();
    for fusion in [Fusion::Poe, Fusion::MoPoe, Fusion::Moe, Fusion::Concat] {
        let ad = Device::flex().autodiff();
        ad.seed(7);
        let mut s = Setup::three(fusion);
        s.loss.align_weight = 0.3;
        let m = s.init(&ad);
        // Every item lacks its caption.
        let mut hb = s.host();
        for i in 0..4 {
            hb.present[i * 3 + 1] = 0.0;
        }
        ad.seed(1);
        let (a, text_grads) = loss_and_part_grads(&m, &s, &hb, 1, &ad);
        assert!(
            text_grads.iter().all(|&g| g == 0.0),
            "{fusion:?}: the caption expert moved"
        );
        // Other captions in their place change nothing.
        if let crate::io::batch::HostInput::Tokens { ids, .. } = &mut hb.inputs[1] {
            ids.iter_mut()
                .filter(|t| **t >= 4)
                .for_each(|t| *t = 4 + (*t + 1) % 5);
        }
        ad.seed(1);
        let (b, _) = loss_and_part_grads(&m, &s, &hb, 1, &ad);
        assert_eq!(a, b, "{fusion:?}");
        // The image expert still learns.
        ad.seed(1);
        let (_, image_grads) = loss_and_part_grads(&m, &s, &hb, 0, &ad);
        assert!(image_grads.iter().any(|&g| g != 0.0), "{fusion:?}");
    }
}

#[test]
fn unpaired_items_only_count_in_their_own_terms() {
    // With PoE's sum of ELBOs, an item that has only its image adds its
    // image-only term and nothing else: the loss of [paired, image-only]
    // items is the paired item's loss plus the image-only term of the other.
    let _rng = testutil::rng_lock();
    let dev = Device::flex();
    dev.seed(2);
    let mut s = Setup::image_text();
    s.loss.cycle_weight = 0.0;
    s.loss.align_weight = 0.0;
    let m = s.init(&dev);
    let plan = s.plan(&m);
    let hb = testutil::host_batch(2);
    let eps = Tensor::<2>::random([6, m.noise_dim()], Distribution::Normal(0.0, 1.0), &dev);
    let total = |hb: &HostBatch| {
        scalar(
            m.loss_with_noise(&hb.to_device(&dev), &s.loss, &plan, 1.0, eps.clone())
                .total,
        ) * hb.size as f64
    };
    let mut half = hb.clone();
    half.present[3] = 0.0; // item 1 loses its caption
                           // The image-only term of item 1 alone: observed target, item 0 gone.
    let mut only = hb.clone();
    only.present = vec![0.0, 0.0, 1.0, 0.0];
    let both = total(&hb);
    let mixed = total(&half);
    let lone = total(&only);
    let mut first = hb.clone();
    first.present = vec![1.0, 1.0, 0.0, 0.0];
    let paired = total(&first);
    assert!(
        (mixed - (paired + lone)).abs() < 1e-3 * mixed.abs(),
        "{mixed} vs {paired} + {lone}"
    );
    assert!((both - mixed).abs() > 1e-3);
}

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
fn train_step_changes_weights_and_eval_does_not() {
    let _rng = testutil::rng_lock();
    for s in [Setup::image_text(), Setup::three(Fusion::MoPoe)] {
        let ad = Device::flex().autodiff();
        ad.seed(1);
        let model = s.init(&ad);
        let plan = s.plan(&model);
        let before = values(&model);
        // Inference leaves weights alone.
        let valid = model.valid();
        let _ = valid.loss(&s.host().to_device(&Device::flex()), &s.loss, &plan, 1.0);
        let _ = valid.decode_text(Tensor::zeros([2, 4], &Device::flex()), None);
        assert_eq!(values(&model), before);
        // One optimizer step moves every parameter that the loss touches.
        let mut optim = AdamConfig::new().init();
        let out = model.loss(&s.host().to_device(&ad), &s.loss, &plan, 1.0);
        let grads = GradientsParams::from_grads(out.total.backward(), &model);
        let stepped = optim.step(1e-2, model, grads);
        let after = values(&stepped);
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(changed, before.len(), "every parameter should move");
    }
}

#[test]
fn save_load_round_trip_gives_identical_outputs() {
    let _rng = testutil::rng_lock();
    let s = Setup::three(Fusion::Attention);
    let dev = Device::flex();
    dev.seed(4);
    let model = s.init(&dev);
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.bpk");
    model.clone().save_file(&p).unwrap();
    let loaded = s.init(&dev).try_load_file(&p).unwrap();
    assert_eq!(values(&model), values(&loaded));
    let batch = s.host().to_device(&dev);
    let plan = s.plan(&model);
    dev.seed(9);
    let a = scalar(model.loss(&batch, &s.loss, &plan, 1.0).total);
    dev.seed(9);
    let b = scalar(loaded.loss(&batch, &s.loss, &plan, 1.0).total);
    assert_eq!(a, b);
    // A model of another shape refuses these weights.
    let mut other = s.clone();
    other.modalities[2].expert = ExpertConfig::Label {
        model: crate::config::LabelModel {
            classes: 3,
            hidden: 7,
        },
    };
    let e = crate::io::checkpoint::load_weights(other.init(&dev), &p).unwrap_err();
    assert!(e.contains("[3, 5]") && e.contains("[3, 7]"), "{e}");
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
fn decoding_is_greedy_and_bounded() {
    let _rng = testutil::rng_lock();
    for text in [
        TextModel::Gru {
            embed: 4,
            hidden: 5,
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
        TextModel::Transformer {
            d_model: 4,
            heads: 2,
            layers: 1,
            ff: 6,
        },
        TextModel::MultiHot { hidden: 6 },
    ] {
        let s = Setup::image_text().text(text);
        let max_len = s.cfg.max_len;
        let dev = Device::flex();
        dev.seed(2);
        let model = s.init(&dev);
        let z = Tensor::<2>::random([5, 4], Distribution::Normal(0.0, 1.0), &dev);
        let a = model.decode_text(z.clone(), None);
        assert_eq!(a, model.decode_text(z.clone(), None), "{text:?}");
        assert!(a
            .iter()
            .all(|t| t.len() < max_len && t.iter().all(|&id| id < SHAPE.vocab)));
        // Beam search of width 1 is greedy decoding; wider beams find
        // captions at least as probable as greedy ones.
        let decoder = &model.text_expert().decoder;
        assert_eq!(decoder.decode_beam(z.clone(), max_len, 1), a, "{text:?}");
        let wide = decoder.decode_beam(z.clone(), max_len, 3);
        let vocab = mmvae_data::Vocab::build(["a b c d e"]);
        let logp = |caps: &[Vec<usize>]| -> Vec<f32> {
            // <bos> caption <eos>, padded: max_len - 1 tokens fit.
            let len = max_len + 1;
            let ids: Vec<i64> = caps
                .iter()
                .flat_map(|c| vocab.frame(c, len).into_iter().map(|t| t as i64))
                .collect();
            let toks = Tensor::<2, Int>::from_data(TensorData::new(ids, [caps.len(), len]), &dev);
            decoder
                .nll(z.clone(), toks)
                .neg()
                .try_into_vec_as::<f32>()
                .unwrap()
        };
        for (w, g) in logp(&wide).iter().zip(logp(&a)) {
            assert!(*w >= g - 1e-4, "{text:?}: beam {w} < greedy {g}");
        }
    }
}

#[test]
fn best_read_back_keeps_the_candidate_with_the_lowest_caption_nll() {
    let _rng = testutil::rng_lock();
    let dev = Device::flex();
    dev.seed(3);
    let m = Setup::image_text().init(&dev);
    // 2 captions × 3 candidates: every candidate a different image, each
    // caption repeated over its 3 rows.
    let (n, k) = (2, 3);
    let px: Vec<f32> = (0..n * k * 16)
        .map(|i| ((i * 53 + i / 7) % 17) as f32 / 16.0)
        .collect();
    let images = Tensor::<2>::from_data(TensorData::new(px, [n * k, 16]), &dev);
    let caps: [[i64; 6]; 2] = [[1, 4, 5, 2, 0, 0], [1, 6, 7, 8, 2, 0]];
    let toks: Vec<i64> = (0..n * k).flat_map(|r| caps[r / k]).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(toks, [n * k, 6]), &dev);
    let best: Vec<i64> = m
        .best_read_back(images.clone(), tokens.clone(), k)
        .try_into_vec_as::<i64>()
        .unwrap();
    // The reference: each candidate scored alone.
    let nll: Vec<f32> = (0..n * k)
        .map(|r| {
            let z = m.encode_image(images.clone().narrow(0, r, 1)).mu;
            scalar(
                m.text_expert()
                    .decoder
                    .nll(z, tokens.clone().narrow(0, r, 1)),
            ) as f32
        })
        .collect();
    for i in 0..n {
        let row = &nll[i * k..(i + 1) * k];
        let want = (0..k).min_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        assert_eq!(best[i], (i * k + want) as i64, "{nll:?} {best:?}");
    }
    assert!(nll.windows(2).all(|w| w[0] != w[1]), "{nll:?}");
    let all: Vec<i64> = m
        .best_read_back(images, tokens, 1)
        .try_into_vec_as::<i64>()
        .unwrap();
    assert_eq!(all, (0..(n * k) as i64).collect::<Vec<_>>());
}

#[test]
fn batches_of_any_modalities_shard_and_rebuild() {
    let s = Setup::three(Fusion::Poe);
    let mut hb = s.host();
    hb.present[4] = 0.0;
    let parts = crate::train::parallel::shard(&hb, 3);
    assert_eq!(
        parts.iter().map(|p| p.size).collect::<Vec<_>>(),
        vec![2, 1, 1]
    );
    assert_eq!(parts[0].present, hb.present[..6]);
    let b: Batch = parts[1].to_device(&Device::flex());
    assert_eq!(b.inputs.len(), 3);
    assert_eq!(
        b.present.try_into_vec_as::<f32>().unwrap(),
        vec![1.0, 1.0, 1.0]
    );
}
