//! Train and eval steps, checkpoints, decoding, read-back and sharding.

use super::*;

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

/// Counts the parameters autodiff tracks and those it does not.
struct Tracked(usize, usize);

impl ModuleVisitor for Tracked {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if p.is_require_grad() {
            self.0 += 1;
        } else {
            self.1 += 1;
        }
    }
}

#[test]
fn an_input_only_modality_trains_its_encoder_and_leaves_its_decoder_untracked() {
    let _rng = testutil::rng_lock();
    let mut iwae = Setup::three(Fusion::Moe);
    iwae.loss.objective = Objective::Iwae;
    iwae.loss.k = 2;
    for mut s in [Setup::three(Fusion::Poe), iwae] {
        s.modalities[2].weight = 0.0;
        let ad = Device::flex().autodiff();
        ad.seed(2);
        let weights = testutil::weights(&s.modalities).weight;
        let model = s.init(&ad).with_used_parameters_tracked(&weights);
        let mut t = Tracked(0, 0);
        model.visit(&mut t);
        // The label decoder's two linear layers, weight and bias each.
        assert_eq!(t.1, 4);
        let before = values(&model);
        let plan = s.plan(&model);
        let out = model.loss(&s.host().to_device(&ad), &s.loss, &plan, 1.0);
        // Its reconstruction is neither computed nor reported.
        let terms = out.terms.to_host();
        assert!(!terms.keys().any(|k| k.ends_with("label")), "{terms:?}");
        assert!(terms.contains_key("cross/label->image"), "{terms:?}");
        let grads = GradientsParams::from_grads(out.total.backward(), &model);
        let stepped = AdamConfig::new().init().step(1e-2, model, grads);
        let after = values(&stepped);
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(changed, before.len() - 4, "all but the label decoder move");
        // Given a weight again, the decoder is tracked again.
        let back = stepped.with_used_parameters_tracked(&[1.0, 1.0, 1.0]);
        let mut t = Tracked(0, 0);
        back.visit(&mut t);
        assert_eq!((t.0, t.1), (before.len(), 0));
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

#[test]
fn images_decoded_only_for_the_critics_leave_the_objective_and_its_gradients() {
    let _rng = testutil::rng_lock();
    // Image and caption, the image not reconstructed from the caption alone.
    let mut s = Setup::image_text();
    s.modalities[0].cross_weight = 0.0;
    s.loss = LossConfig::default();
    let ad = Device::flex().autodiff();
    ad.seed(3);
    let model = s.init(&ad);
    let hb = s.host();
    let run = |image_logits: bool| {
        let mut plan = s.plan(&model);
        plan.image_logits = image_logits;
        ad.seed(9);
        let out = model.loss(&hb.to_device(&ad), &s.loss, &plan, 1.0);
        let terms = out.terms.to_host();
        let total = scalar(out.total.clone());
        let mut gv = GradsOf(&out.total.backward(), Vec::new());
        model.visit(&mut gv);
        (total, gv.1, terms, out.generated.is_some())
    };
    let (all_total, all_grads, all_terms, all_generated) = run(true);
    let (total, grads, terms, generated) = run(false);
    assert!(
        (total - all_total).abs() < 1e-5 * all_total.abs(),
        "{total} vs {all_total}"
    );
    for (a, b) in grads.iter().flatten().zip(all_grads.iter().flatten()) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-3), "{a} vs {b}");
    }
    // Only the metric of the unweighed decoding is gone.
    assert!(all_generated && !generated);
    let name = format!("cross/{}->{}", s.modalities[1].name, s.modalities[0].name);
    assert!(
        all_terms.contains_key(&name) && !terms.contains_key(&name),
        "{terms:?}"
    );
    assert_eq!(terms.len() + 1, all_terms.len(), "{terms:?}");
}

/// A modality that shares another's encoder (`share_encoder`) is read by
/// that encoder: the same pixels give the same posterior through either
/// modality, and a loss on the sharing modality alone reaches the owner's
/// encoder and not the sharer's own.
#[test]
fn a_shared_encoder_reads_the_sharing_modality_and_learns_from_it() {
    use crate::io::batch::Input;
    use crate::modality::expert::Expert;
    let _rng = testutil::rng_lock();
    let (cfg, mut modalities) = testutil::tiny_image_text(0);
    let mut copy = modalities[0].clone();
    copy.name = "copy".into();
    copy.share_encoder = Some("image".into());
    modalities.push(copy);
    let ad = Device::flex().autodiff();
    ad.seed(3);
    let model = cfg.init(&modalities, SHAPE, &ad);
    assert_eq!(model.encoder_of, vec![0, 1, 0]);
    let x = Input::Image(Tensor::<2>::random(
        [4, 16],
        Distribution::Uniform(0.0, 1.0),
        &ad,
    ));
    let mu = |q: Gaussian| crate::host::floats(q.mu);
    let shared = model.encode_modality(2, &x);
    assert_eq!(
        mu(shared.shared.clone()),
        mu(model.encode_modality(0, &x).shared)
    );
    // The sharer's own encoder reads the pixels otherwise.
    assert_ne!(
        mu(shared.shared.clone()),
        mu(model.experts[2].encode(&x, model.latent).shared)
    );
    let grads = shared.shared.mu.sum().backward();
    let encoder_grads = |e: &Expert| {
        let Expert::Image(e) = e else {
            panic!("an image expert")
        };
        let mut g = GradsOf(&grads, Vec::new());
        e.encoder.visit(&mut g);
        g.1.into_iter().flatten().filter(|v| *v != 0.0).count()
    };
    assert!(encoder_grads(&model.experts[0]) > 0, "the owner learns");
    assert_eq!(
        encoder_grads(&model.experts[2]),
        0,
        "the sharer's own is idle"
    );
    // Idle, it is not tracked in training: autodiff would register its
    // leaves every step and never free them.
    let tracked = |e: &Expert| {
        let Expert::Image(e) = e else {
            panic!("an image expert")
        };
        let mut t = Tracked(0, 0);
        e.encoder.visit(&mut t);
        (t.0 > 0, t.1 > 0)
    };
    let model = model.with_used_parameters_tracked(&[1.0, 1.0, 1.0]);
    assert_eq!(tracked(&model.experts[0]), (true, false));
    assert_eq!(tracked(&model.experts[2]), (false, true));
}
