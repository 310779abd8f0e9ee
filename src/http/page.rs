//! The page: `page/index.html` with its style and script put in, served live at `/` (it
//! polls the JSON API) or written with its data inline as a self-contained report
//! (`replay --report`). The files are embedded in the binary; no network at view time.
//! `page/README.md` documents the page, its data contract and its DOM hooks.

use serde::Serialize;

const INDEX: &str = include_str!("page/index.html");
const STYLE: &str = include_str!("page/style.css");
const SCRIPT: &str = include_str!("page/app.js");

/// The page with its style and script inline, and `data` (a `<script>` element or nothing)
/// where `<!--DATA-->` stands. The data goes in last, so nothing in it is ever taken for a
/// placeholder.
fn assemble(data: &str) -> String {
    INDEX
        .replacen("<!--STYLE-->", &format!("<style>\n{STYLE}</style>"), 1)
        .replacen("<!--SCRIPT-->", &format!("<script>\n{SCRIPT}</script>"), 1)
        .replacen("<!--DATA-->", data, 1)
}

/// The live page: it asks `api/v1/…` relative to its own URL.
pub(crate) fn live() -> String {
    assemble("")
}

/// A self-contained report holding `data` (see `page/README.md`, "Report data").
pub fn report(data: &impl Serialize) -> serde_json::Result<String> {
    // Every `<` as `\u003c`: still the same JSON, and no string in the data (a dead
    // letter's reason, say) can close the element or open a comment.
    let json = serde_json::to_string(data)?.replace('<', "\\u003c");
    Ok(assemble(&format!(
        "<script id=\"feedback-loop-data\" type=\"application/json\">{json}</script>"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_cannot_break_the_assembly() {
        for (name, text) in [("style.css", STYLE), ("app.js", SCRIPT)] {
            for forbidden in [
                "<!--STYLE-->",
                "<!--SCRIPT-->",
                "<!--DATA-->",
                "</style",
                "</script",
            ] {
                assert!(!text.contains(forbidden), "{name} contains {forbidden}");
            }
        }
        for placeholder in ["<!--STYLE-->", "<!--SCRIPT-->", "<!--DATA-->"] {
            assert_eq!(INDEX.matches(placeholder).count(), 1, "{placeholder}");
        }
        let page = live();
        assert!(!page.contains("<!--STYLE-->") && !page.contains("<!--SCRIPT-->"));
        assert!(!page.contains("<script id=\"feedback-loop-data\""));
    }

    #[test]
    fn report_data_cannot_close_its_element() {
        let hostile = serde_json::json!({"reason": "</script><script>alert(1)</script><!--"});
        let page = report(&hostile).unwrap();
        let start = page.find("id=\"feedback-loop-data\"").unwrap();
        let end = start + page[start..].find("</script>").unwrap();
        let element = &page[start..end];
        let json = &element[element.find('>').unwrap() + 1..];
        assert!(!json.contains('<'));
        let back: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, hostile);
    }
}
