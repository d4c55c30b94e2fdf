//! Progress bars: one look for every long job of the CLI.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps: `{what} [=====>    ] pos/len elapsed (ETA …) message`, `unit`
/// after the counts (frames, plates, epochs).
pub fn bar(len: u64, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{what} [{{bar:40}}] {{pos}}/{{len}} {unit} {{elapsed}} (ETA {{eta}}) {{msg}}");
    // The template is fixed text: it parses; the default style is the fallback anyway.
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Says which unfinished files of an interrupted earlier run a job removed before it
/// wrote its own (nothing when there were none).
pub fn say_interrupted(removed: &[std::path::PathBuf]) {
    if removed.is_empty() {
        return;
    }
    let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
    eprintln!(
        "removed {} unfinished file{} an interrupted run left: {}",
        removed.len(),
        if removed.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
}
