//! Summaries of repeated measurements, and the table they are printed in.

/// Median and spread of repeated measurements of one figure.
#[derive(Debug, Clone)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Summary {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Summary {
            median: percentile(&v, 0.5)?,
            min: *v.first()?,
            max: *v.last()?,
            runs: v.len(),
        })
    }
}

/// The `p` quantile (0..=1) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sorts values for [`percentile`].
pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Prints a section's heading, what it measures, and its table's header.
pub fn section(title: &str, about: &str, columns: &[&str]) {
    println!("\n## {title}\n\n{about}\n");
    println!("| {} |", columns.join(" | "));
    println!("|{}", "---|".repeat(columns.len()));
}

/// Prints one table row.
pub fn cells(cells: &[String]) {
    println!("| {} |", cells.join(" | "));
}

/// The columns of a repeated figure: [`summary_cells`] fills them.
pub const SUMMARY: &[&str] = &["figure", "median", "min", "max", "runs", "note"];

/// A figure measured several times, in `unit`, with `digits` decimals.
pub fn summary_cells(figure: &str, unit: &str, digits: usize, s: Option<&Summary>, note: &str) {
    match s {
        Some(s) => cells(&[
            figure.into(),
            format!("{:.digits$} {unit}", s.median),
            format!("{:.digits$}", s.min),
            format!("{:.digits$}", s.max),
            s.runs.to_string(),
            note.into(),
        ]),
        None => cells(&[
            figure.into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "0".into(),
            note.into(),
        ]),
    }
}
