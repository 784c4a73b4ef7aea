//! How trainer commands talk: human-readable text on stdout, progress bars and a one-line
//! summary on stderr, machine-readable JSON on request.
//!
//! - Progress bars (indicatif) draw on stderr only when it is a terminal, never with `--quiet`.
//!   Log lines are written through [`LogWriter`], which clears the bars while it writes.
//! - `--json FILE` writes the command's figures as one JSON document to FILE (atomically); the
//!   text stays on stdout. `--json` or `--json -` prints the document on stdout instead, and the
//!   text moves to stderr, so stdout parses as JSON.
//! - The summary line goes to stderr unless `--quiet`.

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

static QUIET: AtomicBool = AtomicBool::new(false);
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Every progress bar of the process; drawn on stderr when it is a terminal.
fn bars() -> &'static MultiProgress {
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Turns every later progress display off (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// True after `--quiet`.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A progress bar of `len` steps labelled `label`: hidden with `--quiet` or when stderr is not
/// a terminal.
pub fn progress_bar(len: u64, label: &str) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bars().add(bar)
}

/// A spinner for work without a known length; same visibility rules as [`progress_bar`].
pub fn spinner(label: &str) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} {spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label.to_string());
    let bar = bars().add(bar);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A writer for log lines (stderr) that hides the progress bars while it writes.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

/// Where one command's output goes.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// `--json`: a file, or `-` for stdout.
    pub json: Option<PathBuf>,
    /// `--quiet`.
    pub quiet: bool,
    /// A step of another command (`refresh` runs `pull` and `distill`): its text goes to
    /// stderr (none with `--quiet`), and it prints no summary and writes no JSON.
    pub nested: bool,
}

impl Output {
    /// Output for `--json` and `--quiet`; also sets the process-wide progress visibility.
    pub fn new(json: Option<PathBuf>, quiet: bool) -> Output {
        set_quiet(quiet);
        Output {
            json,
            quiet,
            nested: false,
        }
    }

    /// The output of a step that this command runs: text on stderr, no summary, no JSON.
    pub fn nested(&self) -> Output {
        Output {
            json: None,
            quiet: self.quiet,
            nested: true,
        }
    }

    /// True when the JSON document takes stdout (`--json` or `--json -`).
    pub fn json_on_stdout(&self) -> bool {
        self.json.as_ref().is_some_and(|p| p.as_os_str() == "-")
    }

    /// One line of human-readable text: stdout, or stderr when the JSON takes stdout.
    pub fn say(&self, text: impl Display) {
        let text = text.to_string();
        let text = text.strip_suffix('\n').unwrap_or(&text);
        if self.nested {
            if !self.quiet {
                bars().suspend(|| eprintln!("{text}"));
            }
        } else if self.json_on_stdout() {
            bars().suspend(|| eprintln!("{text}"));
        } else {
            bars().suspend(|| println!("{text}"));
        }
    }

    /// The one-line summary of a command, on stderr (not with `--quiet`).
    pub fn summary(&self, text: impl Display) {
        if !self.quiet && !self.nested {
            bars().suspend(|| eprintln!("{text}"));
        }
    }

    /// Writes the command's figures as JSON where `--json` says; nothing without it.
    pub fn json(&self, value: &impl Serialize) -> anyhow::Result<()> {
        let Some(path) = self.json.as_ref().filter(|_| !self.nested) else {
            return Ok(());
        };
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        if self.json_on_stdout() {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        } else {
            rankdistill_core::atomic::write_atomic(path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// Seconds with a precision that suits their size ("0.42s", "12.3s", "1m 05s").
pub fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let total = s.round() as u64;
        format!("{}m {:02}s", total / 60, total % 60)
    }
}

/// What a failed command prints: `Error: ` and the message, then its causes, as anyhow's
/// `Debug` does, but never a backtrace (the user fixes the input; a backtrace helps nobody).
pub fn error_report(error: &anyhow::Error) -> String {
    let mut out = format!("Error: {error}\n");
    let causes: Vec<String> = error.chain().skip(1).map(|c| c.to_string()).collect();
    if !causes.is_empty() {
        out.push_str("\nCaused by:\n");
        for (i, cause) in causes.iter().enumerate() {
            let cause = cause.replace('\n', "\n       ");
            if causes.len() == 1 {
                out.push_str(&format!("    {cause}\n"));
            } else {
                out.push_str(&format!("    {i}: {cause}\n"));
            }
        }
    }
    out
}

/// Formats a count with thousands separators (1613 -> "1,613").
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(seconds(0.4213), "0.42s");
        assert_eq!(seconds(12.34), "12.3s");
        assert_eq!(seconds(65.2), "1m 05s");
        assert_eq!(seconds(119.7), "2m 00s");
    }

    #[test]
    fn json_goes_to_a_file_atomically_and_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        Output::default()
            .json(&serde_json::json!({"a": 1}))
            .unwrap();
        assert!(!path.exists());
        let out = Output {
            json: Some(path.clone()),
            quiet: true,
            nested: false,
        };
        assert!(!out.json_on_stdout());
        out.json(&serde_json::json!({"a": 1})).unwrap();
        let parsed: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(parsed["a"], 1);
        assert!(
            Output {
                json: Some("-".into()),
                quiet: false,
                nested: false,
            }
            .json_on_stdout()
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(943), "943");
        assert_eq!(thousands(1613), "1,613");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn error_reports_carry_the_causes_and_no_backtrace() {
        let e = anyhow::anyhow!("root cause")
            .context("middle")
            .context("cannot load the prepared dataset");
        let report = error_report(&e);
        assert_eq!(
            report,
            "Error: cannot load the prepared dataset\n\nCaused by:\n    0: middle\n    1: root cause\n"
        );
        let report = error_report(&anyhow::anyhow!("alone").context("top"));
        assert_eq!(report, "Error: top\n\nCaused by:\n    alone\n");
        assert_eq!(error_report(&anyhow::anyhow!("plain")), "Error: plain\n");
    }
}
