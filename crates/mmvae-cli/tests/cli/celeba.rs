//! CelebA from its official files, and CelebA-19.

use super::{tiny_toml, vision_toml};
use crate::common::{fails, ok, words};

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

#[test]
fn vision_views_of_celeba_train_score_and_colourise_a_photo() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    mmvae_data::celeba::write_fixture(&d.join("data/celeba"), 60, 178, 218).unwrap();
    let check = ok(
        d,
        &words("data check vision-celeba:Male,Smiling --data-dir data"),
    );
    assert!(
        check.contains("5 images per item: image, grey, edges, masked, watermark"),
        "{check}"
    );
    // How much the square hides is a count of shape pixels on black: the
    // shapes source's, not a face's.
    assert!(!check.contains("the masked square hides"), "{check}");
    let cfg = vision_toml(
        "dataset = \"vision-celeba:Male,Smiling\"\nval_size = 10",
        24,
        10,
    );
    std::fs::write(d.join("v.toml"), cfg).unwrap();
    ok(
        d,
        &words("train --config v.toml --out run --data-dir data --quiet"),
    );
    let metrics = std::fs::read_to_string(d.join("run/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"cross/grey->image\""), "{metrics}");
    // The face's classifier, of the chosen attributes, reads the face only.
    ok(
        d,
        &words("classifier train --dataset vision-celeba:Male,Smiling --data-dir data --epochs 1 --out clf --quiet"),
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("clf/classifier.json")).unwrap()).unwrap();
    assert_eq!(info["reads"], serde_json::json!(["image"]), "{info}");
    assert_eq!(info["heads"], serde_json::json!([2, 2]), "{info}");
    ok(
        d,
        &words("eval --checkpoint run/best --data-dir data --classifier clf --metrics coherence"),
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("run/best/eval.json")).unwrap()).unwrap();
    let m = &json["coherence_matrix"];
    assert_eq!(m["unread"], serde_json::json!(["grey"]), "{m}");
    for slot in ["male", "smiling"] {
        let v = m["by_slot"]["grey"]["image"][slot].as_f64();
        assert!(v.is_some_and(|v| (0.0..=1.0).contains(&v)), "{slot}: {m}");
    }
    // A photo as CelebA ships it (178×218), colourised and captioned.
    let face = d.join("data/celeba/img_align_celeba/000001.jpg");
    let given = format!("grey={}", face.display());
    let ck = ["predict", "--checkpoint", "run/best", "--given", &given];
    ok(d, &[&ck[..], &["--to", "image", "--out", "c.png"]].concat());
    // A colour face drawn from the grey copy.
    let png = image::open(d.join("c.png")).unwrap();
    assert!(png.width() >= 64 && png.height() >= 64, "{png:?}");
    assert!(png.color().has_color(), "{:?}", png.color());
    let said = ok(d, &[&ck[..], &["--to", "text", "--n", "2"]].concat());
    assert_eq!(said.lines().count(), 2, "{said}");
}
