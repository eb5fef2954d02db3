//! Starting `mmvae serve` from a test and talking to it over HTTP.

use super::bin;
use base64::Engine as _;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `mmvae serve`, killed when dropped (also when a test panics).
pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `mmvae serve --port 0` on `checkpoint` and read the address it
/// printed.
pub fn serve(dir: &Path, checkpoint: &str, extra: &[&str]) -> Server {
    let mut child = bin()
        .current_dir(dir)
        .args(["serve", "--checkpoint", checkpoint, "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut server = Server {
        child,
        base: String::new(),
    };
    // The first line names the address (wait for it at most a minute);
    // the rest of stdout is read until the server ends.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let _ = tx.send(first);
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("mmvae serve prints its address");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    server.base = url.trim_end_matches('/').to_string();
    server
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// (status, Content-Type, body) of a GET.
pub fn get(s: &Server, path: &str) -> (u16, String, String) {
    let mut r = agent()
        .get(&format!("{}{path}", s.base))
        .call()
        .expect("GET answered");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        r.status().as_u16(),
        ct,
        r.body_mut().read_to_string().unwrap(),
    )
}

/// (status, JSON body) of a POST; every answer must be JSON.
pub fn post(base: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut r = agent()
        .post(&format!("{base}{path}"))
        .header("Content-Type", content_type)
        .send(body)
        .expect("POST answered");
    let status = r.status().as_u16();
    let text = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: answer {status} is not JSON ({e}): {text}"));
    if status >= 400 {
        assert!(
            v["error"].is_string(),
            "{path}: {status} without error: {v}"
        );
    }
    (status, v)
}

pub fn post_json(s: &Server, path: &str, body: Value) -> (u16, Value) {
    post(
        &s.base,
        path,
        "application/json",
        body.to_string().as_bytes(),
    )
}

/// Decode a `data:image/png;base64,` URI to an image.
pub fn png_of(uri: &Value) -> image::DynamicImage {
    let b64 = uri
        .as_str()
        .and_then(|u| u.strip_prefix("data:image/png;base64,"))
        .unwrap_or_else(|| panic!("not a PNG data URI: {uri}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap()
}
