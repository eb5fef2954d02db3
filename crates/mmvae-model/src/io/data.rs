//! Loading the splits a run needs, and the vocabulary built from them.

use mmvae_data::captions::{CaptionSet, Captioner};
use mmvae_data::dataset::{DatasetKind, ImageLabelSet, LabelSource, Split};
use mmvae_data::{TokenLevel, Vocab};
use std::path::Path;

use crate::config::{DataConfig, ExpertConfig, ModalityKind, TrainConfig, Unpaired};
use crate::error::Result;
use crate::io::batch::HostBatch;

/// Caption streams: training draws a fresh template per image each epoch
/// (stream = epoch + 1); validation and test use fixed streams.
pub const VAL_STREAM: u64 = 1 << 40;
pub const TEST_STREAM: u64 = 2 << 40;

/// The training and validation splits of a run.
pub struct TrainData {
    pub train: ImageLabelSet,
    pub val: ImageLabelSet,
    pub vocab: Vocab,
    pub captioner: Captioner,
    /// What the loader reported (items skipped, images converted).
    pub notes: Vec<String>,
}

/// The vocabulary: every token of every training template at `level`.
/// Held-out templates reuse these words by construction.
pub fn build_vocab(captioner: &Captioner, level: TokenLevel) -> Vocab {
    Vocab::build_at(level, captioner.all_captions(CaptionSet::Train))
}

/// Refuse a `model.max_len` that would cut captions short: every training
/// and held-out caption (a dataset's own captions where it has them), with
/// `<bos>` and `<eos>`, must fit. A model without a caption modality has
/// nothing to check.
pub fn check_max_len(
    cfg: &TrainConfig,
    captioner: &Captioner,
    own: Option<&[&str]>,
    vocab: &Vocab,
) -> Result<()> {
    if !cfg
        .modalities
        .iter()
        .any(|m| m.kind() == ModalityKind::Text)
    {
        return Ok(());
    }
    let mut longest = (0, String::new());
    let mut see = |c: &str| {
        let n = vocab.token_count(c) + 2;
        if n > longest.0 {
            longest = (n, c.to_string());
        }
    };
    match own {
        Some(caps) => caps.iter().for_each(|c| see(c)),
        None => {
            for set in [CaptionSet::Train, CaptionSet::HeldOut] {
                if captioner.has(set) {
                    captioner.all_captions(set).iter().for_each(|c| see(c));
                }
            }
        }
    }
    if longest.0 > cfg.model.max_len {
        let mut example = longest.1;
        if example.chars().count() > 60 {
            example = example.chars().take(57).collect::<String>() + "...";
        }
        return Err(crate::error::ModelError::Config(format!(
            "`model.max_len` = {} is too short for this dataset's captions: the longest (`{example}`) needs {} tokens with <bos> and <eos>",
            cfg.model.max_len, longest.0
        )));
    }
    Ok(())
}

/// Threads used to render synthetic data.
fn render_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Load (or render) one split of a labelled dataset with its defaults. The
/// CLI's `--data-dir` wins over the config's `data.dir`; synthetic datasets
/// ignore both.
pub fn load_split(
    kind: DatasetKind,
    split: Split,
    cli: Option<&Path>,
    cfg: Option<&Path>,
) -> Result<ImageLabelSet> {
    Ok(ImageLabelSet::open(
        kind,
        cli.or(cfg),
        split,
        render_threads(),
    )?)
}

/// Load one split as a run's data config describes it (for `pairs`, with
/// its image size, channels and bad-item policy).
pub fn load_configured(
    data: &DataConfig,
    split: Split,
    cli: Option<&Path>,
) -> Result<ImageLabelSet> {
    if data.dataset != DatasetKind::Pairs {
        return Ok(ImageLabelSet::open_with(
            data.dataset,
            cli.or(data.dir.as_deref()),
            split,
            render_threads(),
            data.copies(),
        )?);
    }
    let path = cli.or(data.dir.as_deref()).ok_or_else(|| {
        crate::error::ModelError::Config(
            "the pairs dataset needs `data.dir` (or --data-dir) naming a captions file (CSV `file,caption[,split]` or JSON lines) or a folder holding captions.csv / captions.jsonl".into(),
        )
    })?;
    Ok(mmvae_data::pairs::load_split(
        path,
        split,
        &data.pairs_options(),
        render_threads(),
    )?)
}

pub fn load_train_data(cfg: &TrainConfig, cli_dir: Option<&Path>) -> Result<TrainData> {
    let kind = cfg.data.dataset;
    let mut train = load_configured(&cfg.data, Split::Train, cli_dir)?;
    let notes = std::mem::take(&mut train.notes);
    if train.len() <= cfg.data.val_size {
        return Err(crate::error::ModelError::Config(format!(
            "`data.val_size` = {} leaves no training data ({} images)",
            cfg.data.val_size,
            train.len()
        )));
    }
    let val = train.split_off_tail(cfg.data.val_size);
    if let Some(n) = cfg.data.train_limit {
        train.truncate(n);
    }
    let captioner = Captioner::new(kind, cfg.data.caption_seed);
    // A dataset with its own captions: the vocabulary of the training
    // captions (validation included); otherwise every template's words.
    let own: Option<Vec<&str>> = train.captions.as_ref().map(|t| {
        t.iter()
            .chain(val.captions.iter().flatten())
            .map(String::as_str)
            .collect()
    });
    let vocab = match &own {
        Some(caps) => Vocab::build_at(cfg.data.tokenizer, caps),
        None => build_vocab(&captioner, cfg.data.tokenizer),
    };
    if cfg
        .modalities
        .iter()
        .any(|m| m.kind() == ModalityKind::Text)
    {
        check_max_len(cfg, &captioner, own.as_deref(), &vocab)?;
    }
    check_modalities(cfg, &train, &val)?;
    Ok(TrainData {
        train,
        val,
        vocab,
        captioner,
        notes,
    })
}

/// Which training items keep which modalities (weak supervision): a seeded
/// `data.paired_fraction` of the items keep all, each of the others keeps
/// the one `data.unpaired` chooses (or is left out with `"drop"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pairing {
    modalities: usize,
    /// Per training item: `None` = paired, `Some(m)` = only modality m.
    kept: Vec<Option<usize>>,
    drop_unpaired: bool,
    /// `data.paired_share`: the share of an epoch's items drawn from the
    /// paired ones.
    paired_share: Option<f64>,
    seed: u64,
}

impl Pairing {
    /// The pairing of a run's `n` training items.
    pub fn new(cfg: &TrainConfig, n: usize) -> Pairing {
        let modalities = cfg.modalities.len();
        let f = cfg.data.paired_fraction;
        let paired_count = if f >= 1.0 {
            n
        } else {
            ((f * n as f64).round() as usize).clamp(1, n.max(1))
        };
        let mut paired = vec![false; n];
        let order = crate::io::batch::shuffled(n, cfg.seed ^ 0x9A1B_ED00_0000_0001);
        for &i in order.iter().take(paired_count) {
            paired[i] = true;
        }
        let kept = (0..n)
            .map(|i| {
                (!paired[i]).then(|| match &cfg.data.unpaired {
                    Unpaired::Random | Unpaired::Drop => {
                        let h = mmvae_data::captions::splitmix64(
                            cfg.seed ^ 0x0DD5_EED0_0000_0000 ^ (i as u64).wrapping_mul(0x9E37_79B9),
                        );
                        (h % modalities as u64) as usize
                    }
                    Unpaired::First => 0,
                    Unpaired::Alternate => i % modalities,
                    Unpaired::Only(name) => cfg.modality(name).unwrap_or(0),
                })
            })
            .collect();
        Pairing {
            modalities,
            kept,
            drop_unpaired: cfg.data.unpaired == Unpaired::Drop,
            paired_share: cfg.data.paired_share,
            seed: cfg.seed,
        }
    }

    /// The items epoch `epoch` trains on (as many as the training set has):
    /// every item once; with `"drop"` the paired ones alone, repeated to
    /// the same count, so that a run on them takes as many steps; with
    /// `data.paired_share = s` a share s of the count cycles through the
    /// paired items and the rest are unpaired items, each epoch the next
    /// ones of a seeded order (so every unpaired item comes round).
    pub fn items(&self, epoch: usize) -> Vec<usize> {
        let n = self.kept.len();
        let paired = self.paired();
        let cycle = |from: &[usize], count: usize, start: usize| -> Vec<usize> {
            (0..count).map(|j| from[(start + j) % from.len()]).collect()
        };
        if self.drop_unpaired {
            return cycle(&paired, n, 0);
        }
        let Some(share) = self.paired_share else {
            return (0..n).collect();
        };
        let unpaired: Vec<usize> = crate::io::batch::shuffled(n, self.seed ^ 0x5EA5_0000_0000_0001)
            .into_iter()
            .filter(|&i| self.kept[i].is_some())
            .collect();
        if unpaired.is_empty() {
            return (0..n).collect();
        }
        let take_paired = ((share * n as f64).round() as usize).clamp(1, n);
        let take_unpaired = n - take_paired;
        let mut out = cycle(&paired, take_paired, epoch * take_paired);
        out.extend(cycle(&unpaired, take_unpaired, epoch * take_unpaired));
        out
    }

    /// The items that keep every modality.
    pub fn paired(&self) -> Vec<usize> {
        (0..self.kept.len())
            .filter(|&i| self.kept[i].is_none())
            .collect()
    }

    /// The items that keep modality `m` alone (none under `"drop"`, whose
    /// unpaired items never train).
    pub fn keeping_only(&self, m: usize) -> Vec<usize> {
        if self.drop_unpaired {
            return Vec::new();
        }
        (0..self.kept.len())
            .filter(|&i| self.kept[i] == Some(m))
            .collect()
    }

    /// Mark, in a batch gathered from training items `indices`, the
    /// modalities each item lacks.
    pub fn apply(&self, hb: &mut HostBatch, indices: &[usize]) {
        for (row, &i) in indices.iter().enumerate() {
            if let Some(keep) = self.kept[i] {
                for m in 0..self.modalities {
                    hb.present[row * self.modalities + m] = if m == keep { 1.0 } else { 0.0 };
                }
            }
        }
    }
}

/// Refuse modalities the dataset cannot feed: each dataset item has one
/// caption, one class label, and one image or (PolyMNIST) several named
/// images, each read by the image modality of its name.
pub fn check_modalities(
    cfg: &TrainConfig,
    train: &ImageLabelSet,
    val: &ImageLabelSet,
) -> Result<()> {
    for kind in [ModalityKind::Image, ModalityKind::Text, ModalityKind::Label] {
        let names: Vec<&str> = cfg
            .modalities
            .iter()
            .filter(|m| m.kind() == kind)
            .map(|m| m.name.as_str())
            .collect();
        let images = train.image_names();
        if kind == ModalityKind::Image && images.len() > 1 {
            if let Some(n) = names.iter().find(|n| !images.contains(n)) {
                return Err(crate::error::ModelError::Config(format!(
                    "`modalities.{n}`: dataset {} has no image named `{n}` (its images: {})",
                    cfg.data.dataset.dir_name(),
                    images.join(", ")
                )));
            }
        } else if kind == ModalityKind::Label {
            check_class_readers(cfg, train, &names)?;
        } else if names.len() > 1 {
            return Err(crate::error::ModelError::Config(format!(
                "`modalities`: dataset {} has one {kind} per item, the config lists {} ({})",
                cfg.data.dataset.dir_name(),
                names.len(),
                names.join(", ")
            )));
        }
    }
    for m in &cfg.modalities {
        if let ExpertConfig::Label { model } = &m.expert {
            check_label_classes(cfg, train, val, &m.name, model.classes)?;
        }
    }
    Ok(())
}

/// Labels named after an attribute slot read that slot; at most one of
/// the label modalities `names` reads the class.
fn check_class_readers(cfg: &TrainConfig, train: &ImageLabelSet, names: &[&str]) -> Result<()> {
    let class_readers: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| train.kind.label_source(n) == LabelSource::Class)
        .collect();
    if class_readers.len() <= 1 {
        return Ok(());
    }
    let slots: Vec<&str> = train.kind.slots().iter().map(|s| s.0).collect();
    let hint = if slots.len() > 1 {
        format!(
            "; name a label after an attribute slot ({}) to read that slot",
            slots.join(", ")
        )
    } else {
        String::new()
    };
    Err(crate::error::ModelError::Config(format!(
        "`modalities`: dataset {} has one label per item (its class), the config lists {} ({}){hint}",
        cfg.data.dataset.dir_name(),
        class_readers.len(),
        class_readers.join(", "),
    )))
}

/// The label modality `name` has a class for every value it reads: of its
/// attribute slot, or every class label of the two splits.
fn check_label_classes(
    cfg: &TrainConfig,
    train: &ImageLabelSet,
    val: &ImageLabelSet,
    name: &str,
    classes: usize,
) -> Result<()> {
    if let LabelSource::Slot(k) = train.kind.label_source(name) {
        let (slot, values) = train.kind.slots()[k];
        if classes < values {
            return Err(crate::error::ModelError::Config(format!(
                "`modalities.{name}.model.classes` = {classes} but attribute slot `{slot}` of dataset {} has {values} values",
                cfg.data.dataset.dir_name()
            )));
        }
        return Ok(());
    }
    let top = train
        .labels
        .iter()
        .chain(&val.labels)
        .copied()
        .max()
        .unwrap_or(0) as usize;
    if top >= classes {
        return Err(crate::error::ModelError::Config(format!(
            "`modalities.{name}.model.classes` = {classes} but dataset {} has labels up to {top}",
            cfg.data.dataset.dir_name()
        )));
    }
    Ok(())
}

/// The test split of a run's dataset.
pub fn load_test(data: &DataConfig, cli_dir: Option<&Path>) -> Result<ImageLabelSet> {
    load_configured(data, Split::Test, cli_dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modality::{LabelModel, ModalityConfig};
    use mmvae_data::vision::{self, Copies, Edges};

    /// A run's test split is made as its `[data]` says: the vision copies
    /// with its square and edges, which the checkpoint's config carries to
    /// `eval`.
    #[test]
    fn a_configured_split_makes_the_vision_copies_as_the_config_says() {
        let mut c = TrainConfig::tiny(DatasetKind::parse("vision-shapes-l1").unwrap());
        c.data.mask_side = Some(8);
        c.data.edges = Edges::Colour;
        let set = load_test(&c.data, None).unwrap();
        assert_eq!(set.copies, Some(c.data.copies()));
        let (edges, masked) = (
            set.view_of("edges").unwrap(),
            set.view_of("masked").unwrap(),
        );
        for i in [0, 1, set.len() - 1] {
            let img = set.image(i);
            assert_eq!(set.view_image(masked, i), vision::masked(img, 3, 64, 8, i));
            assert_eq!(set.view_image(edges, i), vision::colour_edges(img, 3, 64));
        }
        c.data.mask_side = None;
        c.data.edges = Edges::Luminance;
        let plain = load_test(&c.data, None).unwrap();
        assert_eq!(plain.copies, Some(Copies::default()));
        let img = plain.image(0);
        assert_eq!(
            plain.view_image(masked, 0),
            vision::masked(img, 3, 64, 24, 0)
        );
        assert_eq!(plain.view_image(edges, 0), vision::edges(img, 3, 64));
    }

    fn label(name: &str, classes: usize) -> ModalityConfig {
        ModalityConfig::new(
            name,
            ExpertConfig::Label {
                model: LabelModel { classes, hidden: 4 },
            },
        )
    }

    #[test]
    fn labels_named_after_a_slot_read_it_and_one_label_reads_the_class() {
        let kind = DatasetKind::Shapes(mmvae_data::shapes::Level::L2);
        let set = |labels: Vec<u32>| {
            let n = labels.len();
            ImageLabelSet::new(kind, 3, (2, 2), vec![0; n * 12], labels)
        };
        let classes = kind.num_classes();
        let (train, val) = (set((0..classes as u32).collect()), set(vec![0]));
        let with = |extra: Vec<ModalityConfig>| {
            let mut c = TrainConfig::tiny(kind);
            c.modalities.extend(extra);
            check_modalities(&c, &train, &val)
        };
        with(vec![
            label("shape", 3),
            label("size", 2),
            label("class", classes),
        ])
        .unwrap();
        // The batch feeds each its own value.
        let layout = crate::io::batch::Layout {
            names: vec!["shape".into(), "size".into(), "what".into()],
            kinds: vec![ModalityKind::Label; 3],
            max_len: 4,
        };
        let captioner = Captioner::new(kind, 0);
        let source = crate::io::batch::CaptionSource {
            captioner,
            set: CaptionSet::Train,
            stream: 0,
        };
        let vocab = build_vocab(&captioner, TokenLevel::Word);
        let items: Vec<usize> = (0..classes).collect();
        let hb = HostBatch::gather(&layout, &train, &items, source, &vocab);
        let want = |f: &dyn Fn(usize) -> usize| {
            crate::io::batch::HostInput::Label((0..classes).map(|c| f(c) as i64).collect())
        };
        // Shapes level 2's slots: size, then shape.
        assert_eq!(hb.inputs[0], want(&|c| kind.attributes(c)[1]));
        assert_eq!(hb.inputs[1], want(&|c| kind.attributes(c)[0]));
        assert_eq!(hb.inputs[2], want(&|c| c));
        let e = with(vec![label("class", classes), label("digit", classes)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("class, digit") && e.contains("size, shape"),
            "{e}"
        );
        let e = with(vec![label("shape", 2)]).unwrap_err().to_string();
        assert!(
            e.contains("modalities.shape.model.classes") && e.contains("3 values"),
            "{e}"
        );
    }

    fn cfg(f: f64, unpaired: Unpaired) -> TrainConfig {
        let mut c = TrainConfig::tiny(DatasetKind::Mnist);
        c.modalities.push(ModalityConfig::new(
            "digit",
            ExpertConfig::Label {
                model: LabelModel {
                    classes: 10,
                    hidden: 4,
                },
            },
        ));
        c.data.paired_fraction = f;
        c.data.unpaired = unpaired;
        c
    }

    #[test]
    fn a_seeded_fraction_is_paired_and_the_rest_keep_one_modality() {
        let n = 1000;
        let p = Pairing::new(&cfg(0.1, Unpaired::Random), n);
        assert_eq!(p.paired().len(), 100);
        assert_eq!(p, Pairing::new(&cfg(0.1, Unpaired::Random), n));
        let mut other = cfg(0.1, Unpaired::Random);
        other.seed = 2;
        assert_ne!(p.paired(), Pairing::new(&other, n).paired());
        // Every unpaired item keeps exactly one modality; random spreads
        // them over all three.
        let mut hb = HostBatch {
            size: n,
            inputs: Vec::new(),
            present: vec![1.0; n * 3],
            labels: vec![0; n],
            captions: vec![String::new(); n],
        };
        let all: Vec<usize> = (0..n).collect();
        p.apply(&mut hb, &all);
        let mut kept = [0usize; 3];
        for i in 0..n {
            let row = &hb.present[i * 3..i * 3 + 3];
            let on = row.iter().filter(|&&v| v == 1.0).count();
            if p.paired().contains(&i) {
                assert_eq!(on, 3);
            } else {
                assert_eq!(on, 1, "{row:?}");
                kept[row.iter().position(|&v| v == 1.0).unwrap()] += 1;
            }
        }
        assert!(kept.iter().all(|&k| k > 250), "{kept:?}");
        // The named policies.
        let keep_of = |u: Unpaired| {
            let p = Pairing::new(&cfg(0.5, u), 10);
            (0..10).map(|i| p.kept[i]).collect::<Vec<_>>()
        };
        let first = keep_of(Unpaired::First);
        assert!(first.iter().flatten().all(|&m| m == 0));
        let alt = keep_of(Unpaired::Alternate);
        assert!(alt
            .iter()
            .enumerate()
            .all(|(i, k)| k.is_none_or(|m| m == i % 3)));
        let only = keep_of(Unpaired::Only("digit".into()));
        assert!(only.iter().flatten().all(|&m| m == 2));
        // At least one item stays paired, and a fraction of 1 pairs all.
        assert_eq!(
            Pairing::new(&cfg(0.0001, Unpaired::Random), 50)
                .paired()
                .len(),
            1
        );
        assert_eq!(
            Pairing::new(&cfg(1.0, Unpaired::Random), 50).paired().len(),
            50
        );
    }

    #[test]
    fn dropping_unpaired_items_cycles_the_paired_ones_to_the_same_length() {
        let p = Pairing::new(&cfg(0.1, Unpaired::Drop), 100);
        let items = p.items(0);
        assert_eq!(items.len(), 100);
        let paired = p.paired();
        assert!(items.iter().all(|i| paired.contains(i)));
        for i in &paired {
            assert_eq!(items.iter().filter(|&j| j == i).count(), 10);
        }
        assert_eq!(
            Pairing::new(&cfg(0.1, Unpaired::Random), 100).items(3),
            (0..100).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_paired_share_oversamples_the_pairs_and_rotates_the_rest() {
        let mut c = cfg(0.1, Unpaired::Random);
        c.data.paired_share = Some(0.5);
        let p = Pairing::new(&c, 100);
        let paired = p.paired();
        let mut seen = std::collections::BTreeSet::new();
        for epoch in 0..2 {
            let items = p.items(epoch);
            assert_eq!(items.len(), 100);
            let from_pairs = items.iter().filter(|i| paired.contains(i)).count();
            assert_eq!(from_pairs, 50);
            // Each pair five times an epoch; 50 distinct unpaired items.
            for i in &paired {
                assert_eq!(items.iter().filter(|&j| j == i).count(), 5);
            }
            let unpaired: std::collections::BTreeSet<usize> = items
                .iter()
                .copied()
                .filter(|i| !paired.contains(i))
                .collect();
            assert_eq!(unpaired.len(), 50);
            seen.extend(unpaired);
        }
        // Two epochs cover 100 draws of the 90 unpaired items: all of them.
        assert_eq!(seen.len(), 90);
    }
}
