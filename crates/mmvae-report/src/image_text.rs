//! The report's image–caption sections: text → image grids per class,
//! image → text examples, consistency examples (matches and near-misses),
//! retrieval examples and a latent interpolation.

use mmvae_data::captions::CaptionSet;
use mmvae_data::imageio::Image;
use mmvae_data::ImageLabelSet;
use mmvae_model::eval::consistency::{self, PairScores, Score, ScoreOptions};
use mmvae_model::eval::retrieval::log_overlap_matrix;
use mmvae_model::infer::{Draw, Endpoint, Loaded};
use mmvae_model::io::batch::HostBatch;
use mmvae_model::io::data::TEST_STREAM;

use crate::error::Result;
use crate::html::{escape, png_img};
use crate::report::{grid_png, png, source, spread, test_image, ReportOptions, Saved};

pub(crate) fn text_to_image_section(
    m: &Loaded,
    test: &ImageLabelSet,
    opts: &ReportOptions,
) -> Result<String> {
    let kind = m.checkpoint.config.data.dataset;
    let captioner = m.captioner();
    let mut rows = String::new();
    // One row per class, or, for data with its own captions, per test
    // caption (spread over the split).
    let captions: Vec<String> = match &test.captions {
        Some(own) => spread(own.len(), opts.max_classes)
            .into_iter()
            .map(|i| own[i].clone())
            .collect(),
        None => (0..kind.num_classes().min(opts.max_classes))
            .map(|c| captioner.render(CaptionSet::Train, 0, c))
            .collect(),
    };
    let classes = captions.len();
    for caption in captions {
        let imgs = m.generate(&caption, opts.per_class.max(1), Draw::Sample)?;
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&caption),
            png_img(&grid_png(&imgs, opts.per_class.max(1))?, &caption, "grid")
        ));
    }
    let more = if test.captions.is_none() && kind.num_classes() > classes {
        format!(
            "<p class=\"note\">The first {classes} of {} classes.</p>",
            kind.num_classes()
        )
    } else {
        String::new()
    };
    Ok(format!(
        "<p>{} images per caption, z from the {}.</p>{more}<table id=\"t2i-table\"><thead><tr><th>caption</th><th>generated images</th></tr></thead><tbody>{rows}</tbody></table>",
        opts.per_class,
        escape(&m.text_to_image_source())
    ))
}

pub(crate) fn image_to_text_section(
    m: &Loaded,
    test: &ImageLabelSet,
    opts: &ReportOptions,
) -> Result<String> {
    let captioner = m.captioner();
    let kind = test.kind;
    let idx = spread(test.len(), opts.examples);
    let imgs: Vec<Image> = idx.iter().map(|&i| test_image(test, i)).collect();
    let caps = m.caption(&imgs, Draw::Mean, None)?;
    let mut rows = String::new();
    let mut right = 0;
    if let Some(own) = &test.captions {
        for ((&i, img), cap) in idx.iter().zip(&imgs).zip(&caps) {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                png_img(&png(img), "test image", "thumb"),
                escape(cap),
                escape(&own[i]),
            ));
        }
        return Ok(format!(
            "<p>Greedy captions of {} test images from the mean of q(z|image), beside each image's own caption.</p><table id=\"i2t-table\"><thead><tr><th>image</th><th>generated caption</th><th>its caption</th></tr></thead><tbody>{rows}</tbody></table>",
            idx.len()
        ));
    }
    for ((&i, img), cap) in idx.iter().zip(&imgs).zip(&caps) {
        let label = test.labels[i] as usize;
        let truth: Vec<Option<usize>> = kind.attributes(label).into_iter().map(Some).collect();
        let ok = captioner.slots_of(cap) == truth;
        right += ok as usize;
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            png_img(&png(img), "test image", "thumb"),
            escape(cap),
            escape(&captioner.render(CaptionSet::Train, 0, label)),
            if ok { "ok" } else { "no" },
            if ok { "right" } else { "wrong" }
        ));
    }
    Ok(format!(
        "<p>Greedy captions of {} test images from the mean of q(z|image): {right} right.</p><table id=\"i2t-table\"><thead><tr><th>image</th><th>generated caption</th><th>true class</th><th></th></tr></thead><tbody>{rows}</tbody></table>",
        idx.len()
    ))
}

/// The positives that score lowest and the one-attribute mismatches that
/// score highest by score `k`, `half` of each: where the decision is
/// closest to going wrong. Each row: (a true pair, its index, its score).
fn closest_to_the_line(
    pos: &[PairScores],
    hard: &[PairScores],
    k: usize,
    half: usize,
) -> Vec<(bool, usize, f32)> {
    let order = |v: &[PairScores], asc: bool| {
        let mut o: Vec<usize> = (0..v.len()).collect();
        o.sort_by(|&a, &b| {
            let c = v[a][k].total_cmp(&v[b][k]);
            if asc {
                c
            } else {
                c.reverse()
            }
        });
        o
    };
    let mut rows = Vec::new();
    for i in order(pos, true).into_iter().take(half) {
        rows.push((true, i, pos[i][k]));
    }
    for i in order(hard, false).into_iter().take(half) {
        rows.push((false, i, hard[i][k]));
    }
    rows
}

/// The CSS class and words of a decision (`None`: no calibration) on a
/// pair that matches or not.
fn verdict(decision: Option<bool>, is_match: bool) -> (&'static str, &'static str) {
    match decision {
        Some(d) if d == is_match => (
            "ok",
            if d {
                "match (right)"
            } else {
                "mismatch (right)"
            },
        ),
        Some(d) => (
            "no",
            if d {
                "match (wrong)"
            } else {
                "mismatch (wrong)"
            },
        ),
        None => ("", "no calibration"),
    }
}

pub(crate) fn consistency_section(
    m: &Loaded,
    test: &ImageLabelSet,
    saved: &Saved,
    opts: &ReportOptions,
) -> Result<String> {
    let n = (opts.examples * 4).min(test.len());
    // The suite takes the first n items; spread them over the split first.
    let mut sub = test.clone();
    let idx = spread(test.len(), n);
    sub.images = idx.iter().flat_map(|&i| test.image(i).to_vec()).collect();
    sub.labels = idx.iter().map(|&i| test.labels[i]).collect();
    let suite = consistency::pair_suite(m, &sub, n, TEST_STREAM, opts.seed)?;
    let score_opts = saved
        .calibration
        .as_ref()
        .map_or(ScoreOptions::default(), |c| c.options);
    let score = saved
        .calibration
        .as_ref()
        .map_or(Score::TextRatio, |c| c.default_score);
    let threshold = saved
        .calibration
        .as_ref()
        .and_then(|c| c.thresholds.get(&score).copied());
    let k = Score::ALL.iter().position(|s| *s == score).unwrap_or(0);
    // One call scores both kinds, so the prior draws are decoded once.
    let pairs: Vec<(usize, usize)> = suite.positives.iter().chain(&suite.hard).copied().collect();
    let mut pos =
        consistency::score_pairs(m, suite.images.clone(), &suite.captions, &pairs, score_opts)?;
    let hard = pos.split_off(suite.positives.len());
    let rows = closest_to_the_line(&pos, &hard, k, (opts.examples / 2).max(1));
    let images = suite.images.clone();
    let [_, px] = images.dims();
    let host = mmvae_model::host::floats(images);
    let mut html = String::new();
    for (is_match, i, v) in rows {
        let img = Image {
            channels: m.colours(),
            width: m.side(),
            height: m.side(),
            pixels: host[i * px..(i + 1) * px].to_vec(),
        };
        let (_, cap_idx) = if is_match {
            suite.positives[i]
        } else {
            suite.hard[i]
        };
        let (class, verdict) = verdict(threshold.map(|t| v >= t), is_match);
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{v:.3}</td><td class=\"{class}\">{verdict}</td></tr>",
            png_img(&png(&img), "image", "thumb"),
            escape(&suite.captions[cap_idx]),
            if is_match { "true caption" } else { "one attribute changed" },
        ));
    }
    let thr = threshold.map_or("none (run mmvae calibrate)".to_string(), |t| {
        format!("{t:.3}")
    });
    Ok(format!(
        "<p>Score <b>{}</b>, threshold {}. Of {n} test images: the true captions that score lowest and the one-attribute changes that score highest.</p><table id=\"consistency-examples\"><thead><tr><th>image</th><th>caption</th><th>pair</th><th>score</th><th>decision</th></tr></thead><tbody>{html}</tbody></table>",
        score.name(),
        escape(&thr)
    ))
}

pub(crate) fn retrieval_section(
    m: &Loaded,
    test: &ImageLabelSet,
    opts: &ReportOptions,
) -> Result<String> {
    let idx = spread(test.len(), opts.retrieval_pool.max(2));
    let hb = HostBatch::gather(
        &m.model.layout(),
        test,
        &idx,
        source(m),
        &m.checkpoint.vocab,
    );
    let captions = hb.captions.clone();
    let b = hb.to_device(&m.device);
    let qx = m.model.encode_image(b.images());
    let qy = m.model.encode_caption(&b);
    let sim = log_overlap_matrix(&qy, &qx); // [captions, images]
    let top = 5.min(idx.len());
    let queries = spread(idx.len(), (opts.examples / 2).max(1));
    let mut rows = String::new();
    for &q in &queries {
        let mut order: Vec<usize> = (0..idx.len()).collect();
        order.sort_by(|&a, &b| sim[q][b].total_cmp(&sim[q][a]));
        let imgs: Vec<Image> = order[..top]
            .iter()
            .map(|&j| test_image(test, idx[j]))
            .collect();
        let hits = if test.kind.is_labelled() {
            let n = order[..top]
                .iter()
                .filter(|&&j| test.labels[idx[j]] == test.labels[idx[q]])
                .count();
            format!("{n} of {top}")
        } else {
            "—".into()
        };
        let rank = order.iter().position(|&j| j == q).map_or(0, |r| r + 1);
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{rank}</td><td>{hits}</td></tr>",
            escape(&captions[q]),
            png_img(&grid_png(&imgs, top)?, "top images", "grid"),
        ));
    }
    Ok(format!(
        "<p>Caption queries against {} test images, ranked by the overlap of q(z|caption) and q(z|image).</p><table id=\"retrieval-examples\"><thead><tr><th>query caption</th><th>top {top} images</th><th>rank of its own image</th><th>same class in top {top}</th></tr></thead><tbody>{rows}</tbody></table>",
        idx.len()
    ))
}

pub(crate) fn interpolation_section(m: &Loaded, test: &ImageLabelSet) -> Result<String> {
    // Two test items of different classes (any two without labels).
    let a = 0;
    let other = |i: usize| !test.kind.is_labelled() || test.labels[i] != test.labels[a];
    let Some(b) = (1..test.len()).find(|&i| other(i)) else {
        return Ok("<p class=\"note\">The test split has one class.</p>".into());
    };
    let steps = 8;
    let (imgs, caps) = m.interpolate(
        &Endpoint::Image(test_image(test, a)),
        &Endpoint::Image(test_image(test, b)),
        steps,
    )?;
    let list: Vec<String> = caps
        .iter()
        .map(|c| format!("<li>{}</li>", escape(c)))
        .collect();
    Ok(format!(
        "<p>Decoded from {steps} evenly spaced points between the posterior means of two test images (left and right ends).</p><div id=\"interpolation\">{}</div><ol>{}</ol>",
        png_img(&grid_png(&imgs, steps)?, "interpolation", "grid"),
        list.join("")
    ))
}
