//! Runs the real `mmvae` binary in temporary folders.

mod common;

use common::{browser, fails, ok, run, words, write_dataset};

use std::io::Write;
use std::path::{Path, PathBuf};

const TINY: &str = r#"
seed = 3
[model]
latent = 8
max_len = 10
image = { kind = "mlp", hidden = 64 }
text = { kind = "gru", embed = 16, hidden = 32 }
[optim]
lr = 0.005
batch_size = 20
epochs = 2
[data]
dataset = "mnist"
val_size = 50
caption_seed = 0
[loss]
beta = 1.0
kl_anneal_steps = 0
image_weight = 1.0
text_weight = 20.0
"#;

/// A tiny training config: seed 3, the given `[model]`, `[optim]` and
/// `[data]` lines, and a plain MVAE loss.
fn tiny_toml(model: &str, optim: &str, data: &str) -> String {
    format!(
        "seed = 3\n[model]\n{model}\n[optim]\n{optim}\n[data]\n{data}\n[loss]\nbeta = 1.0\nkl_anneal_steps = 0\nimage_weight = 1.0\ntext_weight = 20.0\n"
    )
}

/// `train` on the fixture's tiny config and data, quietly, into `out`.
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--config",
        "tiny.toml",
        "--out",
        out,
        "--data-dir",
        "data",
        "--quiet",
    ];
    v.extend_from_slice(extra);
    v
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    write_dataset(&root.join("data/mnist"), 1000);
    std::fs::write(root.join("tiny.toml"), TINY).unwrap();
    Fixture { _tmp: tmp, root }
}

#[test]
fn help_lists_the_commands() {
    let out = ok(Path::new("."), &["--help"]);
    for c in [
        "train",
        "generate",
        "caption",
        "reconstruct",
        "sample",
        "eval",
        "calibrate",
        "check",
        "report",
        "plot",
        "interpolate",
        "classifier",
        "data",
        "quickstart",
        "bench",
        "fit-prior",
        "predict",
        "devices",
        "sweep",
    ] {
        assert!(out.contains(c), "help lacks {c}: {out}");
    }
    // `eval --help` names what it computes in the words users search for.
    let eval = ok(Path::new("."), &["eval", "--help"]);
    for w in [
        "coherence",
        "FID",
        "BLEU",
        "perplexity",
        "PSNR",
        "SSIM",
        "MedR",
        "Recall@K",
        "log-likelihood",
    ] {
        assert!(eval.contains(w), "eval --help lacks {w}: {eval}");
    }
}

#[test]
fn train_generate_caption_reconstruct_sample_eval_resume() {
    let f = fixture();
    let d = &f.root;
    let out = ok(d, &train_args("run", &[]));
    assert!(out.contains("run/best"), "{out}");
    for file in [
        "model.bpk",
        "config.toml",
        "vocab.json",
        "state.json",
        "optim.bpk",
    ] {
        assert!(d.join("run/last").join(file).is_file(), "last/{file}");
    }
    assert!(d.join("run/best/model.bpk").is_file());
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);

    // A second train into the same folder is refused; --resume continues.
    let e = fails(d, &train_args("run", &[]));
    assert!(e.contains("--resume"), "{e}");
    ok(d, &train_args("run", &["--resume", "--epochs", "3"]));
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3);
    assert!(metrics.lines().last().unwrap().contains("\"epoch\":3"));

    // Text -> image grid.
    ok(
        d,
        &[
            "generate",
            "--checkpoint",
            "run/best",
            "--text",
            "a handwritten seven",
            "--n",
            "4",
            "--out",
            "g/seven.png",
        ],
    );
    let png = std::fs::read(d.join("g/seven.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // Same seed, same picture.
    ok(
        d,
        &[
            "generate",
            "--checkpoint",
            "run/best",
            "--text",
            "a handwritten seven",
            "--n",
            "4",
            "--out",
            "g/seven2.png",
        ],
    );
    assert_eq!(png, std::fs::read(d.join("g/seven2.png")).unwrap());

    // Unknown words are reported, and nothing is written.
    let e = fails(
        d,
        &[
            "generate",
            "--checkpoint",
            "run/best",
            "--text",
            "a zebra",
            "--out",
            "g/z.png",
        ],
    );
    assert!(e.contains("zebra"), "{e}");
    assert!(!d.join("g/z.png").exists());

    // Image -> text: the reconstruction grid's first tile is the input.
    ok(
        d,
        &[
            "sample",
            "--checkpoint",
            "run/best",
            "--n",
            "4",
            "--out",
            "s.png",
        ],
    );
    let img = mmvae_data::imageio::Image::from_bytes(1, 28, 28, &[0u8; 784]);
    mmvae_data::imageio::save_image(&d.join("in/a.png"), &img).unwrap();
    mmvae_data::imageio::save_image(&d.join("in/b.png"), &img).unwrap();
    let cap = ok(
        d,
        &["caption", "--checkpoint", "run/best", "--image", "in/a.png"],
    );
    assert_eq!(cap.lines().count(), 1);
    let caps = ok(d, &["caption", "--checkpoint", "run/best", "--image", "in"]);
    assert_eq!(caps.lines().count(), 2);
    assert!(
        caps.contains("a.png\t") && caps.contains("b.png\t"),
        "{caps}"
    );
    let rec = ok(
        d,
        &[
            "reconstruct",
            "--checkpoint",
            "run/best",
            "--image",
            "in/a.png",
            "--out",
            "r.png",
        ],
    );
    assert!(rec.contains("caption from the same latent"));

    // Wrong image size or format at `caption`.
    mmvae_data::imageio::save_image(
        &d.join("small.png"),
        &mmvae_data::imageio::Image::from_bytes(1, 5, 5, &[0; 25]),
    )
    .unwrap();
    let e = fails(
        d,
        &[
            "caption",
            "--checkpoint",
            "run/best",
            "--image",
            "small.png",
        ],
    );
    assert!(e.contains("small.png") && e.contains("5x5"), "{e}");
    std::fs::write(d.join("fake.png"), "not an image").unwrap();
    let e = fails(
        d,
        &["caption", "--checkpoint", "run/best", "--image", "fake.png"],
    );
    assert!(e.contains("fake.png") && e.contains("decode"), "{e}");

    // Eval needs a classifier; train a quick one, then eval writes JSON.
    let e = fails(
        d,
        &[
            "eval",
            "--checkpoint",
            "run/best",
            "--data-dir",
            "data",
            "--classifier",
            "clf",
        ],
    );
    assert!(e.contains("mmvae classifier train"), "{e}");
    ok(
        d,
        &[
            "classifier",
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            "data",
            "--out",
            "clf",
            "--epochs",
            "1",
            "--quiet",
        ],
    );
    let table = ok(
        d,
        &[
            "eval",
            "--checkpoint",
            "run/best",
            "--data-dir",
            "data",
            "--classifier",
            "clf",
            "--limit",
            "100",
        ],
    );
    assert!(table.contains("text -> image coherence"), "{table}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/eval.json")).unwrap()).unwrap();
    for k in [
        "text_to_image",
        "text_to_image_heldout",
        "image_to_text",
        "joint",
        "image_reconstruction",
    ] {
        let v = json[k]["strict"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    // The coherence matrix: each modality from each subset of the others.
    let cells = &json["coherence_matrix"]["cells"];
    for given in ["image", "text", "image+text"] {
        for out in ["image", "text"] {
            let v = cells[given][out].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{given} -> {out} = {v}");
        }
    }
    assert!(table.contains("mean given 1 input"), "{table}");
    // These bars are trivially separable: after 3 short epochs the
    // classifier and the cross-modal generation are far above chance (10%).
    assert!(
        json["classifier_test_accuracy"].as_f64().unwrap() > 0.5,
        "{json}"
    );
    assert!(
        json["image_to_text"]["strict"].as_f64().unwrap() > 0.3,
        "{json}"
    );
    // Retrieval: recalls are fractions, ranks start at 1; the bars' classes
    // are found far above chance (10%).
    let pairs = json["retrieval"]["pairs"].as_array().unwrap();
    let pair = |q: &str, t: &str| {
        pairs
            .iter()
            .find(|p| p["query"] == q && p["target"] == t)
            .unwrap_or_else(|| panic!("no retrieval {q} -> {t}: {pairs:?}"))
    };
    for (q, t) in [("image", "text"), ("text", "image")] {
        let r = pair(q, t);
        let r10 = r["recall_at_10"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&r10) && r["median_rank"].as_f64().unwrap() >= 1.0);
    }
    let i2t = pair("image", "text");
    assert!(i2t["class_at_1"].as_f64().unwrap() > 0.3, "{i2t}");
    for k in ["text_to_image", "reconstruction", "joint"] {
        let v = json["fid"][k].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "fid {k} = {v}");
    }
    // Linear probes: the bars' class is linearly readable from both posteriors.
    for k in ["image", "text"] {
        let v = json["linear_probe"][k]["strict"].as_f64().unwrap();
        assert!(v > 0.5, "probe {k} = {v}");
    }
    for k in ["generated", "real"] {
        let v = json["caption_perplexity"][k].as_f64().unwrap();
        assert!(v.is_finite() && v >= 1.0, "perplexity {k} = {v}");
    }
    for k in ["bleu", "psnr", "ssim"] {
        assert!(table.contains(&k.to_uppercase()), "{k}: {table}");
    }
    // Importance-sampled log-likelihoods: more samples, a tighter (higher)
    // bound than the one-sample ELBO estimate.
    let ll = |k: &str| -> f64 {
        ok(
            d,
            &[
                "eval",
                "--checkpoint",
                "run/best",
                "--data-dir",
                "data",
                "--classifier",
                "clf",
                "--limit",
                "20",
                "--out",
                "ll.json",
                "--metrics",
                "loglik",
                "--loglik-items",
                "10",
                "--loglik-samples",
                k,
            ],
        );
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("ll.json")).unwrap()).unwrap();
        // Only the selected metric is computed; the settings say which.
        assert!(
            j.get("text_to_image").is_none() && j.get("fid").is_none(),
            "{j}"
        );
        assert_eq!(j["settings"]["metrics"], serde_json::json!(["loglik"]));
        assert_eq!(
            j["settings"]["loglik_samples"].as_u64(),
            Some(k.parse().unwrap())
        );
        j["log_likelihood"]["log_p_joint"].as_f64().unwrap()
    };
    let (one, many) = (ll("1"), ll("100"));
    assert!(many.is_finite() && many > one, "K=100 {many} vs K=1 {one}");
    let e = fails(
        d,
        &[
            "eval",
            "--checkpoint",
            "run/best",
            "--metrics",
            "coherence,fdi",
        ],
    );
    assert!(e.contains("unknown metric 'fdi'"), "{e}");
    // FID in Inception-v3 features, with (random) weights in the format a
    // user supplies.
    let net = mmvae_model::eval::inception::InceptionV3::init(
        &mmvae_model::burn::prelude::Device::flex(),
    );
    net.save_safetensors(&d.join("inception.safetensors"))
        .unwrap();
    ok(
        d,
        &[
            "eval",
            "--checkpoint",
            "run/best",
            "--data-dir",
            "data",
            "--classifier",
            "clf",
            "--limit",
            "8",
            "--metrics",
            "fid",
            "--inception",
            "inception.safetensors",
            "--out",
            "fid.json",
        ],
    );
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("fid.json")).unwrap()).unwrap();
    assert!(
        j["fid_inception"]["features"]
            .as_str()
            .unwrap()
            .contains("Inception"),
        "{j}"
    );
    for k in ["text_to_image", "reconstruction", "joint"] {
        let v = j["fid_inception"][k].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "inception fid {k} = {v}");
    }
    let e = fails(
        d,
        &[
            "eval",
            "--checkpoint",
            "run/best",
            "--metrics",
            "coherence",
            "--inception",
            "inception.safetensors",
        ],
    );
    assert!(e.contains("needs the fid metric"), "{e}");

    consistency_commands(d);
    report_commands(d);
}

/// `report`, `plot tsne` and `interpolate` on the trained, evaluated and
/// calibrated fixture model in `d`; the report is rendered in headless
/// Chromium where there is one (CI installs it and sets
/// MMVAE_REQUIRE_CHROMIUM=1, so there it cannot be skipped).
fn report_commands(d: &Path) {
    let out = ok(
        d,
        &[
            "report",
            "--checkpoint",
            "run/best",
            "--data-dir",
            "data",
            "--out",
            "rep/report.html",
            "--tsne-items",
            "60",
            "--examples",
            "6",
        ],
    );
    assert!(out.contains("metrics from eval.json"), "{out}");
    let html = std::fs::read_to_string(d.join("rep/report.html")).unwrap();
    for id in [
        "id=\"model\"",
        "id=\"curves\"",
        "id=\"metrics-table\"",
        "id=\"consistency-table\"",
        "id=\"t2i-table\"",
        "id=\"i2t-table\"",
        "id=\"consistency-examples\"",
        "id=\"retrieval-examples\"",
        "id=\"interpolation\"",
        "id=\"tsne\"",
    ] {
        assert!(html.contains(id), "{id} missing");
    }
    // Self-contained: images inline, no fetched resources.
    assert!(html.matches("data:image/png;base64,").count() >= 10 + 6);
    assert!(html.matches("<svg").count() >= 2, "curves and t-SNE");
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    // Both the metrics and the grids say where text -> image latents come
    // from (this fixture model has no fitted prior).
    assert!(
        html.contains("<p id=\"t2i-source\">Text→image latents: caption posterior q(z|y).</p>"),
        "metrics name the text -> image source"
    );
    assert!(html.contains("z from the caption posterior q(z|y)."));
    // One row per class in the text -> image table.
    let t2i = &html[html.find("id=\"t2i-table\"").unwrap()..];
    let t2i = &t2i[..t2i.find("</table>").unwrap()];
    assert_eq!(t2i.matches("<tr>").count(), 1 + 10);

    if let Some(chrome) = browser::chromium() {
        let page = format!("file://{}", d.join("rep/report.html").display());
        let profile = d.join("rep/chromium");
        // Charts and sample images: many colours and plenty of dark ink.
        browser::screenshot(&chrome, &profile, &page, (1200, 2400), &[], (200, 20_000));
        let dom = browser::rendered_dom(&chrome, &profile, &page, 1000);
        for t in [
            "Training curves",
            "Latent space (t-SNE)",
            "q(z|caption)",
            "id=\"metrics-table\"",
        ] {
            assert!(dom.contains(t), "{t} not in the rendered DOM");
        }
    }

    let out = ok(
        d,
        &[
            "plot",
            "tsne",
            "--checkpoint",
            "run/best",
            "--data-dir",
            "data",
            "--items",
            "40",
            "--iterations",
            "250",
            "--out",
            "rep/tsne.png",
        ],
    );
    assert!(out.contains("t-SNE of 80 points"), "{out}");
    let img = image::open(d.join("rep/tsne.png")).unwrap();
    assert_eq!((img.width(), img.height()), (1100, 760));

    // Caption to image: each end decodes as its own input does, whatever
    // the other end (the caption's posterior mean; the image's, as
    // `caption --mean` reads it).
    let interpolate = |to: [&str; 2], png: &str| -> Vec<String> {
        let out = ok(
            d,
            &[
                "interpolate",
                "--checkpoint",
                "run/best",
                "--from-text",
                "the digit three",
                to[0],
                to[1],
                "--steps",
                "5",
                "--out",
                png,
            ],
        );
        let caps: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with(char::is_numeric))
            .map(|l| l.split_once(": ").map_or(l, |(_, c)| c).to_string())
            .collect();
        assert_eq!(caps.len(), 5, "{out}");
        caps
    };
    let caps = interpolate(["--to-image", "pairs/eight.png"], "rep/interp.png");
    let to_text = interpolate(["--to-text", "a handwritten four"], "rep/interp2.png");
    assert_eq!(caps[0], to_text[0], "{caps:?} {to_text:?}");
    let read = ok(
        d,
        &[
            "caption",
            "--checkpoint",
            "run/best",
            "--image",
            "pairs/eight.png",
            "--mean",
        ],
    );
    assert_eq!(caps[4], read.trim(), "{caps:?}");
    let img = image::open(d.join("rep/interp.png")).unwrap();
    assert_eq!((img.width(), img.height()), (5 * 30 + 2, 32));
    let e = fails(
        d,
        &[
            "interpolate",
            "--checkpoint",
            "run/best",
            "--from-text",
            "the digit zzz",
            "--to-text",
            "the digit one",
        ],
    );
    assert!(e.contains("zzz"), "{e}");
    let e = fails(
        d,
        &[
            "interpolate",
            "--checkpoint",
            "run/best",
            "--from-text",
            "the digit one",
            "--to-text",
            "the digit two",
            "--steps",
            "1",
        ],
    );
    assert!(e.contains("--steps"), "{e}");
    let e = fails(
        d,
        &["report", "--checkpoint", "nowhere", "--out", "rep/x.html"],
    );
    assert!(e.contains("nowhere"), "{e}");
    assert!(!d.join("rep/x.html").exists());
}

/// A bar image of class `c`, as in [`write_dataset`].
fn bar(c: usize) -> mmvae_data::imageio::Image {
    let mut px = vec![0u8; 784];
    for y in (c * 2 + 3)..(c * 2 + 6) {
        for x in 4..24 {
            px[y * 28 + x] = 220;
        }
    }
    mmvae_data::imageio::Image::from_bytes(1, 28, 28, &px)
}

/// `calibrate` and `check` on the trained fixture model in `d`.
fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

fn consistency_commands(d: &Path) {
    let ck = ["--checkpoint", "run/best"];
    std::fs::create_dir_all(d.join("pairs")).unwrap();
    mmvae_data::imageio::save_image(&d.join("pairs/three.png"), &bar(3)).unwrap();
    mmvae_data::imageio::save_image(&d.join("pairs/eight.png"), &bar(8)).unwrap();
    let one = |text: &str| {
        let mut v = vec![
            "check",
            ck[0],
            ck[1],
            "--image",
            "pairs/three.png",
            "--text",
        ];
        v.push(text);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    // Not calibrated yet: say how to.
    let e = fails(d, &as_refs(&one("the digit three")));
    assert!(e.contains("mmvae calibrate"), "{e}");
    let table = ok(
        d,
        &[
            "calibrate",
            ck[0],
            ck[1],
            "--data-dir",
            "data",
            "--val-items",
            "50",
            "--test-items",
            "100",
            "--prior-samples",
            "8",
        ],
    );
    assert!(
        table.contains("text-ratio") && table.contains("(default)"),
        "{table}"
    );
    let cal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/consistency.json")).unwrap())
            .unwrap();
    let def = cal["default_score"].as_str().unwrap().to_string();
    let auroc = cal["test"][&def]["random"]["auroc"].as_f64().unwrap();
    assert!(auroc > 0.7, "bars are easy to tell apart: {cal}");
    // One pair: the three scores and a decision; its own caption scores
    // above another class's under the default score.
    let yes = ok(d, &as_refs(&one("the digit three")));
    let no = ok(d, &as_refs(&one("the digit eight")));
    let score_of = |out: &str| -> f64 {
        out.lines()
            .find(|l| l.starts_with(&def))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(score_of(&yes) > score_of(&no), "{yes}\n{no}");
    assert!(yes.contains("match"), "{yes}");
    // Unknown words are refused, not guessed.
    let e = fails(d, &as_refs(&one("the digit zebra")));
    assert!(e.contains("zebra"), "{e}");
    // A pairs file with bad lines: each listed with its line, nothing written.
    std::fs::write(
        d.join("pairs/p.csv"),
        "image,text\nthree.png,the digit three\neight.png,\"a handwritten eight\"\nmissing.png,the digit one\nthree.png,\n",
    )
    .unwrap();
    let o = run(
        d,
        &[
            "check",
            ck[0],
            ck[1],
            "--pairs",
            "pairs/p.csv",
            "--out",
            "scores.csv",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("p.csv line 4") && err.contains("missing.png"),
        "{err}"
    );
    assert!(err.contains("p.csv line 5: empty text"), "{err}");
    assert!(!d.join("scores.csv").exists());
    let out = ok(
        d,
        &[
            "check",
            ck[0],
            ck[1],
            "--pairs",
            "pairs/p.csv",
            "--out",
            "scores.csv",
            "--skip-bad",
        ],
    );
    assert!(out.contains("2 pairs scored"), "{out}");
    let csv = std::fs::read_to_string(d.join("scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("image,text,overlap,text_ratio,image_ratio,match"));
}

#[test]
fn bad_inputs_fail_with_one_line() {
    let f = fixture();
    let d = &f.root;
    // Missing dataset: says where it looked and how to get it.
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let e = fails(
        d,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "r",
            "--data-dir",
            "empty",
        ],
    );
    assert!(e.contains("empty") && e.contains("mmvae data fetch"), "{e}");
    // Invalid TOML and out-of-range values.
    std::fs::write(d.join("bad.toml"), "seed = [").unwrap();
    let e = fails(d, &["train", "--config", "bad.toml"]);
    assert!(e.contains("bad.toml"), "{e}");
    std::fs::write(d.join("neg.toml"), TINY.replace("lr = 0.005", "lr = -2.0")).unwrap();
    let e = fails(d, &["train", "--config", "neg.toml", "--data-dir", "data"]);
    assert!(e.contains("optim.lr"), "{e}");
    // Recipe sections: phases that do not add up, an adversarial weight
    // without its discriminator, a VGG16 file that is not there.
    let phased = format!(
        "{TINY}\n[[phases]]\nname = \"a\"\nepochs = 1\n\n[[phases]]\nname = \"b\"\nepochs = 5\n"
    );
    std::fs::write(d.join("phases.toml"), &phased).unwrap();
    let e = fails(
        d,
        &["train", "--config", "phases.toml", "--data-dir", "data"],
    );
    assert!(
        e.contains("optim.epochs") && e.contains("phases.toml"),
        "{e}"
    );
    std::fs::write(
        d.join("adv.toml"),
        TINY.replace("[loss]\n", "[loss]\nadversarial_weight = 1.0\n"),
    )
    .unwrap();
    let e = fails(d, &["train", "--config", "adv.toml", "--data-dir", "data"]);
    assert!(e.contains("[adversarial]"), "{e}");
    std::fs::write(
        d.join("vgg.toml"),
        format!(
            "{}\n[perceptual]\nnetwork = {{ kind = \"vgg16\", weights = \"missing-vgg.safetensors\" }}\n",
            TINY.replace("[loss]\n", "[loss]\nperceptual_weight = 0.1\n")
        ),
    )
    .unwrap();
    let e = fails(
        d,
        &[
            "train",
            "--config",
            "vgg.toml",
            "--data-dir",
            "data",
            "--out",
            "rv",
        ],
    );
    assert!(e.contains("missing-vgg.safetensors"), "{e}");
    assert!(!d.join("rv").exists(), "nothing written for a failed start");
    // Corrupt gzip and wrong magic in the data.
    let bad = d.join("bad/mnist");
    write_dataset(&bad, 100);
    std::fs::remove_file(bad.join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(
        bad.join("train-images-idx3-ubyte.gz"),
        [0x1f, 0x8b, 8, 0, 0, 0],
    )
    .unwrap();
    let e = fails(
        d,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "r2",
            "--data-dir",
            "bad",
        ],
    );
    assert!(e.contains("gzip") && e.contains("train-images"), "{e}");
    std::fs::remove_file(bad.join("train-images-idx3-ubyte.gz")).unwrap();
    let mut f2 = std::fs::File::create(bad.join("train-images-idx3-ubyte")).unwrap();
    f2.write_all(&[1, 2, 3, 4, 0, 0, 0, 0]).unwrap();
    let e = fails(
        d,
        &[
            "train",
            "--config",
            "tiny.toml",
            "--out",
            "r3",
            "--data-dir",
            "bad",
        ],
    );
    assert!(e.contains("magic"), "{e}");
    assert!(!d.join("r3/last").exists());
    // Not a checkpoint; a checkpoint with corrupt weights.
    let e = fails(
        d,
        &["generate", "--checkpoint", "nowhere", "--text", "seven"],
    );
    assert!(e.contains("nowhere"), "{e}");
    // Unknown dataset name.
    let e = fails(d, &["classifier", "train", "--dataset", "cifar"]);
    assert!(e.contains("cifar"), "{e}");
}

#[test]
fn corrupt_checkpoint_is_refused() {
    let f = fixture();
    let d = &f.root;
    ok(d, &train_args("run", &["--epochs", "1"]));
    std::fs::write(d.join("run/best/model.bpk"), b"garbage").unwrap();
    let e = fails(d, &["sample", "--checkpoint", "run/best", "--out", "s.png"]);
    assert!(e.contains("run/best") && e.contains("weights"), "{e}");
    assert!(!d.join("s.png").exists());
    // A config that no longer matches the weights.
    let cfg = std::fs::read_to_string(d.join("run/last/config.toml")).unwrap();
    std::fs::write(
        d.join("run/last/config.toml"),
        cfg.replace("latent = 8", "latent = 9"),
    )
    .unwrap();
    let e = fails(d, &["sample", "--checkpoint", "run/last", "--out", "s.png"]);
    assert!(
        e.contains("does not match config.toml") && e.contains("[64, 18]"),
        "{e}"
    );
}

/// A text prior fitted after training (`[text_prior]`) or later
/// (`fit-prior`) serves text→image; `--no-text-prior` and bad prior files
/// behave.
#[test]
fn fitted_text_prior_serves_text_to_image() {
    let f = fixture();
    let d = &f.root;
    std::fs::write(
        d.join("prior.toml"),
        format!("{TINY}\n[text_prior]\ncomponents = 3\nhidden = 16\nepochs = 2\nchoose_temperature = [0.5, 1.0]\nrerank = 2\n"),
    )
    .unwrap();
    let out = ok(
        d,
        &[
            "train",
            "--config",
            "prior.toml",
            "--out",
            "run",
            "--data-dir",
            "data",
            "--quiet",
        ],
    );
    assert!(out.contains("text prior: 3 components"), "{out}");
    // No evaluation classifier yet to choose the temperature with: kept,
    // and the way to choose it later named.
    assert!(
        out.contains("kept text prior temperature 1;")
            && out.contains("--keep-fit --temperatures 0.5,1"),
        "{out}"
    );
    for file in ["text-prior.bpk", "text-prior.json"] {
        assert!(d.join("run/best").join(file).is_file(), "best/{file}");
    }
    assert!(!d.join("run/last/text-prior.json").exists());
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/text-prior.json")).unwrap())
            .unwrap();
    assert_eq!(info["config"]["components"], 3);
    assert_eq!(info["config"]["rerank"], 2, "the config's rerank is saved");
    assert_eq!(info["train_items"], 950);
    assert!(
        info["val_nll_mixture"].as_f64().unwrap().is_finite(),
        "{info}"
    );

    // Four images of a seven from `checkpoint`, as PNG bytes.
    let draw = |checkpoint: &str, name: &str, extra: &[&str]| {
        let path = format!("g/{name}.png");
        let mut args = vec![
            "generate",
            "--checkpoint",
            checkpoint,
            "--text",
            "a handwritten seven",
            "--n",
            "4",
            "--out",
            &path,
        ];
        args.extend_from_slice(extra);
        ok(d, &args);
        std::fs::read(d.join(&path)).unwrap()
    };
    let gen = |name: &str, extra: &[&str]| draw("run/best", name, extra);
    let (a, b) = (gen("a", &[]), gen("b", &[]));
    assert_eq!(a, b, "same seed, same draws from the prior");
    assert_ne!(a, gen("post", &["--no-text-prior"]), "the prior is used");
    assert_ne!(a, gen("cold", &["--prior-temperature", "0.2"]));
    let e = fails(
        d,
        &[
            "generate",
            "--checkpoint",
            "run/best",
            "--text",
            "a handwritten seven",
            "--prior-temperature=-1",
        ],
    );
    assert!(e.contains("--prior-temperature"), "{e}");
    // Reranked draws: the best of 3 per caption differ from single draws
    // and repeat with the seed; 0 candidates are refused.
    // The config's `rerank = 2` is the default; `--rerank 1` draws once.
    assert_eq!(a, gen("r2", &["--rerank", "2"]));
    assert_ne!(a, gen("r1", &["--rerank", "1"]), "the saved rerank is used");
    let r = gen("r3", &["--rerank", "3"]);
    assert_ne!(a, r, "reranking picks other draws");
    assert_eq!(r, gen("r3b", &["--rerank", "3"]));
    let e = fails(
        d,
        &[
            "generate",
            "--checkpoint",
            "run/best",
            "--text",
            "a handwritten seven",
            "--rerank",
            "0",
        ],
    );
    assert!(e.contains("--rerank must be in 1..=64"), "{e}");

    // eval names where text→image latents came from.
    ok(
        d,
        &[
            "classifier",
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            "data",
            "--out",
            "clf",
            "--epochs",
            "1",
            "--quiet",
        ],
    );
    let ev = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--checkpoint",
            "run/best",
            "--data-dir",
            "data",
            "--classifier",
            "clf",
            "--limit",
            "20",
            "--metrics",
            "coherence",
            "--out",
            "e.json",
        ];
        args.extend_from_slice(extra);
        let table = ok(d, &args);
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("e.json")).unwrap()).unwrap();
        (
            table,
            j["text_to_image_latent"].as_str().unwrap().to_string(),
        )
    };
    let (table, src) = ev(&[]);
    assert!(src.starts_with("fitted text prior (3 components"), "{src}");
    assert!(
        src.ends_with("best of 2 draws by the model's own read-back of the caption"),
        "{src}"
    );
    let (_, src) = ev(&["--rerank", "1"]);
    assert!(src.ends_with(')'), "one draw: no reranking named: {src}");
    assert!(
        table.contains("text -> image latents: fitted text prior"),
        "{table}"
    );
    assert_eq!(ev(&["--no-text-prior"]).1, "caption posterior q(z|y)");
    let (_, src) = ev(&["--rerank", "4"]);
    assert!(
        src.ends_with("best of 4 draws by the model's own read-back of the caption"),
        "{src}"
    );

    // Fitted later, into another checkpoint; bad options and files refused.
    // `fit-prior` on run/last with `extra` options.
    let choose = |extra: &[&'static str]| {
        let mut args = vec![
            "fit-prior",
            "--checkpoint",
            "run/last",
            "--data-dir",
            "data",
        ];
        args.extend_from_slice(extra);
        args
    };
    let e = fails(d, &choose(&["--components", "0"]));
    assert!(e.contains("text_prior.components"), "{e}");
    assert!(!d.join("run/last/text-prior.json").exists());
    // A missing classifier is found before fitting, not after.
    let e = fails(
        d,
        &choose(&[
            "--temperatures",
            "0.5",
            "--classifier",
            "no-such-classifier",
        ]),
    );
    assert!(
        e.contains("no evaluation classifier in no-such-classifier"),
        "{e}"
    );
    assert!(!d.join("run/last/text-prior.json").exists());
    // Choosing a temperature for a prior that was never fitted.
    let e = fails(
        d,
        &choose(&["--keep-fit", "--temperatures", "0.5", "--classifier", "clf"]),
    );
    assert!(
        e.contains("run/last has no fitted text prior (run fit-prior without --keep-fit)"),
        "{e}"
    );
    let out = ok(
        d,
        &[
            "fit-prior",
            "--checkpoint",
            "run/last",
            "--data-dir",
            "data",
            "--components",
            "2",
            "--epochs",
            "1",
            "--temperature",
            "0.2",
        ],
    );
    assert!(
        out.contains("text prior: 2 components") && out.contains("run/last"),
        "{out}"
    );
    // Its saved temperature is the default at use; the flag overrides it.
    let last = |name: &str, extra: &[&str]| draw("run/last", name, extra);
    let saved = last("l-saved", &[]);
    assert_eq!(saved, last("l-cold", &["--prior-temperature", "0.2"]));
    assert_ne!(saved, last("l-warm", &["--prior-temperature", "1"]));
    // The temperature chosen on the validation split, the fit kept.
    let e = fails(d, &choose(&["--keep-fit"]));
    assert!(e.contains("--temperatures"), "{e}");
    let e = fails(d, &choose(&["--keep-fit", "--temperatures", "0.5,0"]));
    assert!(e.contains("--temperatures must all be positive"), "{e}");
    let out = ok(
        d,
        &choose(&[
            "--keep-fit",
            "--temperatures",
            "0.2,1",
            "--classifier",
            "clf",
        ]),
    );
    assert!(out.contains("validation text -> image coherence"), "{out}");
    assert_eq!(out.matches("(chosen)").count(), 1, "{out}");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/last/text-prior.json")).unwrap())
            .unwrap();
    let tried = info["temperature_choice"].as_array().unwrap();
    assert_eq!(tried.len(), 2, "{info}");
    let chosen = info["config"]["temperature"].as_f64().unwrap() as f32;
    let best = tried
        .iter()
        .map(|p| (p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap()))
        .fold((0.0f32, -1.0f64), |a, b| if b.1 >= a.1 { b } else { a });
    assert_eq!(chosen, best.0, "{info}");
    assert_eq!(info["config"]["components"], 2, "the fit is kept");
    assert!(info["config"].get("rerank").is_none(), "{info}");
    let chosen_flag = chosen.to_string();
    assert_eq!(
        last("l-chosen", &[]),
        last(
            "l-chosen-flag",
            &["--prior-temperature", chosen_flag.as_str()]
        )
    );
    // Chosen again with 2 candidates per caption: saved with the prior,
    // and the default at use.
    let e = fails(
        d,
        &choose(&[
            "--keep-fit",
            "--temperatures",
            "1",
            "--classifier",
            "clf",
            "--rerank",
            "65",
        ]),
    );
    assert!(e.contains("--rerank must be in 1..=64"), "{e}");
    ok(
        d,
        &choose(&[
            "--keep-fit",
            "--temperatures",
            "1",
            "--classifier",
            "clf",
            "--rerank",
            "2",
        ]),
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/last/text-prior.json")).unwrap())
            .unwrap();
    assert_eq!(info["config"]["rerank"], 2, "{info}");
    assert_eq!(last("l-r2", &[]), last("l-r2-flag", &["--rerank", "2"]));
    assert_ne!(last("l-r2", &[]), last("l-r1", &["--rerank", "1"]));
    std::fs::write(d.join("run/last/text-prior.json"), b"{ not json").unwrap();
    let e = fails(d, &["sample", "--checkpoint", "run/last", "--out", "s.png"]);
    assert!(e.contains("text-prior.json"), "{e}");
    assert!(!d.join("s.png").exists());
    std::fs::write(d.join("run/best/text-prior.bpk"), b"garbage").unwrap();
    let e = fails(d, &["sample", "--checkpoint", "run/best", "--out", "s.png"]);
    assert!(e.contains("text-prior.bpk"), "{e}");
}

/// The README's first command on the built-in shapes benchmark: nothing to
/// download, and a short run already generates and captions far above
/// chance (3 shapes: 33%).
#[test]
fn quickstart_on_shapes_level_one() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(
        d.path(),
        &[
            "quickstart",
            "--dataset",
            "shapes-l1",
            "--train-limit",
            "8000",
            "--epochs",
            "3",
            "--classifier-epochs",
            "2",
            "--out",
            "qs",
        ],
    );
    assert!(out.contains("text -> image coherence"), "{out}");
    for f in [
        "text-to-image.png",
        "test-images.png",
        "joint-samples.png",
        "eval.json",
        "report.html",
    ] {
        assert!(d.path().join("qs").join(f).is_file(), "{f} missing");
    }
    let html = std::fs::read_to_string(d.path().join("qs/report.html")).unwrap();
    assert!(html.contains("id=\"metrics-table\"") && html.contains("id=\"tsne\""));
    let img = image::open(d.path().join("qs/text-to-image.png")).unwrap();
    assert_eq!(img.color().channel_count(), 3, "RGB grid");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("qs/eval.json")).unwrap()).unwrap();
    let get = |k: &str| json[k]["strict"].as_f64().unwrap();
    assert!(
        json["classifier_test_accuracy"].as_f64().unwrap() > 0.9,
        "{json}"
    );
    assert!(get("image_to_text") > 0.6, "{json}");
    // Three epochs on 8,000 images leave text→image on a knife edge: the
    // last bits of the arithmetic moved it between 46% and 73% (chance is
    // 33%; the default quick start reaches 93–95%).
    assert!(get("text_to_image") > 0.4, "{json}");
    // Strict per wanted value: level 1's three shapes, and strict is their
    // item-weighted mean, so it lies between the lowest and the highest.
    let by_value = json["text_to_image"]["strict_by_value"]
        .as_object()
        .unwrap();
    let mut keys: Vec<&str> = by_value.keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["shape=ellipse", "shape=heart", "shape=square"]);
    let rates: Vec<f64> = by_value.values().map(|v| v.as_f64().unwrap()).collect();
    let (lo, hi) = rates
        .iter()
        .fold((1.0f64, 0.0f64), |(l, h), &r| (l.min(r), h.max(r)));
    assert!(
        lo <= get("text_to_image") && get("text_to_image") <= hi,
        "{json}"
    );
    assert!(out.contains("weakest "), "{out}");
    assert!(
        json["text_to_image_heldout"].is_null(),
        "shapes have no held-out phrasings"
    );
    assert!(
        json["image_to_text"]["letters"].as_f64().unwrap() > 0.6,
        "{json}"
    );
}

#[test]
fn celeba_from_the_official_files_with_a_chosen_attribute_set_and_a_multi_hot_modality() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    // 90 images in the official layout: partitions 0, 1, 2 in turn, so 60
    // train (10 of them the validation tail) and 30 test.
    mmvae_data::celeba::write_fixture(&d.join("data/celeba"), 90, 178, 218).unwrap();
    std::fs::write(
        d.join("celeba.toml"),
        tiny_toml(
            "latent = 8\nmax_len = 24\nimage = { kind = \"conv\", channels = 4, hidden = 32 }\ntext = { kind = \"multi-hot\", hidden = 32 }",
            "lr = 0.003\nbatch_size = 10\nepochs = 1",
            // A chosen set, one attribute outside the default nine.
            "dataset = \"celeba:Smiling,Young,Male,Bangs\"\nval_size = 10\ncaption_seed = 0",
        ),
    )
    .unwrap();
    ok(
        d,
        &words("train --config celeba.toml --out run --data-dir data --quiet"),
    );
    let saved = std::fs::read_to_string(d.join("run/best/config.toml")).unwrap();
    assert!(saved.contains("multi-hot"), "{saved}");
    assert!(
        saved.contains("dataset = \"celeba:Young,Male,Smiling,Bangs\""),
        "{saved}"
    );
    // A classifier of another attribute set does not score this model.
    ok(
        d,
        &words("classifier train --dataset celeba --data-dir data --epochs 1 --out clf9 --quiet"),
    );
    let e = fails(
        d,
        &words("eval --checkpoint run/best --data-dir data --classifier clf9 --metrics coherence"),
    );
    assert!(e.contains("celeba:Young,Male,Smiling,Bangs"), "{e}");
    ok(
        d,
        &words("classifier train --dataset celeba:Young,Male,Smiling,Bangs --data-dir data --epochs 1 --out clf --quiet"),
    );
    let table = ok(
        d,
        &words("eval --checkpoint run/best --data-dir data --classifier clf --metrics coherence"),
    );
    assert!(table.contains("attribute F1"), "{table}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/eval.json")).unwrap()).unwrap();
    for k in ["text_to_image", "image_to_text"] {
        let f1 = json[k]["attribute_f1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f1), "{json}");
        let slots = json[k]["per_slot"].as_object().unwrap();
        assert_eq!(slots.len(), 4, "{json}");
        assert!(slots.contains_key("bangs"), "{json}");
    }
    // Captions of the CelebA grammar go in; attribute words come out.
    ok(
        d,
        &[
            "generate",
            "--checkpoint",
            "run/best",
            "--text",
            "a young woman who is smiling, with bangs",
            "--out",
            "g.png",
        ],
    );
    assert!(d.join("g.png").is_file());
    // CelebA is never downloaded; the error says where to get it.
    let e = fails(d, &words("data fetch celeba --dest x"));
    assert!(e.contains("mmlab.ie.cuhk.edu.hk"), "{e}");
    assert!(!d.join("x").exists());
}

/// CelebA-19 on the fixture: the image and one label expert per attribute.
fn celeba19_toml() -> String {
    let mut s = String::from(
        "seed = 3\n[[modalities]]\nname = \"image\"\nkind = \"image\"\nmodel = { kind = \"conv\", channels = 4, hidden = 32 }\n",
    );
    for slot in mmvae_data::DatasetKind::parse("celeba19").unwrap().slots() {
        s.push_str(&format!(
            "[[modalities]]\nname = \"{}\"\nkind = \"label\"\nmodel = {{ classes = 2, hidden = 8 }}\nweight = 20.0\n",
            slot.0
        ));
    }
    s + "[model]\nlatent = 8\nfusion = \"poe\"\n[optim]\nlr = 0.003\nbatch_size = 10\nepochs = 1\n\
         [data]\ndataset = \"celeba19\"\nval_size = 10\n\
         [loss]\nbeta = 1.0\nkl_anneal_steps = 0\nunimodal_target = \"all\"\nsampled_subsets = 1\n"
}

#[test]
fn celeba19_trains_evaluates_and_generates_faces_from_attributes_and_back() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    mmvae_data::celeba::write_fixture(&d.join("data/celeba"), 60, 178, 218).unwrap();
    std::fs::write(d.join("c19.toml"), celeba19_toml()).unwrap();
    let check = ok(d, &words("data check celeba19 --data-dir data"));
    assert!(check.contains("receding_hairline"), "{check}");
    ok(
        d,
        &words("train --config c19.toml --out run --data-dir data --quiet"),
    );
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"cross/smiling->image\""), "{metrics}");
    // Nineteen modalities: every single one, every set of all but one and
    // all of them are scored (not the 2^19 - 1 subsets).
    ok(
        d,
        &words("classifier train --dataset celeba19 --data-dir data --epochs 1 --out clf --quiet"),
    );
    let table = ok(
        d,
        &words("eval --checkpoint run/best --data-dir data --classifier clf --metrics coherence"),
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/eval.json")).unwrap()).unwrap();
    let cells = json["coherence_matrix"]["cells"].as_object().unwrap();
    assert_eq!(cells.len(), 1 + 19 + 19, "{table}");
    // Each attribute expert is scored on its own attribute.
    let male = cells["image"]["male"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&male), "{json}");
    assert_eq!(cells["image"].as_object().unwrap().len(), 19, "{json}");
    let all_but_male = cells
        .keys()
        .find(|k| k.matches('+').count() == 17 && !k.contains("male+"));
    assert!(all_but_male.is_some(), "{table}");
    // Faces from attributes, attributes from a face.
    let ck = ["predict", "--checkpoint", "run/best"];
    let png = ok(
        d,
        &[
            &ck[..],
            &[
                "--given",
                "male=yes",
                "--given",
                "smiling=0",
                "--to",
                "image",
                "--n",
                "2",
                "--out",
                "m.png",
            ],
        ]
        .concat(),
    );
    assert!(d.join("m.png").is_file(), "{png}");
    let face = std::fs::read_dir(d.join("data/celeba/img_align_celeba"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let face = face.to_str().unwrap();
    let said = ok(
        d,
        &[
            &ck[..],
            &[
                "--given",
                &format!("image={face}"),
                "--to",
                "smiling",
                "--n",
                "3",
            ],
        ]
        .concat(),
    );
    assert_eq!(said.lines().count(), 3, "{said}");
    assert!(said.lines().all(|l| l == "yes" || l == "no"), "{said}");
    let e = fails(
        d,
        &[&ck[..], &["--given", "male=maybe", "--to", "image"]].concat(),
    );
    assert!(e.contains("male=maybe") && e.contains("`no`"), "{e}");
    // The report's cross-generation grid names each attribute's value.
    ok(
        d,
        &words("report --checkpoint run/best --data-dir data --out r.html --tsne-items 12 --examples 4"),
    );
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    assert!(html.contains("cross-generation") && html.contains("receding_hairline"));
    assert!(html.contains("yes") && html.contains("no"));
}

/// A folder of the user's own pairs: a coloured bar whose colour and
/// position the caption names, in assorted sizes, plus `extra` CSV lines.
fn write_pairs(dir: &Path, n: usize, extra: &str) {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let colours = [
        ("red", [230u8, 20, 20]),
        ("green", [20, 200, 40]),
        ("blue", [30, 60, 230]),
    ];
    let mut csv = String::from("file,caption,split\n");
    for i in 0..n {
        let (name, rgb) = colours[i % 3];
        let top = (i / 3) % 2 == 0;
        let (w, h) = (40 + (i % 5) as u32 * 9, 40 + (i % 7) as u32 * 5);
        let img = image::RgbImage::from_fn(w, h, |_, y| {
            let band = if top { y < h / 3 } else { y > 2 * h / 3 };
            image::Rgb(if band { rgb } else { [0, 0, 0] })
        });
        let file = format!("img/{i:03}.{}", if i % 4 == 0 { "jpg" } else { "png" });
        img.save(dir.join(&file)).unwrap();
        let split = if i % 10 == 0 { "test" } else { "train" };
        let pos = if top { "top" } else { "bottom" };
        csv.push_str(&format!("{file},\"a {name} bar at the {pos}\",{split}\n"));
    }
    csv.push_str(extra);
    std::fs::write(dir.join("captions.csv"), csv).unwrap();
}

#[test]
fn train_and_evaluate_on_your_own_image_caption_pairs() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    write_pairs(&d.join("mine"), 120, "img/999.png,a missing one,train\n");
    let cfg = tiny_toml(
        "latent = 8\nmax_len = 10\nimage = { kind = \"conv\", channels = 4, hidden = 32 }\ntext = { kind = \"gru\", embed = 8, hidden = 16 }",
        "lr = 0.003\nbatch_size = 16\nepochs = 2",
        "dataset = \"pairs\"\nval_size = 12\ncaption_seed = 0\nimage_size = 32\nBAD",
    );
    std::fs::write(d.join("stop.toml"), cfg.replace("BAD", "")).unwrap();
    std::fs::write(
        d.join("skip.toml"),
        cfg.replace("BAD", "bad_items = \"skip\""),
    )
    .unwrap();
    // `data check` reads both splits and lists what is wrong, exiting 1.
    let o = run(d, &words("data check mine --image-size 32"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{stdout} {stderr}");
    assert!(
        stdout.contains("Train: 108 items of 3x32x32")
            && stdout.contains("Test: 12 items")
            && stdout.contains("skipped 1 bad images")
            && stdout.contains("line 122"),
        "{stdout}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // By default the first bad item stops the run, naming its line, and
    // nothing is written.
    let e = fails(
        d,
        &words("train --config stop.toml --out stopped --data-dir mine --quiet"),
    );
    assert!(e.contains("999.png") && e.contains("line 122"), "{e}");
    assert!(!d.join("stopped").exists());
    // Skipping trains on the rest and counts what was left out at the end.
    let out = ok(
        d,
        &words("train --config skip.toml --out run --data-dir mine --quiet"),
    );
    assert!(
        out.contains("data: train split: skipped 1 bad images") && out.contains("999.png"),
        "{out}"
    );
    let vocab = std::fs::read_to_string(d.join("run/best/vocab.json")).unwrap();
    for w in ["red", "bar", "bottom"] {
        assert!(
            vocab.contains(w),
            "the vocabulary comes from the captions: {vocab}"
        );
    }
    // Evaluation without labels: the label-free metrics by default. The
    // checkpoint remembers where its data is: no --data-dir needed.
    let table = ok(d, &words("eval --checkpoint run/best"));
    assert!(!table.contains("coherence"), "{table}");
    assert!(
        !table.contains("class@1"),
        "no classes, no class@1: {table}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/eval.json")).unwrap()).unwrap();
    assert_eq!(json["test_items"].as_u64(), Some(12), "{json}");
    for k in [
        "caption_bleu",
        "reconstruction_psnr_db",
        "test_loss",
        "retrieval",
        "caption_perplexity",
    ] {
        assert!(!json[k].is_null(), "{k} missing: {json}");
    }
    assert!(json["text_to_image"].is_null() && json["classifier_test_accuracy"].is_null());
    let e = fails(
        d,
        &words("eval --checkpoint run/best --data-dir mine --metrics coherence"),
    );
    assert!(e.contains("needs class labels"), "{e}");
    // Both directions of generation work on the user's vocabulary.
    ok(
        d,
        &[
            "generate",
            "--checkpoint",
            "run/best",
            "--text",
            "a red bar at the top",
            "--out",
            "g.png",
        ],
    );
    let g = image::open(d.join("g.png")).unwrap();
    assert_eq!(g.color().channel_count(), 3);
    let caps = ok(
        d,
        &words("caption --checkpoint run/best --image mine/img/001.png"),
    );
    assert!(!caps.trim().is_empty());
    // A folder of PNG and JPEG files of assorted sizes: one line each.
    let caps = ok(d, &words("caption --checkpoint run/best --image mine/img"));
    assert_eq!(caps.lines().count(), 120, "{caps}");
    assert!(
        caps.contains("000.jpg\t") && caps.contains("001.png\t"),
        "{caps}"
    );
    let e = fails(
        d,
        &words("classifier train --dataset pairs --data-dir mine"),
    );
    assert!(e.contains("no class labels"), "{e}");
    // The report shows the user's own captions: generated from, and beside
    // the captions generated for, the test images.
    ok(
        d,
        &words("report --checkpoint run/best --out r.html --tsne-items 12 --examples 6"),
    );
    let html = std::fs::read_to_string(d.join("r.html")).unwrap();
    for id in [
        "t2i-table",
        "i2t-table",
        "retrieval-examples",
        "interpolation",
        "tsne",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(html.contains("a red bar at the top") || html.contains("a green bar at the top"));
    assert!(html.contains("its caption"));
    // And the local web app on the same checkpoint: text -> images of the
    // folder's size, and a caption for one of its photos.
    let s = common::serve(d, "run/best", &[]);
    let (st, v) = common::post_json(
        &s,
        "/api/generate",
        serde_json::json!({"text": "a red bar at the top", "n": 2}),
    );
    assert_eq!(st, 200, "{v}");
    let imgs = v["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 2);
    let im = common::png_of(&imgs[0]);
    assert_eq!((im.width(), im.height()), (32, 32));
    let photo = std::fs::read(d.join("mine/img/000.jpg")).unwrap();
    let (st, v) = common::post(&s.base, "/api/caption", "image/jpeg", &photo);
    assert_eq!(st, 200, "{v}");
    assert!(!v["caption"].as_str().unwrap().trim().is_empty(), "{v}");
}

#[test]
fn device_values_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let e = fails(d, &words("bench --steps 1 --device tpu"));
    assert!(e.contains("unknown device `tpu`"), "{e}");
    if cfg!(feature = "wgpu") {
        return;
    }
    // A build without the GPU backend says how to get one.
    let e = fails(d, &words("devices"));
    assert!(e.contains("--features wgpu"), "{e}");
    let e = fails(d, &words("bench --steps 1 --device wgpu:h200"));
    assert!(e.contains("--features wgpu"), "{e}");
    let e = fails(d, &words("train --config nothing.toml --device wgpu"));
    assert!(
        e.contains("nothing.toml") || e.contains("--features wgpu"),
        "{e}"
    );
}

const THREE: &str = r#"
seed = 3

[[modalities]]
name = "image"
kind = "image"
model = { kind = "mlp", hidden = 64 }

[[modalities]]
name = "text"
kind = "text"
model = { kind = "gru", embed = 16, hidden = 32 }
weight = 20.0

[[modalities]]
name = "digit"
kind = "label"
model = { classes = 10, hidden = 16 }
weight = 5.0

[model]
latent = 8
max_len = 10
fusion = "mopoe"

[optim]
lr = 0.005
batch_size = 20
epochs = 3

[data]
dataset = "mnist"
val_size = 50
caption_seed = 0
paired_fraction = 0.3

[loss]
beta = 1.0
kl_anneal_steps = 0
"#;

#[test]
fn three_weakly_paired_modalities_train_evaluate_and_generate_any_from_any() {
    let f = fixture();
    let d = &f.root;
    std::fs::write(d.join("three.toml"), THREE).unwrap();
    let cfg = ["--config", "three.toml", "--data-dir", "data", "--quiet"];
    let out = ok(d, &[&["train", "--out", "run"][..], &cfg].concat());
    assert!(out.contains("run/best"), "{out}");
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"cross/digit->image\""), "{metrics}");
    // Any modality from any subset of the others.
    let ck = ["predict", "--checkpoint", "run/best"];
    let lines = ok(
        d,
        &[&ck[..], &["--given", "digit=7", "--to", "text", "--n", "3"]].concat(),
    );
    assert_eq!(lines.lines().count(), 3, "{lines}");
    mmvae_data::imageio::save_image(&d.join("seven.png"), &bar(7)).unwrap();
    let digits = ok(
        d,
        &[
            &ck[..],
            &[
                "--given",
                "image=seven.png",
                "--given",
                "text=a handwritten seven",
                "--to",
                "digit",
                "--n",
                "2",
            ],
        ]
        .concat(),
    );
    assert_eq!(digits.lines().count(), 2, "{digits}");
    let png = ok(
        d,
        &[
            &ck[..],
            &[
                "--given",
                "digit=three",
                "--to",
                "image",
                "--n",
                "4",
                "--out",
                "p/three.png",
            ],
        ]
        .concat(),
    );
    assert!(
        png.contains("three.png") && d.join("p/three.png").is_file(),
        "{png}"
    );
    for (args, want) in [
        (
            vec!["--given", "sound=1", "--to", "text"],
            "no modality `sound`",
        ),
        (
            vec!["--given", "digit=1", "--to", "smell"],
            "no modality `smell`",
        ),
        (vec!["--given", "digit=12", "--to", "text"], "not a class"),
        (
            vec!["--given", "digit=1", "--given", "digit=2", "--to", "text"],
            "given twice",
        ),
        (
            vec!["--given", "text=a purple cow", "--to", "image"],
            "unknown word",
        ),
        (vec!["--given", "digit", "--to", "image"], "NAME=VALUE"),
        (
            vec!["--given", "image=missing.png", "--to", "digit"],
            "missing.png",
        ),
    ] {
        let e = fails(d, &[&ck[..], &args].concat());
        assert!(e.contains(want), "{args:?}: {e}");
    }
    // The coherence matrix covers the 7 subsets and the 3 outputs.
    ok(
        d,
        &[
            "classifier",
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            "data",
            "--out",
            "clf",
            "--epochs",
            "1",
            "--quiet",
        ],
    );
    let table = ok(
        d,
        &[
            "eval",
            "--checkpoint",
            "run/best",
            "--data-dir",
            "data",
            "--classifier",
            "clf",
            "--limit",
            "60",
            "--metrics",
            "coherence,loss",
        ],
    );
    assert!(
        table.contains("image+text+digit") && table.contains("mean given 2 inputs"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/eval.json")).unwrap()).unwrap();
    let cells = json["coherence_matrix"]["cells"].as_object().unwrap();
    assert_eq!(cells.len(), 7);
    assert!(cells.values().all(|r| r.as_object().unwrap().len() == 3));
    assert!(json["test_loss"]["nll/digit"].as_f64().is_some(), "{json}");
    // Any two modalities checked against each other: thresholds fitted on
    // the validation split, then an image of a seven with the digit 7 and
    // with the digit 3.
    let cal = ok(
        d,
        &words("calibrate --checkpoint run/best --data-dir data --pair digit,image --val-items 50 --test-items 60 --prior-samples 16"),
    );
    assert!(
        cal.contains("consistency of image and digit") && cal.contains("digit-ratio"),
        "{cal}"
    );
    let cj: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.join("run/best/consistency-image-digit.json")).unwrap(),
    )
    .unwrap();
    let default = cj["default_score"].as_str().unwrap();
    assert!(cj["test"][default]["auroc"].as_f64().unwrap() > 0.7, "{cj}");
    let ratio = |digit: &str| -> f64 {
        let out = ok(
            d,
            &words(&format!(
                "check --checkpoint run/best --given image=seven.png --given digit={digit}"
            )),
        );
        assert!(out.contains("match ("), "{out}");
        let line = out.lines().find(|l| l.starts_with("digit-ratio")).unwrap();
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    let (right, wrong) = (ratio("7"), ratio("3"));
    assert!(
        right > wrong,
        "digit-ratio of a seven: 7 {right}, 3 {wrong}"
    );
    let e = fails(
        d,
        &words("check --checkpoint run/best --given image=seven.png"),
    );
    assert!(e.contains("exactly two"), "{e}");
    let e = fails(
        d,
        &[
            "check",
            "--checkpoint",
            "run/best",
            "--given",
            "text=a handwritten seven",
            "--given",
            "digit=7",
        ],
    );
    assert!(
        e.contains("calibrate --checkpoint DIR --pair text,digit"),
        "{e}"
    );
    // A config whose modalities the dataset cannot feed is refused.
    std::fs::write(
        d.join("two-labels.toml"),
        THREE.replace(
            "name = \"image\"\nkind = \"image\"\nmodel = { kind = \"mlp\", hidden = 64 }",
            "name = \"class\"\nkind = \"label\"\nmodel = { classes = 10, hidden = 4 }",
        ),
    )
    .unwrap();
    let e = fails(
        d,
        &[
            "train",
            "--config",
            "two-labels.toml",
            "--data-dir",
            "data",
            "--out",
            "bad",
            "--quiet",
        ],
    );
    assert!(e.contains("one label per item"), "{e}");
    assert!(!d.join("bad").exists());
}

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
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("clf/classifier.json")).unwrap()).unwrap();
    assert_eq!(info["test_view_accuracy"].as_array().unwrap().len(), 5);

    std::fs::write(d.join("poly.toml"), POLY).unwrap();
    std::fs::write(
        d.join("grid.toml"),
        "base = \"poly.toml\"\nout = \"sw\"\n[[cells]]\nname = \"poe\"\n[[cells]]\nname = \"moe\"\nset = { \"model.fusion\" = \"moe\" }\n",
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
    // A finished cell is not rerun.
    let again = ok(d, &sweep);
    assert!(
        again.contains("poe seed 0: done") && again.contains("moe seed 0: done"),
        "{again}"
    );
    assert!(!again.contains("training"), "{again}");
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
    let cfg = r#"
seed = 1
[[modalities]]
name = "image"
kind = "image"
model = { kind = "mlp", hidden = 16 }
[[modalities]]
name = "grey"
kind = "image"
model = { kind = "mlp", hidden = 16 }
cross_weight = 0.0
[[modalities]]
name = "text"
kind = "text"
model = { kind = "gru", embed = 8, hidden = 16 }
[model]
latent = 8
max_len = 10
[optim]
lr = 0.003
batch_size = 25
epochs = 1
[data]
dataset = "vision"
val_size = 25
train_limit = 100
[loss]
beta = 1.0
kl_anneal_steps = 0
"#;
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
