//! The organisation's portal settings (Svix's environment settings): the theme
//! of its application portal (colours, logo, font, corner radii, display name,
//! wording). Set by an organisation token at
//! `/api/v1/management/environment-settings` (`GET`, `PUT`, `PATCH`); read by
//! any of the organisation's tokens, portal tokens included, at
//! `GET /api/v1/environment/settings` (`EnvironmentSettingsOut`).
//!
//! Every value ends up in a stylesheet or a page, so each is held to a strict
//! form: colours are hex, fonts are names, URLs are https with nothing that
//! could close a CSS string. Fields Svix has that hookd does not act on are
//! refused by name rather than silently kept.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::{Auth, OrgAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, RawBody};
use crate::AppState;

const MAX_URL: usize = 2048;
const MAX_TEXT: usize = 100;

/// Svix's `CustomColorPalette`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ColorPalette {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_secondary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_hover: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_secondary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_danger: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive_accent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub navigation_accent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub button_primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub border_primary: Option<String>,
}

impl ColorPalette {
    /// Each colour with its field name.
    pub fn colours(&self) -> [(&'static str, Option<&str>); 11] {
        [
            ("primary", self.primary.as_deref()),
            ("backgroundPrimary", self.background_primary.as_deref()),
            ("backgroundSecondary", self.background_secondary.as_deref()),
            ("backgroundHover", self.background_hover.as_deref()),
            ("textPrimary", self.text_primary.as_deref()),
            ("textSecondary", self.text_secondary.as_deref()),
            ("textDanger", self.text_danger.as_deref()),
            ("interactiveAccent", self.interactive_accent.as_deref()),
            ("navigationAccent", self.navigation_accent.as_deref()),
            ("buttonPrimary", self.button_primary.as_deref()),
            ("borderPrimary", self.border_primary.as_deref()),
        ]
    }
}

/// Svix's `BorderRadiusConfig`: `none`, `sm`, `md`, `lg` or `full` each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BorderRadius {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub button: Option<Radius>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<Radius>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Radius>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Radius {
    None,
    Sm,
    Md,
    Lg,
    Full,
}

impl Radius {
    pub fn css(self) -> &'static str {
        match self {
            Radius::None => "0",
            Radius::Sm => "2px",
            Radius::Md => "6px",
            Radius::Lg => "12px",
            Radius::Full => "999px",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FontSize {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<u16>,
}

/// Svix's `CustomThemeOverride`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThemeOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub border_radius: Option<BorderRadius>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font_size: Option<FontSize>,
}

/// Svix's `CustomStringsOverride`: what the portal calls channels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringsOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels_one: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels_many: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels_help: Option<String>,
}

/// The settings hookd keeps (the theming fields of Svix's `SettingsInternalIn`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortalSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_color: Option<String>,
    /// `logoUrl` in `EnvironmentSettingsOut`.
    #[serde(skip_serializing_if = "Option::is_none", alias = "logoUrl")]
    pub custom_logo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_font_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_font_family_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_base_font_size: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_theme_override: Option<ThemeOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_strings_override: Option<StringsOverride>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_palette_light: Option<ColorPalette>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_palette_dark: Option<ColorPalette>,
}

fn is_colour(c: &str) -> bool {
    let Some(hex) = c.strip_prefix('#') else { return false };
    matches!(hex.len(), 3 | 4 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An https URL that can sit inside a quoted CSS `url("…")` or an attribute.
fn safe_url(field: &str, u: &str) -> ApiResult<()> {
    let parsed = url::Url::parse(u).map_err(|e| ApiError::body_field(field, format!("not a URL: {e}")))?;
    // The portal's CSP loads images, styles and fonts from https hosts only.
    if parsed.scheme() != "https" {
        return Err(ApiError::body_field(field, "must be an https URL"));
    }
    if u.len() > MAX_URL || u.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'\\<>()".contains(c)) {
        return Err(ApiError::body_field(
            field,
            format!(
                "must be at most {MAX_URL} characters, without spaces, quotes, backslashes, '<', '>' or parentheses"
            ),
        ));
    }
    Ok(())
}

fn short_text(field: &str, t: &str) -> ApiResult<()> {
    if t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) {
        return Err(ApiError::body_field(field, format!("at most {MAX_TEXT} characters, no control characters")));
    }
    Ok(())
}

impl PortalSettings {
    pub fn validate(&self) -> ApiResult<()> {
        let mut colours = vec![("customColor".to_string(), self.custom_color.as_deref())];
        for (name, palette) in
            [("colorPaletteLight", &self.color_palette_light), ("colorPaletteDark", &self.color_palette_dark)]
        {
            for (field, c) in palette.iter().flat_map(ColorPalette::colours) {
                colours.push((format!("{name}.{field}"), c));
            }
        }
        for (field, c) in colours {
            if let Some(c) = c.filter(|c| !is_colour(c)) {
                return Err(ApiError::body_field(&field, format!("`{c}` is not a colour: use #rgb or #rrggbb")));
            }
        }
        if let Some(f) = &self.custom_font_family {
            let ok = !f.is_empty()
                && f.len() <= MAX_TEXT
                && f.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_ ".contains(&b));
            if !ok {
                return Err(ApiError::body_field("customFontFamily", "letters, digits, spaces, '-' and '_' only"));
            }
        }
        for (field, u) in
            [("customLogoUrl", &self.custom_logo_url), ("customFontFamilyUrl", &self.custom_font_family_url)]
        {
            if let Some(u) = u {
                safe_url(field, u)?;
            }
        }
        let base = self.custom_theme_override.as_ref().and_then(|t| t.font_size.as_ref()).and_then(|f| f.base);
        for (field, size) in
            [("customBaseFontSize", self.custom_base_font_size), ("customThemeOverride.fontSize.base", base)]
        {
            if size.is_some_and(|s| !(8..=32).contains(&s)) {
                return Err(ApiError::body_field(field, "a font size from 8 to 32 (pixels)"));
            }
        }
        if let Some(n) = &self.display_name {
            short_text("displayName", n)?;
        }
        if let Some(s) = &self.custom_strings_override {
            for (field, t) in [
                ("customStringsOverride.channelsOne", &s.channels_one),
                ("customStringsOverride.channelsMany", &s.channels_many),
                ("customStringsOverride.channelsHelp", &s.channels_help),
            ] {
                if let Some(t) = t {
                    short_text(field, t)?;
                }
            }
        }
        Ok(())
    }

    /// The base font size, from either of the fields Svix has for it.
    pub fn font_size(&self) -> Option<u16> {
        self.custom_theme_override
            .as_ref()
            .and_then(|t| t.font_size.as_ref())
            .and_then(|f| f.base)
            .or(self.custom_base_font_size)
    }
}

/// The organisation's settings as stored (defaults when never set).
pub async fn load(state: &AppState, org_id: &str) -> ApiResult<PortalSettings> {
    let stored = state.resources.get_portal_settings(org_id).await?;
    Ok(stored.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default())
}

async fn store(state: &AppState, org_id: &str, settings: &PortalSettings) -> ApiResult<Json<PortalSettings>> {
    settings.validate()?;
    let text = serde_json::to_string(settings).map_err(|e| ApiError::Internal(e.to_string()))?;
    state.resources.set_portal_settings(org_id, Some(text)).await?;
    Ok(Json(settings.clone()))
}

pub async fn get(State(state): State<AppState>, auth: OrgAuth) -> ApiResult<Json<PortalSettings>> {
    Ok(Json(load(&state, &auth.org_id).await?))
}

/// `PUT`: the settings, replaced (a field left out is cleared).
pub async fn put(
    State(state): State<AppState>,
    auth: OrgAuth,
    RawBody(body): RawBody,
) -> ApiResult<Json<PortalSettings>> {
    let settings: PortalSettings = parse_json(&body)?;
    store(&state, &auth.org_id, &settings).await
}

/// `PATCH`: a JSON merge patch (RFC 7396): the fields given are set, within
/// objects too (`colorPaletteDark.primary` alone changes only that colour);
/// `null` clears one; the rest stay.
pub async fn patch(
    State(state): State<AppState>,
    auth: OrgAuth,
    RawBody(body): RawBody,
) -> ApiResult<Json<PortalSettings>> {
    let mut changes: Map<String, Value> = parse_json(&body)?;
    // `logoUrl` is another name for `customLogoUrl`.
    if let Some(logo) = changes.remove("logoUrl") {
        changes.insert("customLogoUrl".into(), logo);
    }
    let current = load(&state, &auth.org_id).await?;
    let mut merged = serde_json::to_value(current).map_err(|e| ApiError::Internal(e.to_string()))?;
    merge_patch(&mut merged, Value::Object(changes));
    let settings: PortalSettings = parse_json(merged.to_string().as_bytes())?;
    store(&state, &auth.org_id, &settings).await
}

/// RFC 7396: `patch` applied to `target`.
fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(changes) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(fields) = target else { return };
    for (k, v) in changes {
        if v.is_null() {
            fields.remove(&k);
        } else {
            merge_patch(fields.entry(k).or_insert(Value::Null), v);
        }
    }
}

/// `GET /api/v1/environment/settings` (`EnvironmentSettingsOut`): what a portal
/// shows, for any token of the organisation.
pub async fn environment(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Value>> {
    let s = load(&state, &auth.org_id).await?;
    let mut out = match serde_json::to_value(&s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(logo) = &s.custom_logo_url {
        out.insert("logoUrl".into(), json!(logo));
    }
    // What hookd's portal offers, as Svix's flags say it.
    for (flag, on) in [
        ("enableChannels", true),
        ("enableMessageTags", true),
        ("enableMessageStream", false),
        ("enableIntegrationManagement", false),
        ("enableTransformations", false),
        ("enableEndpointOauthConfig", false),
        ("enableEndpointMtlsConfig", false),
        ("showUseSvixPlay", false),
        ("showSvixBrandFooter", false),
        ("wipeSuccessfulPayload", false),
        ("showFeatureTooltips", false),
    ] {
        out.insert(flag.into(), json!(on));
    }
    out.insert("advancedEndpointTypes".into(), json!([]));
    Ok(Json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(v: Value) -> Result<PortalSettings, String> {
        let s: PortalSettings = serde_json::from_value(v).map_err(|e| e.to_string())?;
        s.validate().map_err(|e| format!("{e:?}"))?;
        Ok(s)
    }

    #[test]
    fn values_that_could_break_out_of_a_stylesheet_are_refused() {
        assert!(settings(json!({"customColor": "#0a7f5a", "customFontFamily": "Open Sans"})).is_ok());
        for bad in [
            json!({"customColor": "red; } body { display: none"}),
            json!({"customColor": "#12345"}),
            json!({"colorPaletteDark": {"primary": "url(x)"}}),
            json!({"customFontFamily": "Open Sans\"; }"}),
            json!({"customLogoUrl": "javascript:alert(1)"}),
            json!({"customLogoUrl": "https://cdn.example.com/a\").png"}),
            json!({"customFontFamilyUrl": "https://fonts.example.com/x y.css"}),
            json!({"customBaseFontSize": 200}),
            json!({"displayName": "x".repeat(101)}),
            json!({"customThemeOverride": {"borderRadius": {"button": "huge"}}}),
            json!({"enableTransformations": true}),
        ] {
            assert!(settings(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_merges_within_objects_and_null_clears() {
        let mut target = json!({"a": 1, "p": {"x": "#111", "y": "#222"}, "gone": true});
        merge_patch(&mut target, json!({"p": {"y": "#333", "z": "#444"}, "gone": null, "b": 2}));
        assert_eq!(target, json!({"a": 1, "b": 2, "p": {"x": "#111", "y": "#333", "z": "#444"}}));
        let mut scalar = json!(1);
        merge_patch(&mut scalar, json!({"a": {"b": null, "c": 1}}));
        assert_eq!(scalar, json!({"a": {"c": 1}}));
    }

    #[test]
    fn logo_url_is_an_alias_and_the_font_size_has_two_names() {
        let s = settings(json!({"logoUrl": "https://cdn.example.com/logo.svg", "customBaseFontSize": 14})).unwrap();
        assert_eq!(s.custom_logo_url.as_deref(), Some("https://cdn.example.com/logo.svg"));
        assert_eq!(s.font_size(), Some(14));
        let s = settings(json!({"customThemeOverride": {"fontSize": {"base": 18}}, "customBaseFontSize": 14})).unwrap();
        assert_eq!(s.font_size(), Some(18));
    }
}
