//! Progress bars for the operations a person waits on at a terminal
//! (export, erasure, audit ingest). indicatif draws them on stderr only
//! when stderr is a terminal: `serve`, scripts and tests see nothing.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` steps, labelled `what` (e.g. "erasing").
pub fn bar(what: &str, len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A counter for work of unknown length (e.g. "ingested").
pub fn counter(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let template = format!("{{spinner}} {what} {{pos}} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}
