//! The whole pipeline on the fixture: train, generate, caption,
//! reconstruct, sample, evaluate, resume, then report, plot, interpolate,
//! calibrate and check.

use std::path::Path;

use super::{bar, fixture, train_args};
use crate::common::{browser, fails, ok, run, words};

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
    ok(d, &words("sample --checkpoint run/best --n 4 --out s.png"));
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
        &words("reconstruct --checkpoint run/best --image in/a.png --out r.png"),
    );
    assert!(rec.contains("caption from the same latent"));

    // Wrong image size or format at `caption`.
    mmvae_data::imageio::save_image(
        &d.join("small.png"),
        &mmvae_data::imageio::Image::from_bytes(1, 5, 5, &[0; 25]),
    )
    .unwrap();
    let e = fails(d, &words("caption --checkpoint run/best --image small.png"));
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
        &words("eval --checkpoint run/best --data-dir data --classifier clf"),
    );
    assert!(e.contains("mmvae classifier train"), "{e}");
    // The groups no classifier scores run without one.
    let t = ok(
        d,
        &words("eval --checkpoint run/best --data-dir data --classifier clf --metrics latent,loss --limit 50 --out nolabels.json"),
    );
    assert!(t.contains("latent use of text"), "{t}");
    ok(
        d,
        &words("classifier train --dataset mnist --data-dir data --out clf --epochs 1 --quiet"),
    );
    let table = ok(
        d,
        &words("eval --checkpoint run/best --data-dir data --classifier clf --limit 100"),
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
    // Each modality's use of the 8-wide latent.
    for name in ["image", "text"] {
        let u = &json["latent_usage"][name]["shared"];
        assert_eq!(u["dims"], 8, "{u}");
        let (active, kl) = (u["active"].as_u64().unwrap(), u["kl"].as_f64().unwrap());
        assert!(active <= 8 && kl.is_finite() && kl >= 0.0, "{u}");
    }
    assert!(table.contains("latent use of image"), "{table}");
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
        &words("eval --checkpoint run/best --metrics coherence,fdi"),
    );
    assert!(e.contains("unknown metric 'fdi'"), "{e}");
    // FID in Inception-v3 features, with (random) weights in the format a
    // user supplies.
    let net = mmvae_model::eval::inception::InceptionV3::init(
        &mmvae_model::burn::prelude::Device::flex(),
    );
    net.save_safetensors(&d.join("inception.safetensors"))
        .unwrap();
    ok(d, &words("eval --checkpoint run/best --data-dir data --classifier clf --limit 8 --metrics fid --inception inception.safetensors --out fid.json"));
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
        &words("eval --checkpoint run/best --metrics coherence --inception inception.safetensors"),
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
    let out = ok(d, &words("report --checkpoint run/best --data-dir data --out rep/report.html --tsne-items 60 --examples 6"));
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

    let out = ok(d, &words("plot tsne --checkpoint run/best --data-dir data --items 40 --iterations 250 --out rep/tsne.png"));
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
        &words("caption --checkpoint run/best --image pairs/eight.png --mean"),
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
