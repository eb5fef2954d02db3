//! The text prior: fitted with training or afterwards, and its files.

use super::fixture;
use crate::common::TINY;
use crate::common::{fails, ok, words};

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
        &words("train --config prior.toml --out run --data-dir data --quiet"),
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
        &words("classifier train --dataset mnist --data-dir data --out clf --epochs 1 --quiet"),
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
    let out = ok(d, &words("fit-prior --checkpoint run/last --data-dir data --components 2 --epochs 1 --temperature 0.2"));
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
