//! `mmvae data`: check, fetch and look at datasets.

use super::*;
use mmvae_data::vision::{Copies, Edges, PeakRule};
use mmvae_data::ImageLabelSet;
use mmvae_data::VisionSource;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download a dataset from its canonical mirror and verify its SHA-256 sums.
    Fetch {
        /// mnist or fashion-mnist (multimnist and polymnist are built from mnist; celeba must be
        /// downloaded by hand, see docs/datasets.md).
        name: String,
        /// Destination folder (default: $MMVAE_DATA/<name>, else data/<name>).
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Another base URL serving the same files.
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Read both splits of a dataset and report what was read: item counts,
    /// load time, the attribute slots a `label` modality can read, and for
    /// your own pairs every kind of bad line or image (exit 1 if there is
    /// any).
    Check {
        /// A dataset name (mnist, celeba, shapes-l3, …), or the captions file
        /// (or folder) of your own image–caption pairs.
        dataset: String,
        /// Where a named dataset's files are (as for `train`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Pairs: the side images are cropped and resized to.
        #[arg(long, default_value_t = 64)]
        image_size: usize,
        /// Pairs: 1 (grey) or 3 (RGB).
        #[arg(long, default_value_t = 3)]
        channels: usize,
        /// Write the first 8 test items as a PNG grid: one row per item,
        /// one column per image it holds (PolyMNIST's m0 … m4).
        #[arg(long)]
        grid: Option<PathBuf>,
        /// Vision datasets: the masked square's side in pixels, as
        /// `data.mask_side` (default 3/8 of the image's).
        #[arg(long)]
        mask_side: Option<usize>,
        /// Vision datasets: edges of the `luminance` or of each `colour`
        /// channel, as `data.edges`.
        #[arg(long, default_value = "luminance")]
        edges: Edges,
    },
}

pub fn data(c: DataCommand) -> Result<()> {
    match c {
        DataCommand::Fetch { name, dest, mirror } => fetch_data(&name, dest, mirror.as_deref()),
        DataCommand::Check {
            dataset,
            data_dir,
            image_size,
            channels,
            grid,
            mask_side,
            edges,
        } => check_data(
            &dataset,
            data_dir.as_deref(),
            (image_size, channels),
            Copies { mask_side, edges },
            grid.as_deref(),
        ),
    }
}

/// `mmvae data fetch`.
fn fetch_data(name: &str, dest: Option<PathBuf>, mirror: Option<&str>) -> Result<()> {
    let kind = DatasetKind::parse(name)?;
    let dest = dest.unwrap_or_else(|| {
        std::env::var_os(dataset::DATA_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("data"))
            .join(kind.base_name())
    });
    for f in fetch::fetch_dataset(kind, &dest, mirror)? {
        match f {
            fetch::Fetched::Downloaded(p) => {
                outln!("downloaded and verified {}", p.display())
            }
            fetch::Fetched::AlreadyPresent(p) => {
                outln!("already present and verified {}", p.display())
            }
        }
    }
    Ok(())
}

/// `mmvae data check`: a named labelled dataset, or else a pairs file of
/// images `(side, channels)`; a vision set's copies made as `copies` says.
fn check_data(
    dataset: &str,
    data_dir: Option<&Path>,
    (image_size, channels): (usize, usize),
    copies: Copies,
    grid: Option<&Path>,
) -> Result<()> {
    let parsed = DatasetKind::parse(dataset);
    let named = parsed.as_ref().ok().copied().filter(|k| k.is_labelled());
    if copies != Copies::default() && !matches!(named, Some(DatasetKind::Vision(_))) {
        bail!("--mask-side and --edges set how the vision copies are made: `{dataset}` has none");
    }
    let opts = mmvae_data::pairs::PairsOptions {
        side: image_size,
        channels,
        bad: mmvae_data::pairs::BadItems::Skip,
    };
    if named.is_none() && (!(8..=512).contains(&image_size) || !matches!(channels, 1 | 3)) {
        bail!("--image-size must be in 8..=512 and --channels 1 or 3");
    }
    if let Some(kind) = named.filter(|k| k.slots().len() > 1) {
        // What a `label` modality named after a slot reads.
        let slots: Vec<String> = kind
            .slots()
            .iter()
            .map(|(name, values)| format!("{name} ({values})"))
            .collect();
        outln!("Attribute slots (values): {}", slots.join(", "));
    }
    let mut bad = 0;
    // The brightest-value rules of a vision set's copies, fitted on its
    // train split and scored on its test split.
    let mut rules: Vec<PeakRule> = Vec::new();
    for split in [Split::Train, Split::Test] {
        let start = std::time::Instant::now();
        let set = match named {
            Some(kind) => {
                ImageLabelSet::open_with(kind, data_dir, split, default_threads(), copies)?
            }
            None => {
                mmvae_data::pairs::load_split(Path::new(dataset), split, &opts, default_threads())
                    .with_context(|| match &parsed {
                    Err(e) => {
                        format!("`{dataset}` is neither a dataset name ({e}) nor a pairs file")
                    }
                    Ok(_) => format!("`{dataset}` is not a pairs file"),
                })?
            }
        };
        let images = set.image_names();
        let modalities = if images.len() > 1 {
            format!(" ({} images per item: {})", images.len(), images.join(", "))
        } else {
            String::new()
        };
        outln!(
            "{split:?}: {} items of {}x{}x{}{modalities} in {:.2}s",
            set.len(),
            set.channels,
            set.rows,
            set.cols,
            start.elapsed().as_secs_f64()
        );
        for note in &set.notes {
            outln!("  {note}");
        }
        if let DatasetKind::Vision(source) = set.kind {
            check_vision_copies(&set, source, split, &mut rules);
        }
        bad += set.skipped;
        if let (Some(path), Split::Test) = (grid, split) {
            save_first_items(&set, path)?;
        }
    }
    if bad > 0 {
        bail!("{bad} bad items (listed above); training stops at the first unless `data.bad_items = \"skip\"`");
    }
    Ok(())
}

/// What the copies of a vision set keep: how much of the objects the masked
/// square hides (on a source drawn on black), and how well the brightest
/// value of each copy names each attribute, by `rules` fitted on the train
/// split and scored on the test split.
fn check_vision_copies(
    set: &ImageLabelSet,
    source: VisionSource,
    split: Split,
    rules: &mut Vec<PeakRule>,
) {
    if source.on_black() {
        print_mask_cover(&mmvae_data::vision::MaskCover::of(set));
    }
    match split {
        Split::Train => {
            *rules = (0..set.image_names().len())
                .map(|v| PeakRule::fit(set, v))
                .collect();
        }
        Split::Test => print_peak_rules(rules, set),
    }
}

/// How much of the shapes the `masked` copies hide, as shares of the items.
fn print_mask_cover(c: &mmvae_data::vision::MaskCover) {
    let pct = |k: usize| 100.0 * k as f64 / c.items.max(1) as f64;
    outln!(
        "  the masked square hides none of the shape in {:.2}% of items, at least half of it in {:.2}%, three quarters in {:.2}%, all of it in {:.2}%",
        pct(c.none),
        pct(c.half),
        pct(c.three_quarters),
        pct(c.all)
    );
}

/// How well the brightest value of each copy alone names each attribute
/// of the `test` items, by the `rules` fitted on the train items (one per
/// copy, in the order of the set's images).
fn print_peak_rules(rules: &[PeakRule], test: &ImageLabelSet) {
    outln!("  the brightest value of each copy alone names (a rule fitted on the train split):");
    let slots = test.kind.slots();
    for ((v, name), rule) in test.image_names().iter().enumerate().zip(rules) {
        let named: Vec<String> = slots
            .iter()
            .zip(rule.accuracy(test, v))
            .map(|((slot, _), a)| format!("{slot} {:.2}%", 100.0 * a))
            .collect();
        outln!("    {name}: {}", named.join(", "));
    }
}

/// The first 8 items of `set` as a grid, one row per item and one column
/// per image it holds.
fn save_first_items(set: &ImageLabelSet, path: &Path) -> Result<()> {
    let views = set.image_names().len();
    let imgs: Vec<imageio::Image> = (0..set.len().min(8))
        .flat_map(|i| (0..views).map(move |v| (i, v)))
        .map(|(i, v)| {
            imageio::Image::from_bytes(set.channels, set.cols, set.rows, set.view_image(v, i))
        })
        .collect();
    imageio::save_grid(path, &imgs, views)?;
    outln!("test items written to {}", path.display());
    Ok(())
}
