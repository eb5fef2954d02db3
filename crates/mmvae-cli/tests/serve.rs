//! `mmvae serve` on a tiny trained model: the page, every endpoint, bad
//! inputs, the limits and concurrent requests, through the real binary.

mod common;

use base64::Engine as _;
use common::{
    browser, get, ok, png_of, post, post_json, serve, words, write_dataset, Server, TINY,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// An image and a class label, no text.
const NO_TEXT: &str = r#"
seed = 3
[[modalities]]
name = "image"
kind = "image"
model = { kind = "mlp", hidden = 32 }

[[modalities]]
name = "digit"
kind = "label"
model = { classes = 10, hidden = 16 }

[model]
latent = 8
max_len = 10

[optim]
lr = 0.005
batch_size = 20
epochs = 1

[data]
dataset = "mnist"
val_size = 50
caption_seed = 0

[loss]
beta = 1.0
kl_anneal_steps = 0
"#;

/// A bar image of class `c`, as in [`write_dataset`], as PNG bytes.
fn bar_png(c: usize) -> Vec<u8> {
    let mut px = vec![0u8; 784];
    for y in (c * 2 + 3)..(c * 2 + 6) {
        for x in 4..24 {
            px[y * 28 + x] = 220;
        }
    }
    mmvae_data::imageio::encode_png(&mmvae_data::imageio::Image::from_bytes(1, 28, 28, &px))
}

/// A black PNG of `w`×`h` pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::GrayImage::new(w, h)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn error_of(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

/// `n` generate requests at once from threads: their statuses, each 200
/// checked to carry its images.
fn parallel_generate(s: &Server, n: usize, images: usize) -> Vec<u16> {
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (base, barrier) = (s.base.clone(), barrier.clone());
            std::thread::spawn(move || {
                let body = json!({"text": "a handwritten seven", "n": images, "seed": i});
                barrier.wait();
                let (st, v) = post(
                    &base,
                    "/api/generate",
                    "application/json",
                    body.to_string().as_bytes(),
                );
                match st {
                    200 => assert_eq!(v["images"].as_array().unwrap().len(), images),
                    503 => assert!(error_of(&v).contains("busy"), "{v}"),
                    _ => panic!("concurrent generate: {st} {v}"),
                }
                st
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Send raw bytes to the server and read its answer until it closes:
/// (status, whole answer). A server that refuses a body early may reset the
/// connection after answering; what arrived before is kept.
fn raw(s: &Server, request: &[u8]) -> (u16, String) {
    let addr = s.base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(request).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = c.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// A request declaring a body of `len` bytes, without the body.
fn declared(path: &str, len: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A request with a chunked body of `len` bytes (no declared length).
fn chunked(path: &str, len: usize) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{len:x}\r\n"
    )
    .into_bytes();
    r.extend(std::iter::repeat_n(b' ', len));
    r.extend_from_slice(b"\r\n0\r\n\r\n");
    r
}

#[test]
fn serve_answers_every_endpoint_refuses_bad_requests_and_limits_its_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_dataset(&d.join("data/mnist"), 300);
    std::fs::write(
        d.join("tiny.toml"),
        TINY.replace("epochs = 2", "epochs = 1"),
    )
    .unwrap();
    let train = |config: &str, out: &str| {
        ok(
            d,
            &[
                "train",
                "--config",
                config,
                "--out",
                out,
                "--data-dir",
                "data",
                "--quiet",
            ],
        )
    };
    train("tiny.toml", "run");
    let s = serve(d, "run/best", &[]);

    // The page: self-contained HTML with a form per endpoint.
    let (st, ct, html) = get(&s, "/");
    assert_eq!(st, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    for f in ["generate", "caption", "check", "reconstruct", "sample"] {
        assert!(html.contains(&format!("<form id=\"{f}\"")), "no {f} form");
    }
    assert!(
        !html.contains("src=\"http") && !html.contains("<link"),
        "external resource"
    );
    let (st, _, info) = get(&s, "/api/info");
    assert_eq!(st, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["dataset"], "mnist");
    assert_eq!(info["calibrated"], false);
    assert_eq!(info["limits"]["max_n"], 64);

    // Text -> image: n PNG data URIs of the model's size; a seed repeats.
    let (st, v) = post_json(
        &s,
        "/api/generate",
        json!({"text": "a handwritten seven", "n": 3, "seed": 5}),
    );
    assert_eq!(st, 200, "{v}");
    let imgs = v["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 3);
    for i in imgs {
        let im = png_of(i);
        assert_eq!((im.width(), im.height()), (28, 28));
    }
    let (_, again) = post_json(
        &s,
        "/api/generate",
        json!({"text": "a handwritten seven", "n": 3, "seed": 5}),
    );
    assert_eq!(again["images"], v["images"]);
    let (st, v) = post_json(&s, "/api/generate", json!({"text": "a handwritten two"}));
    assert_eq!((st, v["images"].as_array().unwrap().len()), (200, 8), "{v}");

    // Image -> text, and reconstruction, from PNG bodies.
    let seven = bar_png(7);
    let (st, v) = post(&s.base, "/api/caption", "image/png", &seven);
    assert_eq!(st, 200, "{v}");
    assert!(!v["caption"].as_str().unwrap().is_empty(), "{v}");
    let (st, v) = post(&s.base, "/api/reconstruct", "image/png", &seven);
    assert_eq!(st, 200, "{v}");
    assert_eq!(png_of(&v["image"]).width(), 28);
    assert!(v["caption"].is_string(), "{v}");

    // Joint samples.
    let (st, v) = post_json(&s, "/api/sample", json!({"n": 4}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["images"].as_array().unwrap().len(), 4);
    assert_eq!(v["captions"].as_array().unwrap().len(), 4);
    png_of(&v["images"][0]);

    // The page in a browser: its script reads /api/info, and a link that
    // carries a caption draws that caption's images on load.
    if let Some(chrome) = browser::chromium() {
        let profile = d.join("chromium");
        let page = format!("{}/#generate=a%20handwritten%20seven&n=4", s.base);
        let dom = browser::rendered_dom(&chrome, &profile, &page, 20_000);
        assert!(dom.contains("dataset mnist"), "/api/info not shown: {dom}");
        let generated = &dom[dom.find("<form id=\"generate\"").unwrap()..];
        let generated = &generated[..generated.find("</section>").unwrap()];
        assert_eq!(
            generated.matches("src=\"data:image/png;base64,").count(),
            4,
            "{generated}"
        );
        // Text and four drawn digits: many shades, some dark ink.
        let budget = "--virtual-time-budget=20000";
        browser::screenshot(
            &chrome,
            &profile,
            &page,
            (1000, 1200),
            &[budget],
            (30, 2000),
        );
    }

    // Check before calibration: a JSON error saying how to calibrate.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&seven);
    let pair = json!({"image": b64, "text": "the digit seven"});
    let (st, v) = post_json(&s, "/api/check", pair.clone());
    assert_eq!(st, 409, "{v}");
    assert!(error_of(&v).contains("mmvae calibrate"), "{v}");

    // Bad requests: 4xx JSON errors, and the server still answers after.
    let long = "seven ".repeat(100);
    for (path, body, want, says) in [
        (
            "/api/generate",
            json!({"text": "a seven", "n": 10_000}),
            400,
            "n must be in 1..=64",
        ),
        (
            "/api/generate",
            json!({"text": "a seven", "n": 0}),
            400,
            "n must be",
        ),
        (
            "/api/generate",
            json!({"text": "a purple cow", "n": 2}),
            400,
            "unknown word",
        ),
        (
            "/api/generate",
            json!({"text": long, "n": 1}),
            400,
            "--max-text-chars",
        ),
        (
            "/api/generate",
            json!({"n": 1}),
            400,
            "missing field `text`",
        ),
        (
            "/api/generate",
            json!({"text": "a seven", "colour": 1}),
            400,
            "unknown field",
        ),
        ("/api/sample", json!({"n": 65}), 400, "n must be"),
        (
            "/api/sample",
            json!({"n": 2, "temperature": -1.0}),
            400,
            "temperature",
        ),
    ] {
        let (st, v) = post_json(&s, path, body);
        assert_eq!(st, want, "{path}: {v}");
        assert!(error_of(&v).contains(says), "{path}: {v}");
    }
    for (path, ct, body, want, says) in [
        (
            "/api/generate",
            "application/json",
            b"{\"text\": ".to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "/api/caption",
            "image/png",
            b"not an image".to_vec(),
            400,
            "PNG or JPEG",
        ),
        ("/api/caption", "image/png", Vec::new(), 400, "empty"),
        (
            "/api/caption",
            "image/png",
            png(10, 10),
            400,
            "expects 28x28",
        ),
        ("/api/caption", "image/png", png(4097, 1), 400, "4096"),
        (
            "/api/caption",
            "application/json",
            seven.clone(),
            415,
            "Content-Type",
        ),
        (
            "/api/reconstruct",
            "image/jpeg",
            b"\xff\xd8\xff junk".to_vec(),
            400,
            "PNG or JPEG",
        ),
    ] {
        let (st, v) = post(&s.base, path, ct, &body);
        assert_eq!(st, want, "{path} {ct}: {v}");
        assert!(error_of(&v).contains(says), "{path} {ct}: {v}");
    }
    // A body over the limit (4 MiB): refused from its declared length,
    // before it is sent.
    let (st, answer) = raw(&s, &declared("/api/caption", (4 << 20) + 1));
    assert_eq!(st, 413, "{answer}");
    assert!(
        answer.contains("{\"error\":") && answer.contains("--max-body-bytes"),
        "{answer}"
    );
    let (st, _, body) = get(&s, "/nowhere");
    assert_eq!(st, 404);
    assert!(body.contains("no such endpoint"), "{body}");
    let (st, _, body) = get(&s, "/api/generate");
    assert_eq!(st, 405);
    assert!(body.contains("\"error\""), "{body}");

    // Concurrent requests within the queue are all served.
    let statuses = parallel_generate(&s, 6, 8);
    assert!(
        statuses.iter().all(|&c| c == 200 || c == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");

    // Calibrated while serving: check decides as `mmvae check` does.
    ok(d, &words("calibrate --checkpoint run/best --data-dir data --val-items 40 --test-items 40 --prior-samples 8"));
    std::fs::write(d.join("seven.png"), &seven).unwrap();
    for text in ["the digit seven", "the digit two"] {
        let (st, v) = post_json(&s, "/api/check", json!({"image": b64, "text": text}));
        assert_eq!(st, 200, "{v}");
        let cli = ok(
            d,
            &[
                "check",
                "--checkpoint",
                "run/best",
                "--image",
                "seven.png",
                "--text",
                text,
            ],
        );
        let decision = cli.lines().last().unwrap();
        let matched = v["match"].as_bool().unwrap();
        assert_eq!(decision.starts_with("match"), matched, "{cli} vs {v}");
        let want = format!(
            "{} {:.3}",
            v["score_name"].as_str().unwrap(),
            v["score"].as_f64().unwrap()
        );
        assert!(decision.contains(&want), "{cli} vs {v}");
        assert!(v["threshold"].is_number(), "{v}");
    }
    let (st, v) = post_json(
        &s,
        "/api/check",
        json!({"image": "%%%", "text": "the digit seven"}),
    );
    assert_eq!(st, 400, "{v}");
    assert!(error_of(&v).contains("base64"), "{v}");
    drop(s);

    // A queue of one: of many requests at once, some are turned away.
    let one = serve(
        d,
        "run/best",
        &["--queue", "1", "--max-body-bytes", "100000"],
    );
    // A body without a declared length is cut at the limit.
    let (st, answer) = raw(&one, &chunked("/api/generate", 200_000));
    assert_eq!(st, 413, "{answer}");
    assert!(answer.contains("larger than 100000 bytes"), "{answer}");
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.extend(parallel_generate(&one, 12, 64));
        if seen.contains(&503) && seen.contains(&200) {
            break;
        }
    }
    assert!(seen.contains(&503) && seen.contains(&200), "{seen:?}");
    drop(one);

    // A model without text: the image <-> text endpoints name what it lacks.
    std::fs::write(d.join("notext.toml"), NO_TEXT).unwrap();
    train("notext.toml", "notext");
    let s = serve(d, "notext/best", &[]);
    let (st, v) = post_json(&s, "/api/generate", json!({"text": "a seven", "n": 1}));
    assert_eq!(st, 400, "{v}");
    assert!(error_of(&v).contains("no text modality"), "{v}");
    let (st, v) = post(&s.base, "/api/caption", "image/png", &seven);
    assert_eq!(st, 400, "{v}");
    assert!(error_of(&v).contains("no text modality"), "{v}");
    let (st, _, _) = get(&s, "/");
    assert_eq!(st, 200);
}
