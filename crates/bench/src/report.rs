//! Tables for the terminal (aligned plain text) and for the README (Markdown), built from the
//! same rows so the two can never disagree.

/// Whether a figure meets the target printed beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// A figure without a target.
    NoTarget,
}

impl Verdict {
    pub fn from_check(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Met => "yes",
            Verdict::Missed => "NO",
            Verdict::NoTarget => "",
        }
    }
}

/// A table with a header row; every row has as many cells as the header.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|cell| (*cell).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row, padding or cutting it to the header's width.
    pub fn push(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// A measure with its value, target and whether the target is met.
    pub fn push_measure(&mut self, measure: &str, value: String, target: &str, verdict: Verdict) {
        self.push(vec![
            measure.to_owned(),
            value,
            target.to_owned(),
            verdict.label().to_owned(),
        ]);
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header.iter().map(|cell| cell.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        widths
    }

    /// Columns padded to a common width, the header underlined with dashes.
    pub fn plain(&self) -> String {
        let widths = self.widths();
        let line = |cells: &[String]| -> String {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut text = line(&self.header);
        text.push('\n');
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        text.push_str(&rule.join("  "));
        text.push('\n');
        for row in &self.rows {
            text.push_str(&line(row));
            text.push('\n');
        }
        text
    }

    /// A GitHub-flavoured Markdown table; `|` inside a cell is escaped.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| -> String {
            let escaped: Vec<String> = cells.iter().map(|cell| cell.replace('|', "\\|")).collect();
            format!("| {} |", escaped.join(" | "))
        };
        let mut text = line(&self.header);
        text.push('\n');
        text.push('|');
        for _ in &self.header {
            text.push_str("---|");
        }
        text.push('\n');
        for row in &self.rows {
            text.push_str(&line(row));
            text.push('\n');
        }
        text
    }
}

/// Milliseconds with a precision that suits their size.
pub fn milliseconds(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0} ms")
    } else {
        format!("{value:.1} ms")
    }
}

/// A difference in milliseconds with its sign.
pub fn signed_milliseconds(value: f64) -> String {
    let sign = if value >= 0.0 { "+" } else { "-" };
    format!("{sign}{}", milliseconds(value.abs()))
}

/// Bytes in KB (1000 bytes, as the peers' figures are given) with the exact count.
pub fn kilobytes(bytes: usize) -> String {
    format!("{:.1} KB ({bytes} bytes)", bytes as f64 / 1000.0)
}

/// Bytes in MiB.
pub fn mebibytes(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new(&["measure", "value", "target", "met"]);
        table.push_measure(
            "spawn -> initialize",
            "5.0 ms".to_owned(),
            "<= 20 ms",
            Verdict::Met,
        );
        table.push_measure("a|b", "1".to_owned(), "", Verdict::NoTarget);
        table
    }

    #[test]
    fn plain_columns_line_up() {
        let plain = sample().plain();
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 4);
        let column = lines[0].find("value").unwrap();
        assert_eq!(lines[2].find("5.0 ms"), Some(column));
        assert!(lines[2].ends_with("yes"));
    }

    #[test]
    fn markdown_escapes_pipes() {
        let markdown = sample().markdown();
        assert!(markdown.starts_with("| measure | value | target | met |\n|---|---|---|---|\n"));
        assert!(markdown.contains("| a\\|b | 1 |  |  |"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(milliseconds(5.04), "5.0 ms");
        assert_eq!(milliseconds(512.4), "512 ms");
        assert_eq!(signed_milliseconds(-3.0), "-3.0 ms");
        assert_eq!(kilobytes(12_345), "12.3 KB (12345 bytes)");
        assert_eq!(mebibytes(8.0 * 1024.0 * 1024.0), "8.0 MiB");
    }
}
