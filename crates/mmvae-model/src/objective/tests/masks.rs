//! Products and subsets over the present modalities; absent and unpaired items.

use super::*;

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

/// One batch encoded once and fused per subset gives, bit for bit, the
/// posterior that encoding the subset's inputs alone gives, for the
/// products, the mixtures and the learned fusion.
#[test]
fn fusing_one_encoding_per_subset_equals_encoding_each_subset() {
    let _rng = testutil::rng_lock();
    for fusion in MASKED_FUSIONS {
        let dev = Device::flex();
        dev.seed(5);
        let s = Setup::three(fusion);
        let m = s.init(&dev);
        let batch = s.host().to_device(&dev);
        let shared = m.encode_shared(&batch);
        let host = |t: Tensor<2>| t.try_into_vec_as::<f32>().unwrap();
        for bits in 1..8u32 {
            let given = Subset(bits);
            let a = m.fuse_encoded(&shared, given);
            let b = m.posterior_given(&batch, given);
            assert_eq!(host(a.mu), host(b.mu), "{fusion:?} {given:?}");
            assert_eq!(host(a.logvar), host(b.logvar), "{fusion:?} {given:?}");
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

#[test]
fn an_absent_modality_gets_no_gradient_and_its_input_does_not_matter() {
    let _rng = testutil::rng_lock();
    for fusion in MASKED_FUSIONS {
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
