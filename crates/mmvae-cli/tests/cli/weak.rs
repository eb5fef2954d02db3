//! Three weakly paired modalities.

use super::{bar, fixture};
use crate::common::{fails, ok, words};

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
        &words("classifier train --dataset mnist --data-dir data --out clf --epochs 1 --quiet"),
    );
    let table = ok(d, &words("eval --checkpoint run/best --data-dir data --classifier clf --limit 60 --metrics coherence,loss"));
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
        &words("train --config two-labels.toml --data-dir data --out bad --quiet"),
    );
    assert!(e.contains("one label per item"), "{e}");
    assert!(!d.join("bad").exists());
}
