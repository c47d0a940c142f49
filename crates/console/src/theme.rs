//! A portal's stylesheet, made from its organisation's portal settings
//! (colours, palettes light and dark, font, corner radii). The API holds every
//! value to a strict form; each is checked again here before it is written, so
//! nothing stored can close a rule or a string.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::session::Session;

/// `GET /portal/theme.css` for the session's organisation.
pub async fn stylesheet(s: Session) -> Response {
    let headers = [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "private, max-age=60")];
    (headers, css(&s.theme)).into_response()
}

fn colour(v: &Value) -> Option<&str> {
    let c = v.as_str()?;
    let hex = c.strip_prefix('#')?;
    (matches!(hex.len(), 3 | 4 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(c)
}

fn font_name(v: &Value) -> Option<&str> {
    let f = v.as_str()?;
    (!f.is_empty() && f.len() <= 100 && f.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_ ".contains(&b)))
        .then_some(f)
}

fn url(v: &Value) -> Option<&str> {
    let u = v.as_str()?;
    let scheme = u.starts_with("https://");
    let plain = !u.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'\\<>()".contains(c));
    (scheme && plain && u.len() <= 2048).then_some(u)
}

fn radius(v: &Value) -> Option<&'static str> {
    Some(match v.as_str()? {
        "none" => "0",
        "sm" => "2px",
        "md" => "6px",
        "lg" => "12px",
        "full" => "999px",
        _ => return None,
    })
}

/// The palette's colours as the stylesheet's variables.
fn palette(p: &Value) -> String {
    let vars = [
        ("primary", "--accent"),
        ("backgroundPrimary", "--bg"),
        ("backgroundSecondary", "--bg2"),
        ("textPrimary", "--fg"),
        ("textSecondary", "--muted"),
        ("textDanger", "--bad"),
        ("interactiveAccent", "--link"),
        ("navigationAccent", "--nav"),
        ("buttonPrimary", "--button"),
        ("borderPrimary", "--line"),
    ];
    vars.iter().filter_map(|(field, var)| colour(&p[*field]).map(|c| format!(" {var}: {c};"))).collect()
}

/// The stylesheet for `theme` (`EnvironmentSettingsOut`); empty for none.
pub fn css(theme: &Value) -> String {
    let mut out = String::new();
    if let Some(u) = url(&theme["customFontFamilyUrl"]) {
        out.push_str(&format!("@import url(\"{u}\");\n"));
    }
    let mut root = String::new();
    if let Some(c) = colour(&theme["customColor"]) {
        root.push_str(&format!(" --accent: {c};"));
    }
    root.push_str(&palette(&theme["colorPaletteLight"]));
    let radii = &theme["customThemeOverride"]["borderRadius"];
    for (part, var) in [("button", "--radius-button"), ("card", "--radius-card"), ("input", "--radius-input")] {
        if let Some(r) = radius(&radii[part]) {
            root.push_str(&format!(" {var}: {r};"));
        }
    }
    if !root.is_empty() {
        out.push_str(&format!(":root {{{root} }}\n"));
    }
    let mut body = String::new();
    if let Some(f) = font_name(&theme["customFontFamily"]) {
        body.push_str(&format!(" font-family: \"{f}\", system-ui, sans-serif;"));
    }
    let size = theme["customThemeOverride"]["fontSize"]["base"].as_u64().or(theme["customBaseFontSize"].as_u64());
    if let Some(px) = size.filter(|s| (8..=32).contains(s)) {
        body.push_str(&format!(" font-size: {px}px;"));
    }
    if !body.is_empty() {
        out.push_str(&format!("body {{{body} }}\n"));
    }
    let dark = palette(&theme["colorPaletteDark"]);
    if !dark.is_empty() {
        out.push_str(&format!("@media (prefers-color-scheme: dark) {{ :root {{{dark} }} }}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::css;
    use serde_json::json;

    #[test]
    fn a_theme_becomes_variables_and_nothing_unsafe_gets_through() {
        let theme = json!({
            "customColor": "#0a7f5a",
            "customFontFamily": "Open Sans",
            "customFontFamilyUrl": "https://fonts.example.com/open-sans.css",
            "customThemeOverride": {"borderRadius": {"button": "full"}, "fontSize": {"base": 16}},
            "colorPaletteDark": {"backgroundPrimary": "#101418"}
        });
        let out = css(&theme);
        assert!(out.starts_with("@import url(\"https://fonts.example.com/open-sans.css\");"), "{out}");
        assert!(out.contains("--accent: #0a7f5a;") && out.contains("--radius-button: 999px;"), "{out}");
        assert!(out.contains("font-family: \"Open Sans\"") && out.contains("font-size: 16px;"), "{out}");
        assert!(out.contains("@media (prefers-color-scheme: dark) { :root { --bg: #101418; } }"), "{out}");

        let hostile = json!({
            "customColor": "red; } body { display: none",
            "customFontFamily": "x\"; } *{",
            "customFontFamilyUrl": "https://x.example/\"); body{",
            "colorPaletteLight": {"primary": "url(https://x)"},
            "customThemeOverride": {"borderRadius": {"card": "1px; }"}}
        });
        assert_eq!(css(&hostile), "");
        assert_eq!(css(&json!(null)), "");
    }
}
