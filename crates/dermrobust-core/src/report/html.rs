//! A self-contained HTML report: sections of text, tables, inline SVG plots and embedded PNG
//! images (base64), so one file can be opened or mailed anywhere.

use std::path::Path;

use anyhow::Result;
use base64::Engine;

#[derive(Default)]
pub struct HtmlReport {
    title: String,
    body: String,
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl HtmlReport {
    pub fn new(title: &str) -> Self {
        HtmlReport { title: title.to_string(), body: String::new() }
    }

    pub fn heading(&mut self, text: &str) -> &mut Self {
        self.body.push_str(&format!("<h2>{}</h2>\n", escape(text)));
        self
    }

    pub fn paragraph(&mut self, text: &str) -> &mut Self {
        self.body.push_str(&format!("<p>{}</p>\n", escape(text)));
        self
    }

    /// A table; the first row is the header.
    pub fn table(&mut self, header: &[String], rows: &[Vec<String>]) -> &mut Self {
        self.body.push_str("<table>\n<tr>");
        for h in header {
            self.body.push_str(&format!("<th>{}</th>", escape(h)));
        }
        self.body.push_str("</tr>\n");
        for r in rows {
            self.body.push_str("<tr>");
            for c in r {
                self.body.push_str(&format!("<td>{}</td>", escape(c)));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table>\n");
        self
    }

    /// An SVG document produced by [`super::plots`], inlined.
    pub fn svg(&mut self, svg: &str, caption: &str) -> &mut Self {
        let svg = svg.trim_start_matches(|c| c != '<');
        let svg = if svg.starts_with("<?xml") { &svg[svg.find("?>").map(|i| i + 2).unwrap_or(0)..] } else { svg };
        self.body.push_str(&format!("<figure class=\"plot\">{svg}<figcaption>{}</figcaption></figure>\n", escape(caption)));
        self
    }

    /// A row of PNG images with captions.
    pub fn image_row(&mut self, images: &[(Vec<u8>, String)]) -> &mut Self {
        self.body.push_str("<div class=\"row\">");
        for (png, caption) in images {
            let b64 = base64::engine::general_purpose::STANDARD.encode(png);
            self.body.push_str(&format!(
                "<figure><img src=\"data:image/png;base64,{b64}\" width=\"128\" height=\"128\"><figcaption>{}</figcaption></figure>",
                escape(caption)
            ));
        }
        self.body.push_str("</div>\n");
        self
    }

    pub fn to_html(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\n\
             body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\n\
             table{{border-collapse:collapse;margin:1em 0}} td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}\n\
             th{{background:#eee}} figure{{display:inline-block;margin:6px}} figcaption{{font-size:12px;text-align:center;max-width:300px}} .plot figcaption{{max-width:820px;text-align:left}}\n\
             img{{image-rendering:pixelated}} .row{{display:flex;flex-wrap:wrap}}\n</style></head>\n<body>\n<h1>{t}</h1>\n{b}</body></html>\n",
            t = escape(&self.title),
            b = self.body
        )
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        super::atomic_write(path, self.to_html().as_bytes())
    }
}
