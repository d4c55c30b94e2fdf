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
