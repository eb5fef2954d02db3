//! Experiment grids: one TOML file names a base config, a list of cells
//! (each a config with overrides) and seeds; `mmvae sweep` trains and
//! evaluates every (cell, seed) once and writes a leaderboard with the
//! mean ± standard deviation over seeds.
//!
//! ```toml
//! base = "configs/polymnist.toml"   # paths are relative to the working folder
//! seeds = [0, 1, 2]
//! out = "runs/sweep-polymnist"      # default: runs/sweep-<file stem>
//! metrics = ["coherence"]           # the groups of `mmvae eval --metrics`
//! set = { "optim.epochs" = 4 }      # every cell's overrides, before its own
//! show = ["m0 -> m1", "m0+m1 -> m2"] # coherence-matrix cells as columns
//!
//! [[cells]]
//! name = "poe"
//! set = { "loss.sampled_subsets" = 0 }
//!
//! [[cells]]
//! name = "moe"
//! config = "configs/polymnist-moe.toml"   # instead of the base
//! set = { "optim.epochs" = 4 }
//! ```
//!
//! `set` keys are dotted paths into the config (`model.fusion`,
//! `loss.beta`, `modalities.grey.model.levels`: a modality by its name);
//! each value replaces the one there (a missing table is created). The
//! sweep's own `set` applies to every cell first, then the cell's. The
//! seed of a run replaces the config's `seed`.
//!
//! `show` names cells of the coherence matrix to list as columns of their
//! own (the leaderboard otherwise has their means by number of inputs):
//! `given -> generated`, the given modalities joined by `+` in the
//! config's order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{ModelError, Result};

/// Largest sweep file read.
const MAX_SWEEP_BYTES: u64 = 1 << 20;

/// A sweep file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The config every cell starts from (unless it names its own).
    pub base: PathBuf,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Where the runs and the leaderboard go.
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Metric groups measured on each run (`mmvae eval --metrics`).
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    /// Dotted config paths and the values that replace them in every cell
    /// (before the cell's own `set`).
    #[serde(default)]
    pub set: toml::Table,
    /// Coherence-matrix cells listed as columns: `given -> generated`.
    #[serde(default)]
    pub show: Vec<ShownCell>,
    pub cells: Vec<CellSpec>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

fn default_metrics() -> Vec<String> {
    vec!["coherence".into()]
}

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellSpec {
    pub name: String,
    /// A config replacing the base for this cell.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Dotted config paths and the values that replace them.
    #[serde(default)]
    pub set: toml::Table,
}

impl SweepSpec {
    /// Read and check a sweep file.
    pub fn load(path: &Path) -> Result<SweepSpec> {
        let bytes = mmvae_data::fsutil::read_limited(path, MAX_SWEEP_BYTES, "the sweep file")?;
        let text = String::from_utf8(bytes)
            .map_err(|e| ModelError::Config(format!("{}: not UTF-8 text: {e}", path.display())))?;
        let mut spec: SweepSpec = toml::from_str(&text).map_err(|e| {
            ModelError::Config(format!(
                "{}: {}",
                path.display(),
                e.to_string().replace('\n', " ")
            ))
        })?;
        if spec.out.is_none() {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
            spec.out = Some(PathBuf::from("runs").join(format!("sweep-{stem}")));
        }
        spec.check(path)?;
        Ok(spec)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| Err(ModelError::Config(format!("{}: {msg}", path.display())));
        if self.cells.is_empty() {
            return bad("`cells` is empty: list at least one [[cells]]".into());
        }
        if self.seeds.is_empty() {
            return bad("`seeds` is empty".into());
        }
        for (i, c) in self.cells.iter().enumerate() {
            let ok = !c.name.is_empty()
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' || ch == '.');
            if !ok {
                return bad(format!(
                    "`cells[{i}].name` must be letters, digits, `_`, `-` or `.` (it names a folder)"
                ));
            }
            if self.cells[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("`cells[{i}].name`: `{}` is given twice", c.name));
            }
        }
        let mut seen = self.seeds.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.seeds.len() {
            return bad("`seeds` repeats a seed".into());
        }
        Ok(())
    }

    /// Check that `show` names modalities of `config`, the given ones in
    /// the config's order (as the coherence matrix names its subsets).
    pub fn check_shown(&self, config: &TrainConfig) -> Result<()> {
        let names: Vec<&str> = config.modalities.iter().map(|m| m.name.as_str()).collect();
        let index = |n: &str| names.iter().position(|m| *m == n);
        for (i, cell) in self.show.iter().enumerate() {
            let bad = |msg: String| {
                Err(ModelError::Config(format!(
                    "`show[{i}]` (`{}`): {msg}",
                    cell.text()
                )))
            };
            let at: Vec<Option<usize>> = cell.given.iter().map(|g| index(g)).collect();
            let unknown = cell
                .given
                .iter()
                .chain(std::iter::once(&cell.generated))
                .find(|n| index(n).is_none());
            if let Some(n) = unknown {
                return bad(format!(
                    "`{n}` is not a modality of the config ({})",
                    names.join(", ")
                ));
            }
            if at.windows(2).any(|w| w[0] >= w[1]) {
                return bad(format!(
                    "write the given modalities once each, in the config's order ({})",
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The folder of the sweep's runs and leaderboard: `out`, which
    /// [`SweepSpec::load`] sets to `runs/sweep-<file stem>` where the file
    /// names none (a spec built in code without one: `runs/sweep`).
    pub fn out_dir(&self) -> &Path {
        self.out.as_deref().unwrap_or(Path::new("runs/sweep"))
    }

    /// The folder of one run.
    pub fn run_dir(&self, cell: &CellSpec, seed: u64) -> PathBuf {
        self.out_dir().join(&cell.name).join(format!("seed-{seed}"))
    }

    /// The config of `cell` with `seed`: its file, the overrides, the seed;
    /// parsed and validated.
    pub fn cell_config(&self, cell: &CellSpec, seed: u64) -> Result<TrainConfig> {
        let path = cell.config.as_deref().unwrap_or(&self.base);
        let text = String::from_utf8(mmvae_data::fsutil::read_limited(
            path,
            crate::config::MAX_CONFIG_BYTES,
            "the config",
        )?)
        .map_err(|e| ModelError::Config(format!("{}: not UTF-8 text: {e}", path.display())))?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
            ModelError::Config(format!(
                "{}: {}",
                path.display(),
                e.to_string().replace('\n', " ")
            ))
        })?;
        for (key, value) in &self.set {
            set_dotted(&mut table, key, value.clone())
                .map_err(|msg| ModelError::Config(format!("the sweep's `set.\"{key}\"`: {msg}")))?;
        }
        for (key, value) in &cell.set {
            set_dotted(&mut table, key, value.clone()).map_err(|msg| {
                ModelError::Config(format!("cell `{}`: `set.\"{key}\"`: {msg}", cell.name))
            })?;
        }
        table.insert("seed".into(), toml::Value::Integer(seed as i64));
        let origin = PathBuf::from(format!(
            "{} (cell {}, seed {seed})",
            path.display(),
            cell.name
        ));
        TrainConfig::from_toml_str(
            &toml::to_string(&table).expect("a table serialises"),
            &origin,
        )
    }
}

/// Replace the value at the dotted path `key` of `table` (creating missing
/// tables on the way). A part after an array of tables names the element
/// whose `name` it is (`modalities.grey.model.levels`).
pub fn set_dotted(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("is not a dotted path like `model.fusion`".into());
    }
    let (last, path) = parts.split_last().expect("non-empty");
    let mut at = table;
    let mut depth = 0;
    while depth < path.len() {
        let entry = at
            .entry(path[depth].to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = match entry {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                depth += 1;
                let Some(name) = parts.get(depth).filter(|_| depth < path.len()) else {
                    return Err(format!(
                        "`{}` is a list: name one of its elements, as in `{}.NAME.…`",
                        parts[..depth].join("."),
                        parts[..depth].join(".")
                    ));
                };
                named_element(items, name).ok_or_else(|| {
                    format!(
                        "`{}` has no element named `{name}`",
                        parts[..depth].join(".")
                    )
                })?
            }
            _ => {
                return Err(format!(
                    "`{}` is a value, not a table",
                    parts[..=depth].join(".")
                ))
            }
        };
        depth += 1;
    }
    at.insert(last.to_string(), value);
    Ok(())
}

/// The table among `items` whose `name` is `name`.
fn named_element<'a>(items: &'a mut [toml::Value], name: &str) -> Option<&'a mut toml::Table> {
    items.iter_mut().find_map(|item| match item {
        toml::Value::Table(t) if t.get("name").and_then(|n| n.as_str()) == Some(name) => Some(t),
        _ => None,
    })
}

/// One cell of the coherence matrix: the modalities given and the one
/// generated. Read from a sweep file as text, `a+b -> c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownCell {
    pub given: Vec<String>,
    pub generated: String,
}

impl<'de> Deserialize<'de> for ShownCell {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ShownCell::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`show`: `{text}` is not `given -> generated` (e.g. `grey -> image`)"
            ))
        })
    }
}

impl ShownCell {
    /// `a+b -> c`; `None` unless both sides name modalities.
    pub fn parse(text: &str) -> Option<ShownCell> {
        let (given, generated) = text.split_once("->")?;
        let given: Vec<String> = given.split('+').map(|g| g.trim().to_string()).collect();
        let generated = generated.trim().to_string();
        let word = |w: &str| !w.is_empty() && !w.contains(char::is_whitespace);
        (given.iter().all(|g| word(g)) && word(&generated) && !generated.contains("->"))
            .then_some(ShownCell { given, generated })
    }

    /// The subset's key in the evaluation's coherence matrix.
    fn subset(&self) -> String {
        self.given.join("+")
    }

    /// As a sweep file writes it: `a+b -> c`.
    pub fn text(&self) -> String {
        format!("{} -> {}", self.subset(), self.generated)
    }

    /// The leaderboard column's name.
    pub fn column(&self) -> String {
        format!("{} → {}", self.subset(), self.generated)
    }
}

/// What one finished run left: `result.json` in its folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub cell: String,
    pub seed: u64,
    pub train_seconds: f64,
    /// The evaluation report (as `mmvae eval` writes it).
    pub eval: serde_json::Value,
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// One column of the leaderboard: where its value sits in a run's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    /// Shown as a percentage.
    pub percent: bool,
}

/// The values a run's result gives for the leaderboard's columns, by name:
/// coherence given k inputs, joint coherence, the `shown` cells of the
/// coherence matrix, the text↔image figures where present, and the
/// training time.
pub fn row_values(r: &RunResult, shown: &[ShownCell]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let e = &r.eval;
    for cell in shown {
        let at = e
            .pointer("/coherence_matrix/cells")
            .and_then(|c| c.get(cell.subset()))
            .and_then(|c| c.get(&cell.generated))
            .and_then(|v| v.as_f64());
        if let Some(x) = at {
            out.insert(cell.column(), x);
        }
    }
    if let Some(by) = e
        .pointer("/coherence_matrix/by_inputs")
        .and_then(|v| v.as_object())
    {
        for (k, v) in by {
            if let Some(x) = v.as_f64() {
                out.insert(format!("coherence given {k}"), x);
            }
        }
    }
    if let Some(x) = e
        .pointer("/coherence_matrix/joint")
        .and_then(|v| v.as_f64())
    {
        out.insert("joint coherence".into(), x);
    }
    if let Some(fid) = e.pointer("/coherence_matrix/fid") {
        fid_values(fid, &mut out);
    }
    for (name, ptr) in [
        ("text -> image", "/text_to_image/strict"),
        ("image -> text", "/image_to_text/strict"),
        ("FID", "/fid/text_to_image"),
    ] {
        if let Some(x) = e.pointer(ptr).and_then(|v| v.as_f64()) {
            out.insert(name.into(), x);
        }
    }
    if let Some(x) = e.pointer("/test_loss/loss").and_then(|v| v.as_f64()) {
        out.insert("test loss".into(), x);
    }
    out.insert("train minutes".into(), r.train_seconds / 60.0);
    out
}

/// The coherence matrix's Fréchet distances: by number of inputs (the
/// mean over image outputs), of prior samples, and per output (the mean of
/// its distances by number of inputs).
fn fid_values(fid: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
    let number = |v: &serde_json::Value| v.as_f64();
    if let Some(by) = fid.get("by_inputs").and_then(|v| v.as_object()) {
        for (k, v) in by {
            if let Some(x) = number(v) {
                out.insert(format!("FID given {k}"), x);
            }
        }
    }
    if let Some(x) = fid.get("prior_mean").and_then(number) {
        if fid
            .get("prior")
            .and_then(|p| p.as_object())
            .is_some_and(|p| !p.is_empty())
        {
            out.insert("FID prior".into(), x);
        }
    }
    if let Some(per) = fid.get("by_output").and_then(|v| v.as_object()) {
        for (name, by) in per {
            let xs: Vec<f64> = by
                .as_object()
                .map(|o| o.values().filter_map(number).collect())
                .unwrap_or_default();
            if !xs.is_empty() {
                out.insert(
                    format!("FID {name}"),
                    xs.iter().sum::<f64>() / xs.len() as f64,
                );
            }
        }
    }
}

/// Every cell's mean ± sd over its finished seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    pub columns: Vec<Column>,
    pub rows: Vec<LeaderboardRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderboardRow {
    pub cell: String,
    pub seeds: Vec<u64>,
    /// Column name → (mean, sd); absent where no run has the value.
    pub values: BTreeMap<String, (f64, f64)>,
}

impl Leaderboard {
    /// From the finished runs, in the order of the sweep's cells.
    pub fn from_results(spec: &SweepSpec, results: &[RunResult]) -> Leaderboard {
        let shown = &spec.show;
        let mut columns: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        for cell in &spec.cells {
            let runs: Vec<&RunResult> = results.iter().filter(|r| r.cell == cell.name).collect();
            if runs.is_empty() {
                continue;
            }
            let per_run: Vec<BTreeMap<String, f64>> =
                runs.iter().map(|r| row_values(r, shown)).collect();
            let mut values = BTreeMap::new();
            let names: std::collections::BTreeSet<&String> =
                per_run.iter().flat_map(|m| m.keys()).collect();
            for name in names {
                let xs: Vec<f64> = per_run
                    .iter()
                    .filter_map(|m| m.get(name))
                    .copied()
                    .collect();
                values.insert(name.clone(), mean_sd(&xs));
                if !columns.contains(name) {
                    columns.push(name.clone());
                }
            }
            rows.push(LeaderboardRow {
                cell: cell.name.clone(),
                seeds: runs.iter().map(|r| r.seed).collect(),
                values,
            });
        }
        let shown_names: Vec<String> = shown.iter().map(ShownCell::column).collect();
        columns.sort_by_key(|c| column_order(c, &shown_names));
        Leaderboard {
            columns: columns
                .into_iter()
                .map(|name| Column {
                    percent: !(matches!(name.as_str(), "train minutes" | "test loss")
                        || name.starts_with("FID")),
                    name,
                })
                .collect(),
            rows,
        }
    }

    /// A markdown table: one row per cell, `mean ± sd` per column.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| cell | seeds |");
        for c in &self.columns {
            s.push_str(&format!(" {} |", c.name));
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---|".repeat(self.columns.len()));
        s.push('\n');
        for r in &self.rows {
            let seeds: Vec<String> = r.seeds.iter().map(u64::to_string).collect();
            s.push_str(&format!("| {} | {} |", r.cell, seeds.join(", ")));
            for c in &self.columns {
                let cell = match r.values.get(&c.name) {
                    None => "–".to_string(),
                    Some(&(m, sd)) => {
                        let (m, sd, unit) = if c.percent {
                            (100.0 * m, 100.0 * sd, "%")
                        } else {
                            (m, sd, "")
                        };
                        if r.seeds.len() > 1 {
                            format!("{m:.2} ± {sd:.2}{unit}")
                        } else {
                            format!("{m:.2}{unit}")
                        }
                    }
                };
                s.push_str(&format!(" {cell} |"));
            }
            s.push('\n');
        }
        s
    }
}

/// Columns in reading order: coherence by inputs, joint, the shown cells
/// (in the sweep's order), the pairs, loss, time.
fn column_order(name: &str, shown: &[String]) -> (usize, usize, String) {
    if let Some(i) = shown.iter().position(|s| s == name) {
        return (100, i + 1, String::new());
    }
    let rank = if let Some(k) = name.strip_prefix("coherence given ") {
        k.parse::<usize>().unwrap_or(99)
    } else {
        match name {
            "joint coherence" => 100,
            "text -> image" => 101,
            "image -> text" => 102,
            "FID" => 103,
            "test loss" => 107,
            _ if name.starts_with("FID given ") => 104,
            "FID prior" => 105,
            _ if name.starts_with("FID ") => 106,
            _ => 108,
        }
    };
    (rank, 0, name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dotted path reaches a table, creates a missing one, and names an
    /// element of an array of tables by its `name`; what it cannot reach
    /// is refused with the path.
    #[test]
    fn set_reaches_tables_and_named_elements() {
        let mut t: toml::Table = toml::from_str(
            "[model]\nlatent = 8\n[[modalities]]\nname = \"image\"\nmodel = { kind = \"conv\" }\n[[modalities]]\nname = \"grey\"\nmodel = { kind = \"conv\" }\n",
        )
        .unwrap();
        let yes = toml::Value::Boolean(true);
        set_dotted(&mut t, "model.latent", toml::Value::Integer(4)).unwrap();
        set_dotted(&mut t, "loss.beta", toml::Value::Float(0.5)).unwrap();
        set_dotted(&mut t, "modalities.grey.model.levels", yes.clone()).unwrap();
        assert_eq!(t["model"]["latent"].as_integer(), Some(4));
        assert_eq!(t["loss"]["beta"].as_float(), Some(0.5));
        let modalities = t["modalities"].as_array().unwrap();
        assert_eq!(modalities[1]["model"]["levels"].as_bool(), Some(true));
        assert!(modalities[0]["model"].get("levels").is_none());
        let refused = |t: &mut toml::Table, key: &str| set_dotted(t, key, yes.clone()).unwrap_err();
        let e = refused(&mut t, "modalities.edges.model.levels");
        assert!(
            e.contains("`modalities` has no element named `edges`"),
            "{e}"
        );
        let e = refused(&mut t, "modalities.grey");
        assert!(e.contains("`modalities` is a list"), "{e}");
        let e = refused(&mut t, "model.latent.x");
        assert!(e.contains("`model.latent` is a value"), "{e}");
        let e = refused(&mut t, "model..latent");
        assert!(e.contains("dotted path"), "{e}");
    }

    /// Every sweep file shipped in `sweeps/` loads, and each of its cells'
    /// configs (paths relative to the repository root) parses with its
    /// overrides for every seed.
    #[test]
    fn shipped_sweeps_load_with_every_cell_config() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut n = 0;
        for entry in std::fs::read_dir(root.join("sweeps")).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let mut spec = SweepSpec::load(&p).unwrap_or_else(|e| panic!("{e}"));
            spec.base = root.join(&spec.base);
            for cell in &mut spec.cells {
                cell.config = cell.config.as_ref().map(|c| root.join(c));
            }
            for cell in &spec.cells {
                for &seed in &spec.seeds {
                    let c = spec
                        .cell_config(cell, seed)
                        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    assert_eq!(c.seed, seed);
                    spec.check_shown(&c)
                        .unwrap_or_else(|e| panic!("{} {}: {e}", p.display(), cell.name));
                    let epochs = cell.set.get("optim.epochs");
                    if let Some(toml::Value::Integer(e)) =
                        epochs.or_else(|| spec.set.get("optim.epochs"))
                    {
                        assert_eq!(c.optim.epochs as i64, *e, "{}", cell.name);
                    }
                }
            }
            n += 1;
        }
        assert!(n >= 2, "expected the shipped sweep files");
    }

    fn spec_text(base: &Path) -> String {
        format!(
            r#"
base = "{}"
seeds = [0, 3]
out = "runs/s"
set = {{ "optim.epochs" = 3, "loss.beta" = 0.5 }}

[[cells]]
name = "poe"

[[cells]]
name = "moe"
set = {{ "model.fusion" = "moe", "optim.epochs" = 2 }}
"#,
            base.display()
        )
    }

    fn column_names(lb: &Leaderboard) -> Vec<&str> {
        lb.columns.iter().map(|c| c.name.as_str()).collect()
    }

    fn write_base(dir: &Path) -> PathBuf {
        let base = dir.join("base.toml");
        std::fs::write(
            &base,
            TrainConfig::tiny(mmvae_data::DatasetKind::Mnist).to_toml(),
        )
        .unwrap();
        base
    }

    #[test]
    fn cells_apply_their_overrides_and_the_runs_seed() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_base(dir.path());
        let sweep = dir.path().join("grid.toml");
        std::fs::write(&sweep, spec_text(&base)).unwrap();
        let spec = SweepSpec::load(&sweep).unwrap();
        assert_eq!(spec.seeds, vec![0, 3]);
        let poe = spec.cell_config(&spec.cells[0], 3).unwrap();
        let moe = spec.cell_config(&spec.cells[1], 0).unwrap();
        assert_eq!(poe.seed, 3);
        assert_eq!(moe.seed, 0);
        assert_eq!(poe.model.fusion, crate::config::Fusion::Poe);
        assert_eq!(moe.model.fusion, crate::config::Fusion::Moe);
        // The sweep's `set` reaches every cell; a cell's own wins over it.
        assert_eq!(poe.optim.epochs, 3);
        assert_eq!(moe.optim.epochs, 2);
        assert_eq!((poe.loss.beta, moe.loss.beta), (0.5, 0.5));
        assert_eq!(
            spec.run_dir(&spec.cells[1], 0),
            Path::new("runs/s/moe/seed-0")
        );
    }

    #[test]
    fn bad_sweeps_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_base(dir.path());
        let sweep = dir.path().join("grid.toml");
        let cases = [
            ("cells = []", "`cells` is empty"),
            ("seeds = []\n[[cells]]\nname = \"a\"", "`seeds` is empty"),
            ("[[cells]]\nname = \"a/b\"", "cells[0].name"),
            (
                "[[cells]]\nname = \"a\"\n[[cells]]\nname = \"a\"",
                "given twice",
            ),
            ("seeds = [1, 1]\n[[cells]]\nname = \"a\"", "repeats"),
            ("[[cells]]\nname = \"a\"\nfusion = \"poe\"", "unknown field"),
        ];
        for (body, want) in cases {
            let text = format!("base = \"{}\"\n{body}\n", base.display());
            std::fs::write(&sweep, text).unwrap();
            let e = SweepSpec::load(&sweep).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        // An override the config refuses names the cell (or the sweep) and
        // the key.
        let config_error = |body: &str| {
            std::fs::write(&sweep, format!("base = \"{}\"\n{body}", base.display())).unwrap();
            let spec = SweepSpec::load(&sweep).unwrap();
            spec.cell_config(&spec.cells[0], 0).unwrap_err().to_string()
        };
        let e = config_error("[[cells]]\nname = \"x\"\nset = { \"model.fusion\" = \"nope\" }\n");
        assert!(e.contains("cell x") && e.contains("fusion"), "{e}");
        let e = config_error("set = { \"model.fusion\" = 3 }\n[[cells]]\nname = \"x\"\n");
        assert!(e.contains("fusion"), "{e}");
        let e = config_error("[[cells]]\nname = \"x\"\nset = { \"seed.deep\" = 1 }\n");
        assert!(e.contains("`seed` is a value"), "{e}");
        let e = config_error("set = { \"seed.deep\" = 1 }\n[[cells]]\nname = \"x\"\n");
        assert!(e.contains("the sweep's `set.\"seed.deep\"`"), "{e}");
    }

    #[test]
    fn mean_and_sample_sd_match_the_closed_form() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        // Σ (x − 2.5)² = 5, / (n − 1) = 5/3.
        assert!((sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[7.0]), (7.0, 0.0));
    }

    #[test]
    fn the_leaderboard_averages_seeds_per_cell_in_cell_order() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_base(dir.path());
        let sweep = dir.path().join("grid.toml");
        std::fs::write(&sweep, spec_text(&base)).unwrap();
        let spec = SweepSpec::load(&sweep).unwrap();
        let run = |cell: &str, seed, g1: f64, joint: f64| RunResult {
            cell: cell.into(),
            seed,
            train_seconds: 120.0,
            eval: serde_json::json!({
                "coherence_matrix": { "by_inputs": { "1": g1 }, "joint": joint }
            }),
        };
        let results = [
            run("moe", 0, 0.5, 0.1),
            run("poe", 0, 0.8, 0.2),
            run("poe", 3, 0.6, 0.4),
        ];
        let lb = Leaderboard::from_results(&spec, &results);
        assert_eq!(lb.rows[0].cell, "poe");
        assert_eq!(lb.rows[0].seeds, vec![0, 3]);
        let (m, sd) = lb.rows[0].values["coherence given 1"];
        assert!((m - 0.7).abs() < 1e-12 && (sd - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(lb.rows[1].values["joint coherence"], (0.1, 0.0));
        let names = column_names(&lb);
        assert_eq!(
            names,
            ["coherence given 1", "joint coherence", "train minutes"]
        );
        let md = lb.markdown();
        assert!(
            md.contains("| poe | 0, 3 | 70.00 ± 14.14% | 30.00 ± 14.14% | 2.00 ± 0.00 |"),
            "{md}"
        );
        assert!(md.contains("| moe | 0 | 50.00% | 10.00% | 2.00 |"), "{md}");
    }

    #[test]
    fn the_matrix_fids_become_columns_after_the_coherence() {
        let r = RunResult {
            cell: "poe".into(),
            seed: 0,
            train_seconds: 60.0,
            eval: serde_json::json!({
                "coherence_matrix": {
                    "by_inputs": { "1": 0.5, "2": 0.75 },
                    "joint": 0.25,
                    "fid": {
                        "by_inputs": { "1": 30.0, "2": 20.0 },
                        "by_output": { "m0": { "1": 10.0, "2": 20.0 }, "m1": { "1": 50.0 } },
                        "prior": { "m0": 40.0, "m1": 60.0 },
                        "prior_mean": 50.0
                    }
                }
            }),
        };
        let v = row_values(&r, &[]);
        assert_eq!(v["FID given 1"], 30.0);
        assert_eq!(v["FID prior"], 50.0);
        assert_eq!(v["FID m0"], 15.0, "the mean of its distances by inputs");
        assert_eq!(v["FID m1"], 50.0);
        let dir = tempfile::tempdir().unwrap();
        let base = write_base(dir.path());
        let sweep = dir.path().join("grid.toml");
        std::fs::write(&sweep, spec_text(&base)).unwrap();
        let spec = SweepSpec::load(&sweep).unwrap();
        let lb = Leaderboard::from_results(&spec, &[r]);
        let names = column_names(&lb);
        assert_eq!(
            names,
            [
                "coherence given 1",
                "coherence given 2",
                "joint coherence",
                "FID given 1",
                "FID given 2",
                "FID prior",
                "FID m0",
                "FID m1",
                "train minutes"
            ]
        );
        assert!(
            lb.columns
                .iter()
                .all(|c| c.percent
                    == (c.name.starts_with("coherence") || c.name.starts_with("joint")))
        );
        let md = lb.markdown();
        assert!(
            md.contains("| 30.00 | 20.00 | 50.00 | 15.00 | 50.00 | 1.00 |"),
            "{md}"
        );
    }

    /// `show` lists coherence-matrix cells as columns after the joint
    /// coherence, in the sweep's order; it is checked against the config.
    #[test]
    fn shown_matrix_cells_become_columns_in_the_sweeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let base = write_base(dir.path());
        let sweep = dir.path().join("grid.toml");
        let text = spec_text(&base).replace(
            "out = \"runs/s\"",
            "out = \"runs/s\"\nshow = [\"text -> image\", \" image+text->text \"]",
        );
        std::fs::write(&sweep, &text).unwrap();
        let spec = SweepSpec::load(&sweep).unwrap();
        let config = spec.cell_config(&spec.cells[0], 0).unwrap();
        spec.check_shown(&config).unwrap();
        let r = RunResult {
            cell: "poe".into(),
            seed: 0,
            train_seconds: 60.0,
            eval: serde_json::json!({
                "coherence_matrix": {
                    "by_inputs": { "1": 0.5 },
                    "joint": 0.25,
                    "cells": {
                        "image": { "text": 0.75 },
                        "text": { "image": 0.125 },
                        "image+text": { "image": 0.5, "text": 0.875 }
                    }
                }
            }),
        };
        let lb = Leaderboard::from_results(&spec, &[r]);
        let names = column_names(&lb);
        assert_eq!(
            names,
            [
                "coherence given 1",
                "joint coherence",
                "text → image",
                "image+text → text",
                "train minutes"
            ]
        );
        assert!(lb.markdown().contains("| 12.50% | 87.50% | 1.00 |"));

        // Unknown modalities and subsets out of the config's order are
        // refused, naming the entry.
        for (show, want) in [
            ("grey -> image", "`grey` is not a modality"),
            ("image -> grey", "`grey` is not a modality"),
            ("text+image -> image", "in the config's order"),
            ("image+image -> text", "in the config's order"),
        ] {
            let t = text.replace(
                "show = [\"text -> image\", \" image+text->text \"]",
                &format!("show = [\"{show}\"]"),
            );
            std::fs::write(&sweep, t).unwrap();
            let spec = SweepSpec::load(&sweep).unwrap();
            let e = spec.check_shown(&config).unwrap_err().to_string();
            assert!(e.contains("show[0]") && e.contains(want), "{show}: {e}");
        }
        for bad in [
            "image",
            "-> image",
            "image ->",
            "a b -> c",
            "a -> b -> c",
            "+a -> b",
        ] {
            let t = text.replace(
                "show = [\"text -> image\", \" image+text->text \"]",
                &format!("show = [\"{bad}\"]"),
            );
            std::fs::write(&sweep, t).unwrap();
            let e = SweepSpec::load(&sweep).unwrap_err().to_string();
            let line = text.lines().position(|l| l.starts_with("show")).unwrap() + 1;
            assert!(
                e.contains(&format!("`{bad}` is not `given -> generated`"))
                    && e.contains(&format!("line {line}")),
                "{bad}: {e}"
            );
        }
    }
}
