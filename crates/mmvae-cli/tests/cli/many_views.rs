//! Many-modality datasets: PolyMNIST with a sweep, and the vision views.

use super::{fixture, vision_toml};
use crate::common::{fails, ok, words};

/// A tiny PolyMNIST model: three of the five image modalities.
const POLY: &str = r#"
seed = 1
[[modalities]]
name = "m0"
kind = "image"
model = { kind = "mlp", hidden = 32 }
[[modalities]]
name = "m1"
kind = "image"
model = { kind = "mlp", hidden = 32 }
[[modalities]]
name = "m3"
kind = "image"
model = { kind = "mlp", hidden = 32 }
[model]
latent = 8
fusion = "poe"
[optim]
lr = 0.005
batch_size = 50
epochs = 1
[data]
dataset = "polymnist"
val_size = 50
train_limit = 200
[loss]
beta = 1.0
kl_anneal_steps = 0
"#;

#[test]
fn polymnist_renders_from_mnist_and_a_sweep_trains_each_cell_once() {
    let f = fixture();
    let d = &f.root;
    let out = ok(
        d,
        &words("data check polymnist --data-dir data --grid grid.png"),
    );
    assert!(
        out.contains("5 images per item: m0, m1, m2, m3, m4"),
        "{out}"
    );
    assert!(d.join("grid.png").is_file());
    ok(
        d,
        &words("classifier train --dataset polymnist --data-dir data --out clf --epochs 1 --train-limit 300 --quiet"),
    );
    // One classifier per modality, each in the folder of its name.
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("clf/classifier.json")).unwrap()).unwrap();
    assert_eq!(info["test_view_accuracy"].as_array().unwrap().len(), 5);
    assert_eq!(
        info["per_modality"],
        serde_json::json!(["m0", "m1", "m2", "m3", "m4"])
    );
    assert!(d.join("clf/m4/classifier.bpk").is_file() && !d.join("clf/classifier.bpk").exists());

    std::fs::write(d.join("poly.toml"), POLY).unwrap();
    std::fs::write(
        d.join("grid.toml"),
        "base = \"poly.toml\"\nout = \"sw\"\nmetrics = [\"coherence\", \"fid\"]\nshow = [\"m0 -> m1\", \"m0+m3 -> m1\"]\n[[cells]]\nname = \"poe\"\n[[cells]]\nname = \"moe\"\nset = { \"model.fusion\" = \"moe\" }\n",
    )
    .unwrap();
    let sweep = words("sweep grid.toml --data-dir data --classifier clf --limit 40 --table t.md");
    let first = ok(d, &sweep);
    assert!(first.contains("poe seed 0: training"), "{first}");
    let table = std::fs::read_to_string(d.join("t.md")).unwrap();
    assert!(
        table.contains("coherence given 1") && table.contains("coherence given 2"),
        "{table}"
    );
    assert!(
        table.contains("| poe | 0 |") && table.contains("| moe | 0 |"),
        "{table}"
    );
    assert!(
        table.contains("FID given 1") && table.contains("FID prior") && table.contains("FID m3"),
        "{table}"
    );
    assert!(
        table.contains("| joint coherence | m0 → m1 | m0+m3 → m1 |"),
        "{table}"
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("sw/moe/seed-0/result.json")).unwrap())
            .unwrap();
    let cells = result["eval"]["coherence_matrix"]["cells"]
        .as_object()
        .unwrap();
    assert_eq!(cells.len(), 7, "three modalities, seven subsets");
    assert!(cells.contains_key("m0+m1+m3"));
    // Joint coherence is measured on prior samples of every readable image.
    let joint = &result["eval"]["coherence_matrix"]["joint_samples"];
    assert!(joint.as_u64().unwrap() > 0, "{joint}");
    // The report shows the coherence matrix and the cross-generation grid.
    ok(
        d,
        &words("report --checkpoint sw/moe/seed-0/best --data-dir data --out r.html"),
    );
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains("id=\"coherence-matrix\"") && html.contains("<th>m0+m1+m3</th>"));
    assert!(html.contains("id=\"cross-generation\""));
    assert!(html.contains("id=\"fid-by-modality\"") && html.contains("<th>given 2</th>"));
    // One modality's classifier alone reads that modality only.
    ok(
        d,
        &words("eval --checkpoint sw/moe/seed-0/best --data-dir data --classifier clf/m1 --metrics coherence --limit 20 --out m1.json"),
    );
    let m1: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("m1.json")).unwrap()).unwrap();
    assert_eq!(
        m1["coherence_matrix"]["unread"],
        serde_json::json!(["m0", "m3"])
    );
    assert!(m1["coherence_matrix"]["cells"]["m0+m3"]["m1"].is_number());
    // `--mean` decodes each cell from the fused posterior's mean: the same
    // images whatever the seed (their Fréchet distances to the test
    // images' are equal), where one sample per item differs by seed.
    let cells = |extra: &str| {
        let out = format!("cells{}.json", extra.replace(' ', ""));
        ok(
            d,
            &words(&format!("eval --checkpoint sw/moe/seed-0/best --data-dir data --classifier clf/m1 --metrics fid --limit 20 {extra} --out {out}")),
        );
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(&out)).unwrap()).unwrap();
        (
            v["coherence_matrix"]["fid"]["cells"].clone(),
            v["latent_draw"].clone(),
        )
    };
    let (mean1, how) = cells("--mean --seed 1");
    assert_eq!(how, "z = mean of q(z|input)");
    assert!(mean1["m0+m3"]["m1"].as_f64().unwrap() > 0.0, "{mean1}");
    assert_eq!(mean1, cells("--mean --seed 2").0);
    assert_ne!(cells("--seed 1").0, cells("--seed 2").0);
    // FID alone measures the matrix too, with each image output's Fréchet
    // distances, and draws the same images: m1's coherence is unchanged.
    ok(
        d,
        &words("eval --checkpoint sw/moe/seed-0/best --data-dir data --classifier clf --metrics fid --limit 20 --out fid.json"),
    );
    let fid: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("fid.json")).unwrap()).unwrap();
    let cm = &fid["coherence_matrix"];
    for given in ["m0", "m0+m3", "m0+m1+m3"] {
        assert_eq!(
            cm["cells"][given]["m1"],
            m1["coherence_matrix"]["cells"][given]["m1"]
        );
    }
    let f = &cm["fid"];
    for k in ["1", "2"] {
        assert!(f["by_inputs"][k].as_f64().unwrap() > 0.0, "{f}");
    }
    assert!(
        f["by_inputs"].get("3").is_none(),
        "no output lies outside all three"
    );
    for o in ["m0", "m1", "m3"] {
        assert!(f["prior"][o].as_f64().unwrap() > 0.0, "{f}");
        assert!(f["by_output"][o]["2"].is_number(), "{f}");
    }
    assert_eq!(f["items"], 20);
    // A finished cell is not rerun.
    let again = ok(d, &sweep);
    assert!(
        again.contains("poe seed 0: done") && again.contains("moe seed 0: done"),
        "{again}"
    );
    assert!(!again.contains("training"), "{again}");
    // Without its result.json a finished run is scored again, not retrained.
    std::fs::remove_file(d.join("sw/moe/seed-0/result.json")).unwrap();
    let rescored = ok(d, &sweep);
    assert!(rescored.contains("moe seed 0: resuming"), "{rescored}");
    assert!(!rescored.contains("  epoch "), "{rescored}");
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("sw/moe/seed-0/result.json")).unwrap())
            .unwrap();
    assert_eq!(again["train_seconds"], result["train_seconds"]);
    assert_eq!(
        again["eval"]["coherence_matrix"],
        result["eval"]["coherence_matrix"]
    );
    // `--out` puts the same grid in another folder, where nothing has run.
    let elsewhere = ok(
        d,
        &words("sweep grid.toml --data-dir data --classifier clf --out sw2 --dry-run"),
    );
    let sw2 = std::path::Path::new("sw2").join("poe").join("seed-0");
    assert!(
        elsewhere.contains(&format!("poe seed 0: to run in {}", sw2.display())),
        "{elsewhere}"
    );
    assert!(!d.join("sw2/poe").exists());
    // A `show` cell out of the config's order is refused before any run.
    let grid = std::fs::read_to_string(d.join("grid.toml")).unwrap();
    std::fs::write(
        d.join("grid3.toml"),
        grid.replace("\"m0+m3 -> m1\"", "\"m3+m0 -> m1\"")
            .replace("out = \"sw\"", "out = \"sw3\""),
    )
    .unwrap();
    let e = fails(
        d,
        &words("sweep grid3.toml --data-dir data --classifier clf --limit 40"),
    );
    assert!(e.contains("show[1]") && e.contains("config's order"), "{e}");
    assert!(!d.join("sw3").exists());
    // An image modality must name one of the dataset's images.
    std::fs::write(d.join("bad.toml"), POLY.replace("\"m3\"", "\"m7\"")).unwrap();
    let e = fails(
        d,
        &words("train --config bad.toml --data-dir data --out bad --quiet"),
    );
    assert!(e.contains("m7") && e.contains("m0, m1, m2, m3, m4"), "{e}");
    assert!(!d.join("bad").exists());
}

#[test]
fn vision_views_train_and_only_the_source_image_is_scored_by_the_classifier() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let out = ok(d, &words("data check vision"));
    assert!(
        out.contains("5 images per item: image, grey, edges, masked, watermark"),
        "{out}"
    );
    // How much of the shapes the masked copies hide, per split.
    assert_eq!(
        out.matches("the masked square hides none of the shape in")
            .count(),
        2,
        "{out}"
    );
    // What the brightest value of each copy names, fitted on the train
    // split: the grey copy's names the colour most of the time.
    let grey = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("grey: size "))
        .unwrap_or_else(|| panic!("no grey line: {out}"));
    let colour: f64 = grey
        .split("colour ")
        .nth(1)
        .and_then(|c| c.split('%').next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no colour share: {grey}"));
    assert!(colour > 85.0, "{grey}");
    let cfg = vision_toml(
        "dataset = \"vision\"\nval_size = 25\ntrain_limit = 100",
        10,
        25,
    );
    std::fs::write(d.join("v.toml"), cfg).unwrap();
    ok(d, &words("train --config v.toml --out run --quiet"));
    // The grey copy is an input only: read into the others, never decoded
    // from them.
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"cross/grey->image\""), "{metrics}");
    assert!(!metrics.contains("->grey\""), "{metrics}");
    ok(
        d,
        &words("classifier train --dataset vision --out clf --epochs 1 --train-limit 200 --quiet"),
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("clf/classifier.json")).unwrap()).unwrap();
    assert_eq!(info["reads"], serde_json::json!(["image"]), "{info}");
    // A classifier of the grey copy alone gets a folder of its own, and
    // says which image it reads; an image the dataset lacks is named.
    let out = ok(
        d,
        &words(
            "classifier train --dataset vision --reads grey --epochs 1 --train-limit 100 --quiet",
        ),
    );
    assert!(
        out.contains("runs/classifier-vision-grey") && out.contains("colour"),
        "{out}"
    );
    let info: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.join("runs/classifier-vision-grey/classifier.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["reads"], serde_json::json!(["grey"]), "{info}");
    let e = fails(
        d,
        &words("classifier train --dataset vision --reads gray --out gray --epochs 1 --quiet"),
    );
    assert!(
        e.contains("\"gray\"") && e.contains("image, grey, edges"),
        "{e}"
    );
    assert!(!d.join("gray").exists());
    ok(
        d,
        &words("eval --checkpoint run/best --classifier clf --limit 30 --metrics coherence"),
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/eval.json")).unwrap()).unwrap();
    let m = &json["coherence_matrix"];
    assert_eq!(m["unread"], serde_json::json!(["grey"]), "{m}");
    assert!(m["cells"]["grey"]["image"].as_f64().is_some(), "{m}");
    assert!(m["cells"]["grey"]["text"].as_f64().is_some(), "{m}");
    // Each attribute of the image generated from the grey copy.
    for slot in ["size", "colour", "shape"] {
        let v = m["by_slot"]["grey"]["image"][slot].as_f64();
        assert!(v.is_some_and(|v| (0.0..=1.0).contains(&v)), "{slot}: {m}");
    }
}

/// The views of a grey dataset: one channel each, the square scaled to
/// the side, and the source's classifier reading the image.
#[test]
fn vision_views_of_mnist_train_and_complete_a_masked_digit() {
    let f = fixture();
    let d = f.root.as_path();
    let out = ok(d, &words("data check vision-mnist --data-dir data"));
    assert!(
        out.contains("items of 1x28x28 (5 images per item: image, grey, edges, masked, watermark)"),
        "{out}"
    );
    assert!(out.contains("the masked square hides none of the"), "{out}");
    // A smaller square hides less; one as wide as the image is refused, as
    // are copies of a dataset that has none.
    let hides_none = |out: &str| -> f64 {
        let at = out.find("hides none of the shape in ").unwrap() + 27;
        out[at..].split('%').next().unwrap().parse().unwrap()
    };
    let small = ok(
        d,
        &words("data check vision-mnist --data-dir data --mask-side 4 --edges colour"),
    );
    assert!(hides_none(&small) > hides_none(&out), "{small}\n{out}");
    let e = fails(
        d,
        &words("data check vision-mnist --data-dir data --mask-side 28"),
    );
    assert!(
        e.contains("`data.mask_side` = 28") && e.contains("1 to 27"),
        "{e}"
    );
    let e = fails(d, &words("data check mnist --data-dir data --mask-side 4"));
    assert!(
        e.contains("--mask-side") && e.contains("`mnist` has none"),
        "{e}"
    );
    // PolyMNIST has five images an item already: no source of the views.
    let e = fails(d, &words("data check vision-polymnist --data-dir data"));
    assert!(e.contains("one image per item"), "{e}");
    let cfg = vision_toml(
        "dataset = \"vision-mnist\"\nval_size = 25\ntrain_limit = 100",
        10,
        25,
    )
    .replace("name = \"grey\"", "name = \"masked\"");
    std::fs::write(d.join("m.toml"), cfg).unwrap();
    ok(
        d,
        &words("train --config m.toml --out run --data-dir data --quiet"),
    );
    ok(
        d,
        &words("classifier train --dataset vision-mnist --data-dir data --out clf --epochs 1 --train-limit 200 --quiet"),
    );
    ok(
        d,
        &words("eval --checkpoint run/best --data-dir data --classifier clf --limit 30 --metrics coherence"),
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/eval.json")).unwrap()).unwrap();
    let m = &json["coherence_matrix"];
    assert_eq!(m["unread"], serde_json::json!(["masked"]), "{m}");
    let v = m["cells"]["masked"]["image"].as_f64();
    assert!(v.is_some_and(|v| (0.0..=1.0).contains(&v)), "{m}");
    // The same cell by how much of the digit the square hides: the bands
    // hold the 30 items, and their completions add up to the cell's.
    let bands = m["by_cover"]["bands"].as_array().expect("by_cover");
    let hidden: Vec<&str> = bands.iter().filter_map(|b| b["hidden"].as_str()).collect();
    assert_eq!(
        hidden,
        [
            "none, apart",
            "none, at edge",
            "under half",
            "half or more",
            "all"
        ]
    );
    let items = |b: &serde_json::Value| b["items"].as_u64().unwrap() as f64;
    assert_eq!(bands.iter().map(items).sum::<f64>(), 30.0, "{m}");
    let right: f64 = bands
        .iter()
        .map(|b| items(b) * b["cells"]["masked"]["image"].as_f64().unwrap_or(0.0))
        .sum();
    assert!((right / 30.0 - v.unwrap()).abs() < 1e-9, "{m}");
    // A masked digit drawn in full: a grey 28×28 image in, one out.
    let digit = mmvae_data::imageio::Image::from_bytes(1, 28, 28, &[200u8; 784]);
    mmvae_data::imageio::save_image(&d.join("masked.png"), &digit).unwrap();
    ok(
        d,
        &words("predict --checkpoint run/best --given masked=masked.png --to image --out full.png"),
    );
    let png = image::open(d.join("full.png")).unwrap();
    assert!(png.width() >= 28 && !png.color().has_color(), "{png:?}");
}
