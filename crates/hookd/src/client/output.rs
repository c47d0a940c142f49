//! What the client commands print: aligned tables for people, JSON for
//! scripts, colour only on a terminal (and never with `NO_COLOR`).

use std::io::IsTerminal;

use serde_json::Value;

/// Longest cell printed in a table; the rest is cut with `…`.
const MAX_CELL: usize = 60;

/// Whether stdout gets ANSI colours.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A table cell's text and its colour.
pub struct Cell {
    text: String,
    style: Style,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Good,
    Bad,
    Dim,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), style: Style::Plain }
    }

    pub fn styled(text: impl Into<String>, style: Style) -> Cell {
        Cell { text: text.into(), style }
    }

    /// An HTTP status (or none): green for 2xx, red otherwise.
    pub fn status(code: Option<i64>) -> Cell {
        match code {
            Some(c) if (200..300).contains(&c) => Cell::styled(c.to_string(), Style::Good),
            Some(c) if c > 0 => Cell::styled(c.to_string(), Style::Bad),
            _ => Cell::styled("-", Style::Bad),
        }
    }
}

fn paint(text: &str, style: Style, on: bool) -> String {
    let code = match style {
        Style::Plain => return text.to_string(),
        Style::Good => "32",
        Style::Bad => "31",
        Style::Dim => "2",
    };
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn cut(s: &str) -> String {
    let s = s.replace(['\n', '\r', '\t'], " ");
    if s.chars().count() <= MAX_CELL {
        return s;
    }
    let mut out: String = s.chars().take(MAX_CELL - 1).collect();
    out.push('…');
    out
}

/// Renders rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: Vec<Vec<Cell>>, colour: bool) -> String {
    let rows: Vec<Vec<Cell>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(|c| Cell { text: cut(&c.text), style: c.style }).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.text.chars().count());
            }
        }
    }
    let line = |cells: Vec<(String, Style)>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (text, style)) in cells.into_iter().enumerate() {
            let pad = if i == last { 0 } else { widths[i].saturating_sub(text.chars().count()) + 2 };
            out.push_str(&paint(&text, style, colour));
            out.push_str(&" ".repeat(pad));
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| (h.to_uppercase(), Style::Dim)).collect());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.into_iter().map(|c| (c.text, c.style)).collect()));
        out.push('\n');
    }
    out
}

/// Prints JSON for scripts.
pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// A field as text for a cell (`-` when absent).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// An object as `key  value` lines (nested values as compact JSON).
pub fn fields(value: &Value, colour: bool) -> String {
    let Some(map) = value.as_object() else { return format!("{value}\n") };
    let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in map {
        let shown = match v {
            Value::Object(_) | Value::Array(_) if !v.as_array().is_some_and(|a| a.iter().all(|i| i.is_string())) => {
                v.to_string()
            }
            _ => text(v),
        };
        let pad = " ".repeat(width - k.chars().count() + 2);
        out.push_str(&format!("{}{pad}{shown}\n", paint(k, Style::Dim, colour)));
    }
    out
}

/// The line under a page that has more.
pub fn more(list: &Value) -> Option<String> {
    if list["done"].as_bool() == Some(false) {
        list["iterator"].as_str().map(|it| format!("more: --iterator {it} (or --all)"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_cut_long_cells() {
        let rows = vec![
            vec![Cell::plain("app_1"), Cell::plain("short")],
            vec![Cell::plain("app_22"), Cell::plain("x".repeat(100))],
        ];
        let t = table(&["id", "name"], rows, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID      NAME");
        assert_eq!(lines[1], "app_1   short");
        assert!(lines[2].starts_with("app_22  xxx"));
        assert_eq!(lines[2].chars().count(), 8 + MAX_CELL);
        assert!(lines[2].ends_with('…'));
    }

    #[test]
    fn colours_only_when_asked() {
        let t = table(&["s"], vec![vec![Cell::status(Some(500))]], true);
        assert!(t.contains("\x1b[31m500\x1b[0m"));
        let t = table(&["s"], vec![vec![Cell::status(Some(500))]], false);
        assert!(!t.contains('\x1b'));
    }
}
