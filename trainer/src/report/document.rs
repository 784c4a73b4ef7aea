//! The report as a document: tables, sections, and their Markdown and HTML renderings.

use crate::output::thousands;
use crate::report::statistics::{GroupSummary, MeanStd};

/// Columns of the comparison table.
pub const COLUMNS: [(&str, &str); 8] = [
    ("prec@3", "Prec@3"),
    ("prec@5", "Prec@5"),
    ("prec@10", "Prec@10"),
    ("ndcg@3", "nDCG@3"),
    ("ndcg@5", "nDCG@5"),
    ("ndcg@10", "nDCG@10"),
    ("ndcg_ref@10", "nDCG_ref@10"),
    ("map", "MAP"),
];

/// A table of text cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column titles.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The table as GitHub markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.header.join(" | "));
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }

    /// The table as HTML.
    pub fn html(&self) -> String {
        let mut out = String::from("<table>\n<tr>");
        for h in &self.header {
            out.push_str(&format!("<th>{}</th>", escape(h)));
        }
        out.push_str("</tr>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for cell in row {
                out.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        out
    }
}

/// The comparison table: metrics (mean ± std), parameters and their ratio to the first group,
/// MAP relative to the first group, seconds per epoch.
pub fn comparison_table(summaries: &[GroupSummary]) -> Table {
    let mut header: Vec<String> = ["model", "runs", "params", "params vs first"]
        .map(String::from)
        .to_vec();
    header.extend(COLUMNS.iter().map(|(_, title)| title.to_string()));
    header.extend(["MAP vs first", "s/epoch"].map(String::from));
    let base_map = summaries.first().and_then(|s| s.get("map")).map(|m| m.mean);
    let base_params = summaries.first().map(|s| s.num_parameters);
    let ratio = |value: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 => format!("{:.1}%", 100.0 * value / b),
        _ => "-".into(),
    };
    let rows = summaries
        .iter()
        .map(|s| {
            let mut row = vec![
                s.name.clone(),
                s.runs.to_string(),
                thousands(s.num_parameters.max(0) as usize),
                ratio(s.num_parameters as f64, base_params.map(|p| p as f64)),
            ];
            for (key, _) in COLUMNS {
                let v = s.get(key).unwrap_or(MeanStd {
                    mean: f64::NAN,
                    std: f64::NAN,
                });
                row.push(format!("{:.4} ± {:.4}", v.mean, v.std));
            }
            row.push(ratio(s.get("map").map_or(f64::NAN, |m| m.mean), base_map));
            row.push(format!("{:.1}", s.seconds_per_epoch.mean));
            row
        })
        .collect();
    Table { header, rows }
}

/// Markdown table of the summaries, with the note on the nDCG variants.
pub fn markdown(summaries: &[GroupSummary]) -> String {
    let mut out = comparison_table(summaries).markdown();
    out.push_str("\nnDCG is the standard definition, nDCG_ref@10 the reference variant (the JSON has it at every cut-off). Mean ± sample std over seeds.\n");
    out
}

/// One block of a report section.
#[derive(Debug, Clone)]
pub enum Block {
    /// A paragraph of text (markdown inline syntax: `code` only).
    Text(String),
    /// A table.
    Table(Table),
    /// A chart file of the folder.
    Image {
        /// File name in the folder.
        file: String,
        /// Alternative text.
        alt: String,
    },
}

/// A titled section of the report.
#[derive(Debug, Clone)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Content.
    pub blocks: Vec<Block>,
}

/// HTML-escapes text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the report as markdown.
pub fn render_markdown(title: &str, sections: &[Section]) -> String {
    let mut out = format!("# {title}\n");
    for section in sections {
        out.push_str(&format!("\n## {}\n", section.title));
        for block in &section.blocks {
            out.push('\n');
            match block {
                Block::Text(text) => out.push_str(&format!("{text}\n")),
                Block::Table(table) => out.push_str(&table.markdown()),
                Block::Image { file, alt } => out.push_str(&format!("![{alt}]({file})\n")),
            }
        }
    }
    out
}

/// Renders the report as a standalone HTML page (the charts are the PNGs of the folder).
pub fn render_html(title: &str, sections: &[Section]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\nbody {{ font-family: sans-serif; max-width: 1450px; margin: 2em auto; padding: 0 1em; color: #222; }}\ntable {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}\nth, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}\nth:first-child, td:first-child {{ text-align: left; }}\nimg {{ max-width: 100%; border: 1px solid #eee; }}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    for section in sections {
        out.push_str(&format!("<h2>{}</h2>\n", escape(&section.title)));
        for block in &section.blocks {
            match block {
                Block::Text(text) => {
                    // `code` spans are the only inline markdown the report uses.
                    let mut html = String::new();
                    for (i, part) in escape(text).split('`').enumerate() {
                        if i % 2 == 1 {
                            html.push_str(&format!("<code>{part}</code>"));
                        } else {
                            html.push_str(part);
                        }
                    }
                    out.push_str(&format!("<p>{html}</p>\n"));
                }
                Block::Table(table) => out.push_str(&table.html()),
                Block::Image { file, alt } => out.push_str(&format!(
                    "<p><img src=\"{}\" alt=\"{}\"></p>\n",
                    escape(file),
                    escape(alt)
                )),
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_html_carry_the_same_content() {
        let sections = vec![Section {
            title: "A <b>".into(),
            blocks: vec![
                Block::Text("see `x`".into()),
                Block::Table(Table {
                    header: vec!["h".into()],
                    rows: vec![vec!["1 & 2".into()]],
                }),
                Block::Image {
                    file: "c.png".into(),
                    alt: "chart".into(),
                },
            ],
        }];
        let md = render_markdown("T", &sections);
        assert!(
            md.contains("## A <b>") && md.contains("![chart](c.png)") && md.contains("| 1 & 2 |")
        );
        let html = render_html("T", &sections);
        assert!(html.contains("<h2>A &lt;b&gt;</h2>"));
        assert!(html.contains("<code>x</code>"));
        assert!(html.contains("<td>1 &amp; 2</td>"));
        assert!(html.contains("<img src=\"c.png\" alt=\"chart\">"));
    }
}
