//! `mmvae serve`: one checkpoint behind a local web page and a JSON API.
//!
//! The model is loaded once; every inference runs on tokio's blocking
//! threads, one at a time (the model sits behind a mutex), and at most
//! `--queue` requests may wait for it or use it: the next one is answered
//! 503 at once. Every error is JSON `{"error": "..."}` with a 4xx/5xx status.

use anyhow::{bail, Context, Result};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use mmvae_model::device::Compute;
use mmvae_model::infer::{self, Loaded};
use mmvae_model::modality::ModalityKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Semaphore;

mod api;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Checkpoint folder (e.g. runs/mnist/best).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Address to listen on (127.0.0.1: this computer only).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one (the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Seed of the latent draws and sampled words (requests may pass their
    /// own `seed`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest request body, in bytes (larger: 413).
    #[arg(long, default_value_t = 4 << 20)]
    max_body_bytes: usize,
    /// Longest side of an uploaded image, in pixels, checked from its header
    /// before it is decoded.
    #[arg(long, default_value_t = 4096)]
    max_image_side: u32,
    /// Longest caption a request may send, in characters.
    #[arg(long, default_value_t = 500)]
    max_text_chars: usize,
    /// Most images (or samples) one request may ask for (`n`).
    #[arg(long, default_value_t = 64)]
    max_n: usize,
    /// Most requests waiting for or running inference at once; more are
    /// answered 503 at once.
    #[arg(long, default_value_t = 4)]
    queue: usize,
}

/// The request limits in force.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Limits {
    pub max_body_bytes: usize,
    pub max_image_side: u32,
    pub max_text_chars: usize,
    pub max_n: usize,
    pub queue: usize,
}

/// How uploaded images are read for the model (as `Loaded::read_image`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ImageSpec {
    pub side: usize,
    pub colours: usize,
    /// The built-in datasets want exactly `side`×`side`; a model trained on
    /// the user's own pairs takes any size, centre-cropped and resized.
    pub exact: bool,
}

pub(crate) struct AppState {
    model: Arc<Mutex<Loaded>>,
    queue: Arc<Semaphore>,
    /// The checkpoint folder.
    pub dir: PathBuf,
    pub limits: Limits,
    pub image: ImageSpec,
    /// What the model lacks for the image ↔ text endpoints, if anything.
    pub missing: Option<String>,
    pub info: serde_json::Value,
}

/// An error answer: a status and `{"error": msg}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub msg: String,
}

impl ApiError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            msg: msg.into(),
        }
    }

    pub fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, msg)
    }

    /// A model error: the request's fault (unknown words, a wrong image)
    /// is 400, anything else 500.
    pub fn model(e: mmvae_model::ModelError) -> Self {
        use mmvae_model::ModelError as M;
        match e {
            M::Invalid(_) | M::Data(_) => Self::bad(e.to_string()),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(serde_json::json!({ "error": self.msg }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

/// The model, locked (a panic in an earlier inference does not poison it
/// for the next: inference does not leave it half-changed).
pub(crate) fn lock(m: &Mutex<Loaded>) -> MutexGuard<'_, Loaded> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppState {
    /// The 400 for a model without an image and a text modality.
    pub fn require(&self) -> ApiResult<()> {
        match &self.missing {
            Some(m) => Err(ApiError::bad(m.clone())),
            None => Ok(()),
        }
    }

    /// Run `f` on a blocking thread with the model (it locks it with
    /// [`lock`] when it needs it), if the model has an image and a text
    /// modality and the queue has room; 503 at once when it has none.
    pub async fn infer<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Mutex<Loaded>) -> ApiResult<T> + Send + 'static,
    {
        self.require()?;
        let permit = self.queue.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "busy: {} request(s) already waiting for or running inference (--queue {}); try again shortly",
                    self.limits.queue, self.limits.queue
                ),
            )
        })?;
        let model = self.model.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&model)
        })
        .await
        .map_err(|e| ApiError::internal(format!("inference failed: {e}")))?
    }
}

/// What the image ↔ text endpoints need and the model lacks.
fn missing(m: &Loaded) -> Option<String> {
    let lacks: Vec<&str> = [(ModalityKind::Image, "image"), (ModalityKind::Text, "text")]
        .into_iter()
        .filter(|(k, _)| m.model.index_of_kind(*k).is_none())
        .map(|(_, w)| w)
        .collect();
    if lacks.is_empty() {
        return None;
    }
    Some(format!(
        "this model has no {} modality; this endpoint needs an image and a text modality",
        lacks.join(" or ")
    ))
}

fn check_args(a: &ServeArgs) -> Result<Limits> {
    let max_side = mmvae_data::imageio::MAX_IMAGE_SIDE;
    if a.max_body_bytes == 0 || a.max_text_chars == 0 || a.max_n == 0 || a.queue == 0 {
        bail!("--max-body-bytes, --max-text-chars, --max-n and --queue must be at least 1");
    }
    if !(1..=max_side).contains(&a.max_image_side) {
        bail!(
            "--max-image-side must be in 1..={max_side} (got {})",
            a.max_image_side
        );
    }
    Ok(Limits {
        max_body_bytes: a.max_body_bytes,
        max_image_side: a.max_image_side,
        max_text_chars: a.max_text_chars,
        max_n: a.max_n,
        queue: a.queue,
    })
}

pub fn serve(a: ServeArgs) -> Result<()> {
    let limits = check_args(&a)?;
    let m = infer::load(&a.checkpoint, Compute::Cpu)?;
    m.seed(a.seed);
    let missing = missing(&m);
    let image = ImageSpec {
        side: m.checkpoint.state.side,
        colours: m.checkpoint.state.colours,
        exact: m.checkpoint.config.data.dataset.is_labelled(),
    };
    let dataset = m.checkpoint.config.data.dataset.to_string();
    let m_dir = m.checkpoint.dir.clone();
    let info = serde_json::json!({
        "checkpoint": a.checkpoint.display().to_string(),
        "dataset": dataset,
        "modalities": m.checkpoint.config.modalities.iter().map(|x| &x.name).collect::<Vec<_>>(),
        "image": { "side": image.side, "channels": image.colours, "any_size": !image.exact },
        "text_to_image": if missing.is_none() { Some(m.text_to_image_source()) } else { None },
        "missing": missing,
        "limits": limits,
    });
    let state = Arc::new(AppState {
        model: Arc::new(Mutex::new(m)),
        queue: Arc::new(Semaphore::new(limits.queue)),
        dir: m_dir,
        limits,
        image,
        missing,
        info,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run(
        state,
        &a.host,
        a.port,
        &a.checkpoint.display().to_string(),
    ))
}

async fn run(state: Arc<AppState>, host: &str, port: u16, checkpoint: &str) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("listening on {host}:{port}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "note: listening on {}, not only this computer's loopback: whoever can reach it can use the model",
            addr.ip()
        );
    }
    println!("serving {checkpoint} on http://{addr}/ (Ctrl-C stops)");
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    let max = state.limits.max_body_bytes;
    Router::new()
        .route("/", get(page))
        .route("/api/info", get(api::info))
        .route("/api/generate", post(api::generate))
        .route("/api/caption", post(api::caption))
        .route("/api/check", post(api::check))
        .route("/api/reconstruct", post(api::reconstruct))
        .route("/api/sample", post(api::sample))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(max, declared_length))
        .layer(DefaultBodyLimit::max(max))
        .with_state(state)
}

/// The 413 answer to a body over `max` bytes.
pub(crate) fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {max} bytes (--max-body-bytes)"),
    )
}

/// Refuse a body whose declared length is over the limit before reading it.
async fn declared_length(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(max).into_response();
    }
    next.run(req).await
}

async fn page() -> Html<&'static str> {
    Html(include_str!("serve/page.html"))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {} (GET / and /api/info; POST the other /api/ endpoints)",
            req.method(),
            req.uri().path()
        ),
    )
}
