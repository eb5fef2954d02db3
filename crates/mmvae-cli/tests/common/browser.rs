//! Headless Chromium for the tests that render a page: the HTML report
//! and `mmvae serve`'s page.

use std::path::{Path, PathBuf};
use std::process::Output;

/// Headless Chromium, if installed (`MMVAE_CHROMIUM` names another
/// binary). Where none is found the caller skips rendering, unless
/// `MMVAE_REQUIRE_CHROMIUM` is set (CI installs Chromium and sets it, so
/// there the rendering cannot be skipped): then this panics.
pub fn chromium() -> Option<PathBuf> {
    let found = match std::env::var_os("MMVAE_CHROMIUM") {
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .flat_map(|d| ["chromium", "chromium-browser", "google-chrome"].map(|b| d.join(b)))
                .find(|p| p.is_file())
        }),
    };
    if found.is_none() {
        assert!(
            std::env::var_os("MMVAE_REQUIRE_CHROMIUM").is_none(),
            "MMVAE_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("note: chromium not found; the page was not rendered in a browser");
    }
    found
}

/// Run headless Chromium on `page` with `args`, in a fresh profile under
/// `profile` (no lock shared with another browser) and without /dev/shm.
pub fn headless(chrome: &Path, profile: &Path, args: &[&str], page: &str) -> Output {
    let profile = format!("--user-data-dir={}", profile.display());
    let o = std::process::Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            &profile,
        ])
        .args(args)
        .arg(page)
        .output()
        .expect("chromium runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A screenshot of `page`, `w`×`h` pixels, checked to be a rendered page
/// and not a blank or error page: more than `colours` distinct colours
/// and more than `dark` pixels of dark ink.
pub fn screenshot(
    chrome: &Path,
    profile: &Path,
    page: &str,
    (w, h): (u32, u32),
    extra: &[&str],
    (colours, dark): (usize, usize),
) -> image::RgbImage {
    let shot = profile.with_extension("png");
    let size = format!("--window-size={w},{h}");
    let out = format!("--screenshot={}", shot.display());
    let mut args = vec!["--hide-scrollbars", size.as_str(), out.as_str()];
    args.extend_from_slice(extra);
    headless(chrome, profile, &args, page);
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (w, h));
    let distinct: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > colours, "{} colours", distinct.len());
    let ink = img.pixels().filter(|p| p.0.iter().all(|&v| v < 80)).count();
    assert!(ink > dark, "{ink} dark pixels");
    img
}

/// The DOM of `page` once its scripts have run (and the requests they
/// make have been answered, within `budget_ms` of virtual time).
pub fn rendered_dom(chrome: &Path, profile: &Path, page: &str, budget_ms: u32) -> String {
    let budget = format!("--virtual-time-budget={budget_ms}");
    let o = headless(chrome, profile, &["--dump-dom", &budget], page);
    String::from_utf8_lossy(&o.stdout).into_owned()
}
