//! A dataset's evaluation classifiers as the evaluation reads them: one
//! network for every image modality, or one network per image modality.
//!
//! PolyMNIST is scored the second way, as the MoPoE and MMVAE+ papers score
//! it (a digit classifier per modality, each trained on its modality's
//! images only). One network trained on all five backgrounds reads the
//! real images as well (98.6–99.1% per modality) but reads *generated*
//! images of the light backgrounds far worse than a network of their own:
//! m1 generated from the other four modalities by a 20-epoch MMVAE+-style
//! model reads 89.42% by the shared network and 99.38% by m1's own.
//!
//! On disk, a per-modality folder holds a `classifier.json` whose
//! `per_modality` lists the modalities, and one ordinary classifier folder
//! per modality, named after it.

use burn::prelude::*;
use mmvae_data::{fsutil, DatasetKind, ImageLabelSet};
use std::collections::BTreeMap;
use std::path::Path;

use super::classifier::{
    self, check_labelled, fit, read_info, untested_info, view_accuracy, Classifier, ClassifierInfo,
    ClassifierTrainOptions,
};
use crate::error::{ModelError, Result};
use crate::modality::ModalityKind;
use crate::mvae::Mvae;

/// The evaluation classifiers of one dataset.
#[derive(Debug)]
pub struct Classifiers {
    /// The folder's description: for per-modality classifiers, their mean
    /// test accuracy and each one's own in `test_view_accuracy`.
    pub info: ClassifierInfo,
    nets: Nets,
}

#[derive(Debug)]
enum Nets {
    /// One network reads every image modality in `info.reads` (all of them
    /// where that is empty).
    Shared(Box<Classifier>),
    /// One network per image modality, by name.
    PerModality(BTreeMap<String, Classifier>),
}

impl Classifiers {
    /// One network for every image modality it was trained to read.
    pub fn one(net: Classifier, info: ClassifierInfo) -> Self {
        Self {
            info,
            nets: Nets::Shared(Box::new(net)),
        }
    }

    /// The classifier that reads image modality `name`, if any does.
    pub fn of(&self, name: &str) -> Option<&Classifier> {
        match &self.nets {
            Nets::Shared(net) => (self.info.reads.is_empty()
                || self.info.reads.iter().any(|r| r == name))
            .then_some(&**net),
            Nets::PerModality(nets) => nets.get(name),
        }
    }

    /// The classifier of `model`'s first image modality, the one the
    /// image–caption measures and the text prior score, if any reads it.
    pub fn of_image(&self, model: &Mvae) -> Option<&Classifier> {
        let i = model.index_of_kind(ModalityKind::Image)?;
        self.of(&model.names[i])
    }

    /// Load the classifiers in `dir` (either layout), checking they were
    /// trained on `kind`.
    pub fn load(dir: &Path, kind: DatasetKind, device: &Device) -> Result<Self> {
        let info = read_info(dir, kind)?;
        if info.per_modality.is_empty() {
            let (net, info) = classifier::load_weights(dir, info, device)?;
            return Ok(Self::one(net, info));
        }
        let mut nets = BTreeMap::new();
        for name in &info.per_modality {
            let (net, own) = classifier::load(&dir.join(name), kind, device)?;
            if (own.side, own.colours) != (info.side, info.colours) {
                return Err(ModelError::checkpoint(
                    dir.join(name),
                    format!(
                        "reads {}×{} images of {} colours, the folder's classifier.json says {}×{} of {}",
                        own.side, own.side, own.colours, info.side, info.side, info.colours
                    ),
                ));
            }
            nets.insert(name.clone(), net);
        }
        Ok(Self {
            info,
            nets: Nets::PerModality(nets),
        })
    }
}

/// Train the evaluation classifiers of `train`'s dataset as `opts` asks (one
/// per image modality where `opts.per_modality`), measure them on `test`
/// and save them in `out`.
pub fn train(
    train: &ImageLabelSet,
    test: &ImageLabelSet,
    opts: &ClassifierTrainOptions,
    out: &Path,
) -> Result<Classifiers> {
    let views = opts.views(train)?;
    if !opts.per_modality || views.len() < 2 {
        let (net, info) = classifier::train_classifier(train, test, opts, out)?;
        return Ok(Classifiers::one(net, info));
    }
    check_labelled(train)?;
    let names = train.image_names();
    let device = crate::device::cpu_device();
    let mut nets = BTreeMap::new();
    let mut own_accuracy = Vec::new();
    let mut slot_sums = vec![0.0; train.kind.slots().len()];
    for &v in &views {
        let name = names[v].to_string();
        let net = fit(train, &[v], opts);
        let (strict, slots) = view_accuracy(&net, test, v, &device);
        for (s, a) in slot_sums.iter_mut().zip(&slots) {
            *s += a / views.len() as f64;
        }
        let info = ClassifierInfo {
            test_accuracy: strict,
            test_slot_accuracy: slots,
            reads: vec![name.clone()],
            ..untested_info(train, opts)
        };
        classifier::save(&out.join(&name), &net, &info)?;
        own_accuracy.push((name.clone(), strict));
        nets.insert(name, net);
    }
    let info = ClassifierInfo {
        test_accuracy: own_accuracy.iter().map(|a| a.1).sum::<f64>() / views.len() as f64,
        test_slot_accuracy: slot_sums,
        test_view_accuracy: own_accuracy,
        per_modality: nets.keys().cloned().collect(),
        ..untested_info(train, opts)
    };
    // The description last: it marks the folder complete. A single
    // classifier's weights left from before would only mislead.
    fsutil::write_atomic(
        &out.join("classifier.json"),
        serde_json::to_string_pretty(&info)
            .expect("serialises")
            .as_bytes(),
    )?;
    match std::fs::remove_file(out.join("classifier.bpk")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(ModelError::Io {
                path: out.join("classifier.bpk"),
                source: e,
            })
        }
        _ => {}
    }
    Ok(Classifiers {
        info,
        nets: Nets::PerModality(nets),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmvae_data::dataset::View;

    /// A PolyMNIST-shaped set whose image `v` shows class `c` as a bright
    /// band of rows at position `(c + 3v) mod 10`: each modality codes the
    /// class its own way, so a network of one modality misreads another.
    fn banded(n: usize) -> ImageLabelSet {
        let side = 28;
        let image = |c: usize, v: usize| {
            let band = (c + 3 * v) % 10;
            let mut px = vec![20u8; 3 * side * side];
            for ch in 0..3 {
                for r in 2 * band + 4..2 * band + 6 {
                    px[(ch * side + r) * side..(ch * side + r + 1) * side].fill(240);
                }
            }
            px
        };
        let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
        let of_view =
            |v: usize| -> Vec<u8> { labels.iter().flat_map(|&c| image(c as usize, v)).collect() };
        let mut set = ImageLabelSet::new(
            DatasetKind::PolyMnist,
            3,
            (side, side),
            of_view(0),
            labels.clone(),
        );
        set.views = (1..5)
            .map(|v| View {
                name: format!("m{v}"),
                images: of_view(v),
            })
            .collect();
        set
    }

    #[test]
    fn one_classifier_per_modality_reads_its_own_modality_and_round_trips() {
        let _rng = crate::testutil::rng_lock();
        let (train_set, test_set) = (banded(300), banded(100));
        let opts = ClassifierTrainOptions {
            epochs: 3,
            batch_size: 30,
            lr: 3e-3,
            progress: false,
            ..ClassifierTrainOptions::for_dataset(DatasetKind::PolyMnist)
        };
        assert!(opts.per_modality);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("clf");
        let trained = train(&train_set, &test_set, &opts, &out).unwrap();
        let names = ["m0", "m1", "m2", "m3", "m4"];
        assert_eq!(trained.info.per_modality, names);
        for (name, acc) in &trained.info.test_view_accuracy {
            assert!(*acc > 0.9, "{name} reads its own images at {acc}");
        }
        // m0's network misreads m1, whose bands sit elsewhere.
        let dev = crate::device::cpu_device();
        let m0 = trained.of("m0").unwrap();
        assert!(view_accuracy(m0, &test_set, 1, &dev).0 < 0.5);
        assert!(trained.of("m5").is_none());

        let back = Classifiers::load(&out, DatasetKind::PolyMnist, &dev).unwrap();
        assert_eq!(back.info, trained.info);
        for (v, name) in names.iter().enumerate() {
            let (a, b) = (trained.of(name).unwrap(), back.of(name).unwrap());
            assert_eq!(
                view_accuracy(a, &test_set, v, &dev),
                view_accuracy(b, &test_set, v, &dev)
            );
        }
        // One network of its own is loaded from its subfolder; the folder
        // itself is refused where one classifier is wanted.
        let (_, own) = classifier::load(&out.join("m3"), DatasetKind::PolyMnist, &dev).unwrap();
        assert_eq!(own.reads, ["m3"]);
        let e = classifier::load(&out, DatasetKind::PolyMnist, &dev)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("one classifier per image modality") && e.contains("m0"),
            "{e}"
        );
        // A listed modality that is not a plain folder name is refused.
        let mut bad = back.info.clone();
        bad.per_modality[2] = "../m2".into();
        std::fs::write(
            out.join("classifier.json"),
            serde_json::to_vec(&bad).unwrap(),
        )
        .unwrap();
        let e = Classifiers::load(&out, DatasetKind::PolyMnist, &dev)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"../m2\" is not a plain folder name"), "{e}");
    }

    #[test]
    fn reads_restricts_the_images_read_and_names_a_missing_one() {
        let _rng = crate::testutil::rng_lock();
        let (train_set, test_set) = (banded(300), banded(100));
        let opts = |reads: &[&str]| ClassifierTrainOptions {
            epochs: 3,
            batch_size: 30,
            lr: 3e-3,
            progress: false,
            reads: reads.iter().map(|r| r.to_string()).collect(),
            ..ClassifierTrainOptions::for_dataset(DatasetKind::PolyMnist)
        };
        let dir = tempfile::tempdir().unwrap();
        let dev = crate::device::cpu_device();
        // One image named: one network, reading that image only.
        let one = train(
            &train_set,
            &test_set,
            &opts(&["m2"]),
            &dir.path().join("m2"),
        )
        .unwrap();
        assert_eq!(one.info.reads, ["m2"]);
        assert!(one.info.per_modality.is_empty());
        assert!(one.of("m0").is_none());
        let (m2, _) = view_accuracy(one.of("m2").unwrap(), &test_set, 2, &dev);
        assert!(m2 > 0.9, "m2 read at {m2}");
        assert!((one.info.test_accuracy - m2).abs() < 1e-12);
        // Two named: one network each, the others left out.
        let two = train(
            &train_set,
            &test_set,
            &opts(&["m3", "m1"]),
            &dir.path().join("two"),
        )
        .unwrap();
        assert_eq!(two.info.per_modality, ["m1", "m3"]);
        assert!(two.of("m4").is_none());
        // A name the dataset lacks: the error lists its images, and nothing
        // is written.
        let e = train(
            &train_set,
            &test_set,
            &opts(&["m1", "m9"]),
            &dir.path().join("bad"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"m9\"") && e.contains("m0, m1, m2, m3, m4"),
            "{e}"
        );
        assert!(!dir.path().join("bad").exists());
    }

    #[test]
    fn one_for_all_reads_every_modality_with_one_network() {
        let _rng = crate::testutil::rng_lock();
        let opts = ClassifierTrainOptions {
            epochs: 1,
            progress: false,
            train_limit: Some(50),
            ..ClassifierTrainOptions::for_dataset(DatasetKind::PolyMnist)
                .one_for_all(DatasetKind::PolyMnist)
        };
        assert!(!opts.per_modality);
        let dir = tempfile::tempdir().unwrap();
        let set = banded(50);
        let clfs = train(&set, &set, &opts, dir.path()).unwrap();
        assert!(clfs.info.per_modality.is_empty());
        assert_eq!(clfs.info.test_view_accuracy.len(), 5);
        assert!(std::ptr::eq(clfs.of("m0").unwrap(), clfs.of("m4").unwrap()));
        assert!(dir.path().join("classifier.bpk").is_file());
    }
}
