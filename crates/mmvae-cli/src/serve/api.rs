//! The JSON endpoints of `mmvae serve`.

use super::{lock, too_large, ApiError, ApiResult, AppState, ImageSpec};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use base64::Engine as _;
use mmvae_data::imageio::{self, Image};
use mmvae_model::eval::consistency::{self, Calibration, Score};
use mmvae_model::infer::Draw;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Body = Result<Bytes, BytesRejection>;

/// What the server serves: the checkpoint, its modalities, image size,
/// whether it is calibrated, and the limits.
pub async fn info(State(st): St) -> Json<Value> {
    let mut v = st.info.clone();
    v["calibrated"] = json!(consistency::calibration_path(&st.dir).is_file());
    Json(v)
}

/// The body, or the JSON error for one that could not be read (413 when
/// over the limit).
fn body_of(b: Body, st: &AppState) -> ApiResult<Bytes> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(st.limits.max_body_bytes)
        } else {
            ApiError::new(e.status(), e.body_text())
        }
    })
}

/// A JSON request; an empty body is `{}`.
fn parse<T: DeserializeOwned>(b: &[u8]) -> ApiResult<T> {
    let b: &[u8] = if b.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        b
    };
    serde_json::from_slice(b).map_err(|e| {
        let what = if e.is_data() {
            "invalid request"
        } else {
            "malformed JSON body"
        };
        ApiError::bad(format!("{what}: {e}"))
    })
}

/// `n`, defaulting to 8 (or the limit if lower), within 1..=--max-n.
fn check_n(n: Option<usize>, st: &AppState) -> ApiResult<usize> {
    let max = st.limits.max_n;
    let n = n.unwrap_or(8.min(max));
    if !(1..=max).contains(&n) {
        return Err(ApiError::bad(format!(
            "n must be in 1..={max} (got {n}; --max-n)"
        )));
    }
    Ok(n)
}

fn check_text(text: &str, st: &AppState) -> ApiResult<()> {
    let max = st.limits.max_text_chars;
    if text.trim().is_empty() {
        return Err(ApiError::bad("text is empty"));
    }
    let n = text.chars().count();
    if n > max {
        return Err(ApiError::bad(format!(
            "text is {n} characters, more than the limit of {max} (--max-text-chars)"
        )));
    }
    Ok(())
}

fn check_temperature(t: Option<f32>) -> ApiResult<()> {
    match t {
        Some(t) if !(t.is_finite() && t > 0.0) => Err(ApiError::bad(format!(
            "temperature must be a number > 0 (got {t})"
        ))),
        _ => Ok(()),
    }
}

fn data_uri(img: &Image) -> String {
    let png = imageio::encode_png(img);
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn data_uris(imgs: &[Image]) -> Vec<String> {
    imgs.iter().map(data_uri).collect()
}

/// The uploaded image's bytes from a body sent as `image/*` (or
/// `application/octet-stream`, or with no Content-Type).
fn image_body(headers: &HeaderMap, b: Body, st: &AppState) -> ApiResult<Bytes> {
    if let Some(t) = headers.get(header::CONTENT_TYPE) {
        let t = t.to_str().unwrap_or("").to_ascii_lowercase();
        if !(t.starts_with("image/") || t.starts_with("application/octet-stream")) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "send the image's bytes as the body, with Content-Type image/png or image/jpeg (got {t})"
                ),
            ));
        }
    }
    let b = body_of(b, st)?;
    if b.is_empty() {
        return Err(ApiError::bad("the body is empty: send a PNG or JPEG image"));
    }
    Ok(b)
}

/// Decode an uploaded image for the model (as `Loaded::read_image` reads a
/// file), refusing from its header alone one with a side over `max_side`
/// or, for a model that wants exactly its own size, of another size.
fn read_image(spec: ImageSpec, max_side: u32, bytes: &[u8]) -> ApiResult<Image> {
    let not_image = |e: &dyn std::fmt::Display| {
        ApiError::bad(format!("cannot read the image (PNG or JPEG expected): {e}"))
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| not_image(&e))?;
    reader.limits(limits);
    let (w, h) = match reader.into_dimensions() {
        Ok(d) => d,
        Err(image::ImageError::Limits(_)) => {
            return Err(ApiError::bad(format!(
                "the image is larger than {max_side} pixels on a side (--max-image-side)"
            )))
        }
        Err(e) => return Err(not_image(&e)),
    };
    let side = spec.side;
    if spec.exact && (w as usize, h as usize) != (side, side) {
        return Err(ApiError::bad(format!(
            "the image is {w}x{h}, the model expects {side}x{side}"
        )));
    }
    let at = Path::new("the uploaded image");
    let colours = spec.colours;
    let img = if spec.exact {
        imageio::image_from_bytes(bytes, at, colours, side, side)
    } else {
        imageio::fitted_from_bytes(bytes, at, colours, side)
    };
    img.map_err(|e| ApiError::bad(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateReq {
    text: String,
    n: Option<usize>,
    seed: Option<u64>,
    /// The posterior mean instead of samples.
    #[serde(default)]
    mean: bool,
}

/// Text → images: `{"text", "n"}` → `{"images": [data URIs]}`.
pub async fn generate(State(st): St, b: Body) -> ApiResult<Json<Value>> {
    let r: GenerateReq = parse(&body_of(b, &st)?)?;
    let n = check_n(r.n, &st)?;
    check_text(&r.text, &st)?;
    let how = if r.mean { Draw::Mean } else { Draw::Sample };
    let text = r.text.clone();
    let images = st
        .infer(move |m| {
            let imgs = {
                let m = lock(m);
                if let Some(s) = r.seed {
                    m.seed(s);
                }
                m.generate(&text, n, how).map_err(ApiError::model)?
            };
            Ok(data_uris(&imgs))
        })
        .await?;
    Ok(Json(json!({ "text": r.text, "n": n, "images": images })))
}

/// Image → text: the image's bytes → `{"caption"}`.
pub async fn caption(State(st): St, headers: HeaderMap, b: Body) -> ApiResult<Json<Value>> {
    let bytes = image_body(&headers, b, &st)?;
    let (spec, max_side) = (st.image, st.limits.max_image_side);
    let caption = st
        .infer(move |m| {
            let img = read_image(spec, max_side, &bytes)?;
            let m = lock(m);
            let mut c = m
                .caption(&[img], Draw::Sample, None)
                .map_err(ApiError::model)?;
            c.pop()
                .ok_or_else(|| ApiError::internal("the model returned no caption"))
        })
        .await?;
    Ok(Json(json!({ "caption": caption })))
}

/// Image → latent → (image, caption): the image's bytes → `{"image",
/// "caption", "input"}` (`input`: the image as the model read it).
pub async fn reconstruct(State(st): St, headers: HeaderMap, b: Body) -> ApiResult<Json<Value>> {
    let bytes = image_body(&headers, b, &st)?;
    let (spec, max_side) = (st.image, st.limits.max_image_side);
    st.infer(move |m| {
        let img = read_image(spec, max_side, &bytes)?;
        let (recon, caps) = lock(m)
            .reconstruct(std::slice::from_ref(&img), Draw::Sample)
            .map_err(ApiError::model)?;
        match (recon.first(), caps.first()) {
            (Some(r), Some(c)) => Ok(Json(json!({
                "image": data_uri(r),
                "caption": c,
                "input": data_uri(&img),
            }))),
            _ => Err(ApiError::internal("the model returned no reconstruction")),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleReq {
    n: Option<usize>,
    /// Sample words at this temperature instead of greedy decoding.
    temperature: Option<f32>,
    seed: Option<u64>,
}

/// Joint samples from the prior: `{"n"}` → `{"images", "captions"}`.
pub async fn sample(State(st): St, b: Body) -> ApiResult<Json<Value>> {
    let r: SampleReq = parse(&body_of(b, &st)?)?;
    let n = check_n(r.n, &st)?;
    check_temperature(r.temperature)?;
    st.infer(move |m| {
        let (imgs, caps) = {
            let m = lock(m);
            if let Some(s) = r.seed {
                m.seed(s);
            }
            m.sample(n, r.temperature)
        };
        Ok(Json(
            json!({ "images": data_uris(&imgs), "captions": caps }),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckReq {
    /// Base64 PNG or JPEG (a `data:` URI too).
    image: String,
    text: String,
    /// overlap, text-ratio or image-ratio (default: the calibrated one).
    score: Option<String>,
}

fn multipart_error(e: axum::extract::multipart::MultipartError, st: &AppState) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(st.limits.max_body_bytes)
    } else {
        ApiError::new(e.status(), e.body_text())
    }
}

/// (image bytes, text, score) of a `multipart/form-data` check request.
async fn check_form(req: Request, st: &AppState) -> ApiResult<(Vec<u8>, String, Option<String>)> {
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let (mut image, mut text, mut score) = (None, None, None);
    while let Some(f) = mp.next_field().await.map_err(|e| multipart_error(e, st))? {
        let name = f.name().unwrap_or("").to_string();
        match name.as_str() {
            "image" => {
                image = Some(
                    f.bytes()
                        .await
                        .map_err(|e| multipart_error(e, st))?
                        .to_vec(),
                )
            }
            "text" => text = Some(f.text().await.map_err(|e| multipart_error(e, st))?),
            "score" => score = Some(f.text().await.map_err(|e| multipart_error(e, st))?),
            other => {
                return Err(ApiError::bad(format!(
                    "unknown form field `{other}` (expected image, text and optionally score)"
                )))
            }
        }
    }
    match (image, text) {
        (Some(i), Some(t)) => Ok((i, t, score)),
        _ => Err(ApiError::bad(
            "the form needs an `image` file and a `text` field",
        )),
    }
}

/// (image bytes, text, score) of a JSON check request.
async fn check_json(req: Request, st: &AppState) -> ApiResult<(Vec<u8>, String, Option<String>)> {
    let r: CheckReq = parse(&body_of(Bytes::from_request(req, &()).await, st)?)?;
    let b64 = match r.image.strip_prefix("data:") {
        Some(uri) => uri.split_once(',').map_or("", |(_, d)| d),
        None => r.image.as_str(),
    };
    let b64: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let image = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| ApiError::bad(format!("`image` is not base64: {e}")))?;
    Ok((image, r.text, r.score))
}

/// Does a caption match an image? Multipart (`image` file, `text`) or JSON
/// (`{"image": base64, "text"}`) → `{"score", "threshold", "match"}`, by
/// the checkpoint's calibration as `mmvae check` decides.
pub async fn check(State(st): St, req: Request) -> ApiResult<Json<Value>> {
    st.require()?;
    if !consistency::calibration_path(&st.dir).is_file() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{} has no consistency calibration; run `mmvae calibrate --checkpoint {}` first",
                st.dir.display(),
                st.dir.display()
            ),
        ));
    }
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("multipart/form-data"));
    let (bytes, text, score) = if multipart {
        check_form(req, &st).await?
    } else {
        check_json(req, &st).await?
    };
    check_text(&text, &st)?;
    let score = score
        .map(|s| Score::parse(&s))
        .transpose()
        .map_err(ApiError::model)?;
    if bytes.is_empty() {
        return Err(ApiError::bad("the image is empty"));
    }
    let (spec, max_side) = (st.image, st.limits.max_image_side);
    st.infer(move |m| {
        let img = read_image(spec, max_side, &bytes)?;
        let m = lock(m);
        let cal = Calibration::load(&m).map_err(|e| ApiError::internal(e.to_string()))?;
        let score = score.unwrap_or(cal.default_score);
        let k = Score::ALL.iter().position(|&s| s == score).unwrap_or(0);
        let threshold = *cal
            .thresholds
            .get(&score)
            .ok_or_else(|| ApiError::internal(format!("no threshold for {}", score.name())))?;
        // Unknown words are an error here, not silently <unk>.
        m.text_batch(std::slice::from_ref(&text), true)
            .map_err(ApiError::model)?;
        let images = m
            .image_batch(std::slice::from_ref(&img))
            .map_err(ApiError::model)?;
        let scores = consistency::score_pairs(&m, images, &[text], &[(0, 0)], cal.options)
            .map_err(ApiError::model)?;
        let r = scores
            .first()
            .copied()
            .ok_or_else(|| ApiError::internal("no score"))?;
        let all: serde_json::Map<String, Value> = Score::ALL
            .iter()
            .zip(r)
            .map(|(s, v)| (s.name().to_string(), json!(v)))
            .collect();
        Ok(Json(json!({
            "score": r[k],
            "threshold": threshold,
            "match": r[k] >= threshold,
            "score_name": score.name(),
            "scores": all,
        })))
    })
    .await
}
