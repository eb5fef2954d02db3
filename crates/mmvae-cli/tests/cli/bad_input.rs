//! Bad input: one-line errors, nothing written, checked before any work.

use std::io::Write;

use super::{fixture, train_args};
use crate::common::TINY;
use crate::common::{fails, ok, words, write_dataset};

#[test]
fn bad_inputs_fail_with_one_line() {
    let f = fixture();
    let d = &f.root;
    // Missing dataset: says where it looked and how to get it.
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let e = fails(
        d,
        &words("train --config tiny.toml --out r --data-dir empty"),
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
        &words("train --config vgg.toml --data-dir data --out rv"),
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
        &words("train --config tiny.toml --out r2 --data-dir bad"),
    );
    assert!(e.contains("gzip") && e.contains("train-images"), "{e}");
    std::fs::remove_file(bad.join("train-images-idx3-ubyte.gz")).unwrap();
    let mut f2 = std::fs::File::create(bad.join("train-images-idx3-ubyte")).unwrap();
    f2.write_all(&[1, 2, 3, 4, 0, 0, 0, 0]).unwrap();
    let e = fails(
        d,
        &words("train --config tiny.toml --out r3 --data-dir bad"),
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
