//! A self-contained HTML page: inline CSS, images as `data:` URIs, charts as
//! inline SVG. No scripts and no external resources, so the file can be
//! mailed or archived and still shows everything.

use base64::Engine as _;

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `<img>` showing PNG bytes inline.
pub fn png_img(png: &[u8], alt: &str, class: &str) -> String {
    format!(
        "<img class=\"{}\" alt=\"{}\" src=\"data:image/png;base64,{}\">",
        escape(class),
        escape(alt),
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// A table with a header row; cells are escaped text.
pub fn table(id: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("<table id=\"{}\"><thead><tr>", escape(id));
    for h in header {
        s.push_str(&format!("<th>{}</th>", escape(h)));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            s.push_str(&format!("<td>{}</td>", escape(c)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: middle; }
th { background: #f3f3f3; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
img.grid { image-rendering: pixelated; }
img.thumb { image-rendering: pixelated; width: 56px; height: 56px; }
.ok { color: #1a7f37; font-weight: 600; } .no { color: #b42318; font-weight: 600; }
.note { color: #555; font-size: .9em; }
nav a { margin-right: 1em; }
";

/// A page of sections.
pub struct Page {
    title: String,
    sections: Vec<(String, String, String)>,
}

impl Page {
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            sections: Vec::new(),
        }
    }

    /// Add a section; `body` is HTML (escape text that goes into it).
    pub fn section(&mut self, id: &str, heading: &str, body: String) {
        self.sections
            .push((id.to_string(), heading.to_string(), body));
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        s.push_str(&format!("<title>{}</title>", escape(&self.title)));
        s.push_str(&format!("<style>{STYLE}</style></head><body>\n"));
        s.push_str(&format!(
            "<h1 id=\"title\">{}</h1>\n<nav>",
            escape(&self.title)
        ));
        for (id, h, _) in &self.sections {
            s.push_str(&format!("<a href=\"#{}\">{}</a>", escape(id), escape(h)));
        }
        s.push_str("</nav>\n");
        for (id, h, body) in &self.sections {
            s.push_str(&format!(
                "<section id=\"{}\"><h2>{}</h2>\n{}\n</section>\n",
                escape(id),
                escape(h),
                body
            ));
        }
        s.push_str("</body></html>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_sections_are_linked() {
        assert_eq!(escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
        let mut p = Page::new("run <1>");
        p.section(
            "metrics",
            "Metrics",
            table("m", &["name", "value"], &[vec!["<x>".into(), "1".into()]]),
        );
        let html = p.render();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>run &lt;1&gt;</title>"));
        assert!(html.contains("<a href=\"#metrics\">Metrics</a>"));
        assert!(html.contains("<section id=\"metrics\">"));
        assert!(html.contains("<td>&lt;x&gt;</td>"));
        assert!(!html.contains("<x>"));
    }

    #[test]
    fn images_are_inline() {
        let img = png_img(&[0x89, b'P', b'N', b'G'], "a \"grid\"", "grid");
        assert_eq!(
            img,
            "<img class=\"grid\" alt=\"a &quot;grid&quot;\" src=\"data:image/png;base64,iVBORw==\">"
        );
    }
}
