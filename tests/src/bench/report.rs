//! Medians with min–max over rounds, and the Markdown tables, cells and
//! notes they go into.

use serde_json::{json, Value};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summarize(values: &[f64]) -> Summary {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return Summary {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
    }
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    };
    Summary {
        median,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    }
}

/// The `p`-th percentile (0–100) by nearest rank; NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    /// `+12.3 (+11.9 to +13.0)`
    pub fn show_signed(&self, decimals: usize) -> String {
        format!(
            "{:+.d$} ({:+.d$} to {:+.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }

    /// `12.3 (11.9–13.0)`
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// A Markdown table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", headers.join(" | "));
    out.push_str(&format!("|{}\n", " --- |".repeat(headers.len())));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// The figure's notes as a list under its table.
pub fn push_notes(text: &mut String, mut notes: Vec<String>) {
    notes.dedup();
    for note in notes {
        let _ = writeln!(text, "- {note}");
    }
    text.push('\n');
}

/// A "vs native" cell: "–" when the native set was not measured (`--only`).
pub fn ratio_cell(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}×")
    } else {
        "–".into()
    }
}

/// A latency cell: "–" when the latency runs were skipped (`--cpu-only`).
pub fn latency(samples: &[f64]) -> String {
    if samples.is_empty() {
        "–".into()
    } else {
        summarize(samples).show(3)
    }
}

pub fn summary_json(s: Summary) -> Value {
    json!({"median": s.median, "min": s.min, "max": s.max})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(summarize(&[3.0, 1.0, 2.0]).median, 2.0);
        let s = summarize(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(summarize(&[]).median.is_nan());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 99.0), 3.0);
        assert_eq!(percentile(&[7.0], 0.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
