//! The user's own image–caption pairs.

use std::path::Path;

use super::tiny_toml;
use crate::common::{fails, ok, run, words};

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
    let s = crate::common::serve(d, "run/best", &[]);
    let (st, v) = crate::common::post_json(
        &s,
        "/api/generate",
        serde_json::json!({"text": "a red bar at the top", "n": 2}),
    );
    assert_eq!(st, 200, "{v}");
    let imgs = v["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 2);
    let im = crate::common::png_of(&imgs[0]);
    assert_eq!((im.width(), im.height()), (32, 32));
    let photo = std::fs::read(d.join("mine/img/000.jpg")).unwrap();
    let (st, v) = crate::common::post(&s.base, "/api/caption", "image/jpeg", &photo);
    assert_eq!(st, 200, "{v}");
    assert!(!v["caption"].as_str().unwrap().trim().is_empty(), "{v}");
}
