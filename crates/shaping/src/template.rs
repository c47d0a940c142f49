//! Payload templates: a sender's minijinja template that renders a message
//! into the body a receiver reads (a Slack message, an XML document, a form
//! post, a line of text).
//!
//! This module compiles, checks and renders; storing numbered versions is
//! the store's job. A template runs sandboxed:
//!
//! - **No I/O.** The environment has no loader and minijinja is built without
//!   `multi_template`, so `include`, `import`, `from` and `extends` are refused
//!   when the template is compiled.
//! - **Bounded work.** Every render gets [`Limits::fuel`]; minijinja charges
//!   fuel for instructions and for the data a template creates. Writing out a
//!   whole list or map (`{{ list }}`, `tojson`, `toxml`, `toform`, `string`,
//!   `urlencode`) also costs one step per item it holds: a template can build
//!   lists that share items (`[a, a, a]`), which are cheap to build and huge
//!   to write out, and minijinja only charges for what was written after the
//!   writing is done.
//! - **Bounded output.** Rendering writes into a buffer that fails once it
//!   holds more than [`Limits::max_output`] bytes.
//! - **Bounded recursion**, by minijinja's own limit.
//!
//! Values are escaped for the format: JSON templates write each `{{ value }}`
//! as JSON (so `{"text": {{ payload.name }}}` gives a quoted, escaped string,
//! and a value is never put inside quotes by hand; build strings with `~`),
//! XML templates escape markup characters, form templates url-encode. Booleans
//! are written `true`/`false` and `none` as nothing outside JSON, the way the
//! payload's JSON reads, not Python's `True`/`None`.
//!
//! Undefined values follow minijinja's default, lenient behaviour: printing an
//! undefined value gives nothing (`null` in JSON), iterating it gives nothing,
//! `if` treats it as false, but looking up an attribute *of* an undefined value
//! (`payload.missing.name`) is an error.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};

/// The largest template source accepted, in bytes.
pub const MAX_SOURCE_LEN: usize = 65_536;

/// The name the one template has inside its environment.
const TEMPLATE_NAME: &str = "template";

/// The auto-escape name of form templates (minijinja has no built-in one).
const FORM_ESCAPE: &str = "form";

/// How deep `toxml` and `toform` descend into a value. Payloads parsed by
/// serde_json are at most 128 levels deep; a template could build deeper ones.
const MAX_NESTING: usize = 128;

/// What a template renders into, and so how its values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Xml,
    Form,
    Text,
}

impl Format {
    /// The `Content-Type` a rendered body is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
            Format::Form => "application/x-www-form-urlencoded",
            Format::Text => "text/plain; charset=utf-8",
        }
    }

    /// The format named `s` (`json`, `xml`, `form`, `text`), if any.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            "form" => Some(Format::Form),
            "text" => Some(Format::Text),
            _ => None,
        }
    }

    /// The name [`Format::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Form => "form",
            Format::Text => "text",
        }
    }

    fn auto_escape(self) -> AutoEscape {
        match self {
            Format::Json => AutoEscape::Json,
            Format::Xml => AutoEscape::Html,
            Format::Form => AutoEscape::Custom(Cow::Borrowed(FORM_ESCAPE)),
            Format::Text => AutoEscape::None,
        }
    }

    /// Whether surrounding whitespace is cut from the output. It never means
    /// anything in JSON or a form, and an XML declaration must come first;
    /// in text, the template's author decides.
    fn trims_output(self) -> bool {
        !matches!(self, Format::Text)
    }
}

/// What one render may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel: about one per instruction and one per 64 bytes of data.
    pub fuel: u64,
    /// The largest output, in bytes.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { fuel: 200_000, max_output: 1024 * 1024 }
    }
}

/// Why a template did not compile or render, with where in the template when
/// that is known (1-based line, and column in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}", self.describe())]
pub struct TemplateError {
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

impl TemplateError {
    /// `line 3, column 7: unknown filter `toxm``, or the message alone.
    pub fn describe(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(column)) => format!("line {line}, column {column}: {}", self.message),
            (Some(line), None) => format!("line {line}: {}", self.message),
            _ => self.message.clone(),
        }
    }

    fn new(message: impl Into<String>) -> Self {
        TemplateError { line: None, column: None, message: message.into() }
    }

    fn from_minijinja(err: &Error, source: &str, limits: Option<&Limits>) -> Self {
        // minijinja knows the byte span of most errors; the line alone is the
        // fallback.
        let (line, column) = match err.range().and_then(|r| source.get(..r.start)) {
            Some(before) => {
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                (Some(line), Some(before[line_start..].chars().count() + 1))
            }
            None => (err.line(), None),
        };
        TemplateError {
            line: line.and_then(|l| u32::try_from(l).ok()),
            column: column.and_then(|c| u32::try_from(c).ok()),
            message: describe_minijinja(err, limits),
        }
    }
}

/// A message for a minijinja error that reads well to a template's author.
fn describe_minijinja(err: &Error, limits: Option<&Limits>) -> String {
    let detail = err.detail().unwrap_or_default();
    match err.kind() {
        ErrorKind::OutOfFuel => match limits {
            Some(l) => format!("the template ran out of fuel (more than {} steps)", l.fuel),
            None => "the template ran out of fuel".to_owned(),
        },
        // "filter toxm is unknown" → "unknown filter `toxm`"
        kind @ (ErrorKind::UnknownFilter | ErrorKind::UnknownFunction | ErrorKind::UnknownTest) => {
            let what = match kind {
                ErrorKind::UnknownFilter => "filter",
                ErrorKind::UnknownFunction => "function",
                _ => "test",
            };
            match detail.strip_suffix(" is unknown") {
                Some(named) => {
                    let name = named.strip_prefix(&format!("{what} ")).unwrap_or(named);
                    format!("unknown {what} `{name}`")
                }
                None => format!("unknown {what}"),
            }
        }
        ErrorKind::SyntaxError => match detail.strip_prefix("unknown statement ") {
            Some(s @ ("include" | "import" | "from" | "extends" | "block")) => {
                format!("`{s}` is not available: a template cannot load or extend other templates")
            }
            Some(s) => format!("unknown statement `{s}`"),
            None => format!("syntax error: {detail}"),
        },
        kind if detail.is_empty() => kind.to_string(),
        kind => format!("{kind}: {detail}"),
    }
}

/// A compiled template. Immutable, `Send + Sync`; share it in an `Arc`.
#[derive(Clone)]
pub struct Template {
    /// An environment holding this one template, configured for its format,
    /// with the default fuel set (see [`Template::render`]).
    env: Environment<'static>,
    format: Format,
    /// The source again, since the environment only lends its copy to a
    /// handle that borrows it.
    source: Arc<str>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template").field("format", &self.format).field("source_len", &self.source().len()).finish()
    }
}

impl Template {
    /// Compiles `source`; a syntax error comes back with its line and column.
    pub fn compile(source: &str, format: Format) -> Result<Template, TemplateError> {
        if source.len() > MAX_SOURCE_LEN {
            return Err(TemplateError::new(format!("the template is longer than {MAX_SOURCE_LEN} bytes")));
        }
        let mut env = sandboxed_environment(format);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|e| TemplateError::from_minijinja(&e, source, None))?;
        Ok(Template { env, format, source: source.into() })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The source the template was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template for one message. JSON output is checked to be
    /// JSON; output other than text is trimmed of surrounding whitespace.
    pub fn render(&self, ctx: &RenderContext<'_>, limits: &Limits) -> Result<Vec<u8>, TemplateError> {
        // Fuel is a setting of the environment; cloning one (a few Arc clones)
        // is only needed when a caller asks for other than the default.
        let env = if self.env.fuel() == Some(limits.fuel) {
            Cow::Borrowed(&self.env)
        } else {
            let mut env = self.env.clone();
            env.set_fuel(Some(limits.fuel));
            Cow::Owned(env)
        };
        let template =
            env.get_template(TEMPLATE_NAME).map_err(|e| TemplateError::from_minijinja(&e, "", Some(limits)))?;
        let mut out = CappedWriter { buf: Vec::new(), limit: limits.max_output, overflowed: false };
        if let Err(err) = template.render_captured_to(ctx.variables(), &mut out) {
            if out.overflowed {
                return Err(TemplateError::new(format!("the output is larger than {} bytes", limits.max_output)));
            }
            return Err(TemplateError::from_minijinja(&err, &self.source, Some(limits)));
        }
        let mut body = out.buf;
        if self.format == Format::Json {
            // Checked before trimming, so that output lines match the lines
            // of the template that wrote them.
            check_json(&body)?;
        }
        if self.format.trims_output() {
            let trimmed = body.trim_ascii();
            if trimmed.len() != body.len() {
                body = trimmed.to_vec();
            }
        }
        Ok(body)
    }
}

fn check_json(body: &[u8]) -> Result<(), TemplateError> {
    let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) else {
        return Ok(());
    };
    // serde_json appends " at line L column C"; say it in our own words.
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let reason = full.strip_suffix(&suffix).unwrap_or(&full);
    Err(TemplateError::new(format!(
        "the output is not valid JSON: {reason} (line {}, column {} of the output)",
        e.line(),
        e.column()
    )))
}

/// An output buffer that refuses to grow past `limit`.
struct CappedWriter {
    buf: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An environment with no loader, the format's escaping, hookd's filters and
/// the default fuel.
fn sandboxed_environment(format: Format) -> Environment<'static> {
    let mut env = Environment::new();
    // Debug mode keeps the span and a readable detail ("`x` is undefined") on
    // runtime errors; its cost is only paid when an error happens.
    env.set_debug(true);
    env.set_fuel(Some(Limits::default().fuel));
    let escape = format.auto_escape();
    env.set_auto_escape_callback(move |_| escape.clone());
    env.set_formatter(write_value);
    // `debug()` dumps every variable: of no use to a receiver, and a walk of
    // whatever the template built.
    env.remove_global("debug");
    env.add_filter("toxml", toxml);
    env.add_filter("toform", toform);
    env.add_filter("tojson", tojson);
    env.add_filter("urlencode", urlencode);
    env.add_filter("string", string);
    env.add_filter("pprint", pprint);
    env
}

fn is_form(state: &State) -> bool {
    matches!(state.auto_escape(), AutoEscape::Custom(name) if name == FORM_ESCAPE)
}

/// Writes `{{ value }}` escaped for the format.
fn write_value(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    charge_for_walk(state, value)?;
    if value.is_safe() || matches!(state.auto_escape(), AutoEscape::Json) {
        return minijinja::escape_formatter(out, state, value);
    }
    match value.kind() {
        ValueKind::Bool => out.write_str(if value.is_true() { "true" } else { "false" })?,
        ValueKind::None => {}
        _ if is_form(state) => out.write_str(&minijinja::filters::urlencode(value)?)?,
        _ => return minijinja::escape_formatter(out, state, value),
    }
    Ok(())
}

/// Charges one step per item inside `value` before it is written out whole,
/// stopping as soon as the fuel runs out (see the module docs for why).
fn charge_for_walk(state: &State, value: &Value) -> Result<(), Error> {
    if !is_container(value) {
        return Ok(());
    }
    let mut pending = vec![value.clone()];
    while let Some(v) = pending.pop() {
        let is_map = v.kind() == ValueKind::Map;
        for item in v.try_iter()? {
            state.consume_fuel(1)?;
            let item = if is_map { v.get_item(&item)? } else { item };
            if is_container(&item) {
                pending.push(item);
            }
        }
    }
    Ok(())
}

fn is_container(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Map | ValueKind::Iterable)
}

fn tojson(state: &State, value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    charge_for_walk(state, value)?;
    minijinja::filters::tojson(value, indent, kwargs)
}

fn string(state: &State, value: &Value) -> Result<Value, Error> {
    charge_for_walk(state, value)?;
    minijinja::filters::string(state, value)
}

fn pprint(state: &State, value: &Value) -> Result<String, Error> {
    charge_for_walk(state, value)?;
    Ok(minijinja::filters::pprint(value))
}

/// minijinja's `urlencode`, whose output a form template writes as it is.
fn urlencode(state: &State, value: &Value) -> Result<Value, Error> {
    charge_for_walk(state, value)?;
    let encoded = minijinja::filters::urlencode(value)?;
    Ok(markup_for(state, encoded, is_form(state)))
}

/// Markup a filter made is written as it is where it is the output's own
/// format (or there is no escaping), and escaped like any value elsewhere:
/// `{"xml": {{ payload|toxml }}}` gives a JSON string.
fn markup_for(state: &State, markup: String, own_format: bool) -> Value {
    if own_format || matches!(state.auto_escape(), AutoEscape::None) {
        Value::from_safe_string(markup)
    } else {
        Value::from(markup)
    }
}

fn nested_too_deep(filter: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{filter}: the value is nested more than {MAX_NESTING} levels deep"),
    )
}

/// `value|toxml`, `value|toxml("order")` or `value|toxml(root="order")`: the
/// value as an XML element named `root` (by default `root`). Map entries
/// become child elements, a list becomes one element per item named after its
/// key (or `item` where it has no key of its own), scalars become text.
fn toxml(state: &State, value: &Value, root: Option<String>, kwargs: Kwargs) -> Result<Value, Error> {
    let root = match root {
        Some(root) => root,
        None => kwargs.get::<Option<String>>("root")?.unwrap_or_else(|| "root".to_owned()),
    };
    kwargs.assert_all_used()?;
    let mut xml = XmlWriter { state, out: String::new() };
    let root = xml_name(&root);
    if is_list(value) {
        xml.open(&root);
        xml.element("item", value, 1)?;
        xml.close(&root);
    } else {
        xml.element(&root, value, 0)?;
    }
    Ok(markup_for(state, xml.out, matches!(state.auto_escape(), AutoEscape::Html)))
}

fn is_list(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable)
}

struct XmlWriter<'s, 'a, 'b> {
    state: &'s State<'a, 'b>,
    out: String,
}

impl XmlWriter<'_, '_, '_> {
    /// Writes `value` as elements named `name`: one for a scalar or map, one
    /// per item for a list.
    fn element(&mut self, name: &str, value: &Value, depth: usize) -> Result<(), Error> {
        self.state.consume_fuel(1)?;
        if depth > MAX_NESTING {
            return Err(nested_too_deep("toxml"));
        }
        match value.kind() {
            ValueKind::Seq | ValueKind::Iterable => {
                for item in value.try_iter()? {
                    if is_list(&item) {
                        // A list in a list has no name of its own.
                        self.open(name);
                        self.element("item", &item, depth + 1)?;
                        self.close(name);
                    } else {
                        self.element(name, &item, depth + 1)?;
                    }
                }
            }
            ValueKind::Map => {
                self.open(name);
                for key in value.try_iter()? {
                    let child = value.get_item(&key)?;
                    self.element(&xml_name(&scalar_text(&key)), &child, depth + 1)?;
                }
                self.close(name);
            }
            ValueKind::None | ValueKind::Undefined => {
                self.out.push('<');
                self.out.push_str(name);
                self.out.push_str("/>");
            }
            _ => {
                self.open(name);
                escape_xml_text(&scalar_text(value), &mut self.out);
                self.close(name);
            }
        }
        Ok(())
    }

    fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }
}

/// A scalar as the payload's JSON would spell it (`true`, not `True`).
fn scalar_text(value: &Value) -> Cow<'_, str> {
    match value.kind() {
        ValueKind::Bool => Cow::Borrowed(if value.is_true() { "true" } else { "false" }),
        ValueKind::None | ValueKind::Undefined => Cow::Borrowed(""),
        _ => match value.as_str() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(value.to_string()),
        },
    }
}

/// `key` made into an XML element name: characters a name cannot hold become
/// `_`, and a name must start with a letter or `_`.
fn xml_name(key: &str) -> String {
    let mut name: String =
        key.chars().map(|c| if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect();
    if !name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

fn escape_xml_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines cannot appear in
            // XML 1.0 at all, not even escaped.
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// `value|toform`: a map as `a=1&b=x%20y`, nested maps as `a[b]=…`, lists as
/// `a[]=…`, `none` as an empty value. Names and values are url-encoded, the
/// brackets are written as they are (every common form parser reads both).
fn toform(state: &State, value: &Value) -> Result<Value, Error> {
    if value.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("toform expects a map of field names to values, not {}", value.kind()),
        ));
    }
    let mut form = FormWriter { state, out: String::new() };
    for key in value.try_iter()? {
        let name = minijinja::filters::urlencode(&Value::from(scalar_text(&key).as_ref()))?;
        form.fields(&name, &value.get_item(&key)?, 1)?;
    }
    Ok(markup_for(state, form.out, is_form(state)))
}

struct FormWriter<'s, 'a, 'b> {
    state: &'s State<'a, 'b>,
    out: String,
}

impl FormWriter<'_, '_, '_> {
    /// Writes the fields `value` makes under the (already encoded) `name`.
    fn fields(&mut self, name: &str, value: &Value, depth: usize) -> Result<(), Error> {
        self.state.consume_fuel(1)?;
        if depth > MAX_NESTING {
            return Err(nested_too_deep("toform"));
        }
        match value.kind() {
            ValueKind::Map => {
                for key in value.try_iter()? {
                    let key_text = minijinja::filters::urlencode(&Value::from(scalar_text(&key).as_ref()))?;
                    self.fields(&format!("{name}[{key_text}]"), &value.get_item(&key)?, depth + 1)?;
                }
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let item_name = format!("{name}[]");
                for item in value.try_iter()? {
                    self.fields(&item_name, &item, depth + 1)?;
                }
            }
            _ => {
                if !self.out.is_empty() {
                    self.out.push('&');
                }
                self.out.push_str(name);
                self.out.push('=');
                let text = Value::from(scalar_text(value).as_ref());
                self.out.push_str(&minijinja::filters::urlencode(&text)?);
            }
        }
        Ok(())
    }
}

/// What a template is rendered for: one message to one endpoint.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The message payload; a payload that is not JSON comes as a JSON string.
    pub payload: &'a serde_json::Value,
    pub event_type: &'a str,
    pub msg_id: &'a str,
    pub event_id: Option<&'a str>,
    /// When the message was created, in Unix seconds.
    pub timestamp: i64,
    pub channels: Option<&'a [String]>,
    pub endpoint: EndpointVars<'a>,
}

/// The endpoint a message is rendered for, as `endpoint` in a template.
#[derive(Debug, Clone, Copy)]
pub struct EndpointVars<'a> {
    pub id: &'a str,
    pub uid: Option<&'a str>,
    pub url: &'a str,
    pub metadata: &'a BTreeMap<String, String>,
}

impl RenderContext<'_> {
    /// The template's variables. Event type and message id also go by their
    /// camelCase API names.
    fn variables(&self) -> Value {
        let timestamp_iso = time::OffsetDateTime::from_unix_timestamp(self.timestamp)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
        let endpoint = BTreeMap::from([
            ("id", Value::from(self.endpoint.id)),
            ("uid", Value::from(self.endpoint.uid)),
            ("url", Value::from(self.endpoint.url)),
            ("metadata", Value::from_object(self.endpoint.metadata.clone())),
        ]);
        Value::from_object(BTreeMap::from([
            ("payload", json_to_value(self.payload)),
            ("event_type", Value::from(self.event_type)),
            ("eventType", Value::from(self.event_type)),
            ("msg_id", Value::from(self.msg_id)),
            ("msgId", Value::from(self.msg_id)),
            ("event_id", Value::from(self.event_id)),
            ("timestamp", Value::from(self.timestamp)),
            ("timestamp_iso", Value::from(timestamp_iso)),
            ("channels", Value::from(self.channels.map(<[String]>::to_vec))),
            ("endpoint", Value::from_object(endpoint)),
        ]))
    }
}

fn json_to_value(json: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => items.iter().map(json_to_value).collect(),
        Json::Object(map) => {
            Value::from_object(map.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect::<BTreeMap<_, _>>())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    /// One message to one endpoint, as the dispatcher would render it.
    struct Message {
        payload: serde_json::Value,
        metadata: BTreeMap<String, String>,
        channels: Vec<String>,
    }

    impl Message {
        fn new(payload: serde_json::Value) -> Self {
            Message {
                payload,
                metadata: BTreeMap::from([("team".to_owned(), "billing".to_owned())]),
                channels: vec!["eu".to_owned(), "orders".to_owned()],
            }
        }

        fn ctx(&self) -> RenderContext<'_> {
            RenderContext {
                payload: &self.payload,
                event_type: "order.created",
                msg_id: "msg_2b1",
                event_id: Some("evt-7"),
                timestamp: 1_700_000_000,
                channels: Some(&self.channels),
                endpoint: EndpointVars {
                    id: "ep_9x",
                    uid: None,
                    url: "https://hooks.example.com/in",
                    metadata: &self.metadata,
                },
            }
        }
    }

    fn render_with(
        source: &str,
        format: Format,
        payload: serde_json::Value,
        limits: &Limits,
    ) -> Result<String, TemplateError> {
        let template = Template::compile(source, format)?;
        let body = template.render(&Message::new(payload).ctx(), limits)?;
        Ok(String::from_utf8(body).expect("templates write UTF-8"))
    }

    fn render(source: &str, format: Format, payload: serde_json::Value) -> Result<String, TemplateError> {
        render_with(source, format, payload, &Limits::default())
    }

    fn order() -> serde_json::Value {
        json!({
            "id": "ord_1",
            "customer": {"name": "Zoë \"Z\" <Smith>", "vip": true},
            "items": [{"sku": "A-1", "qty": 2}, {"sku": "B&2", "qty": 1}],
            "note": null,
            "total": 31.5
        })
    }

    #[test]
    fn formats_round_trip_their_names() {
        for (name, format, content_type) in [
            ("json", Format::Json, "application/json"),
            ("xml", Format::Xml, "application/xml"),
            ("form", Format::Form, "application/x-www-form-urlencoded"),
            ("text", Format::Text, "text/plain; charset=utf-8"),
        ] {
            assert_eq!(Format::parse(name), Some(format));
            assert_eq!(format.as_str(), name);
            assert_eq!(format.content_type(), content_type);
            assert_eq!(serde_json::to_value(format).unwrap(), json!(name));
        }
        assert_eq!(Format::parse("JSON"), None);
        assert_eq!(Format::default(), Format::Json);
    }

    #[test]
    fn json_renders_a_slack_message() {
        let source = r#"
{
  "text": {{ "New order " ~ payload.id }},
  "blocks": [
    {"type": "section", "text": {"type": "mrkdwn", "text": {{ "*" ~ payload.customer.name ~ "* ordered" }}}},
    {% for item in payload["items"] %}
    {"type": "context", "elements": [{"type": "plain_text", "text": {{ item.sku ~ " x" ~ item.qty }}}]},
    {% endfor %}
    {"type": "context", "elements": [{"type": "plain_text", "text": {{ event_type }}}]}
  ],
  "vip": {{ payload.customer.vip }},
  "note": {{ payload.note }},
  "total": {{ payload.total }}
}
"#;
        let body = render(source, Format::Json, order()).unwrap();
        assert!(body.starts_with('{') && body.ends_with('}'), "trimmed: {body:?}");
        let slack: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(slack["text"], "New order ord_1");
        assert_eq!(slack["blocks"][0]["text"]["text"], "*Zoë \"Z\" <Smith>* ordered");
        assert_eq!(slack["blocks"][2]["elements"][0]["text"], "B&2 x1");
        assert_eq!(slack["blocks"][3]["elements"][0]["text"], "order.created");
        assert_eq!(slack["vip"], true);
        assert_eq!(slack["note"], serde_json::Value::Null);
        assert_eq!(slack["total"], 31.5);
    }

    #[test]
    fn json_escapes_quotes_and_newlines_in_payload_strings() {
        let payload = json!({"msg": "say \"hi\"\nand \\ leave</script>", "tab": "\t"});
        let body = render(
            r#"{"text": {{ payload.msg }}, "t": {{ payload.tab }}, "all": {{ payload }}}"#,
            Format::Json,
            payload.clone(),
        )
        .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["text"], payload["msg"]);
        assert_eq!(parsed["t"], "\t");
        assert_eq!(parsed["all"], payload);
        assert!(!body.contains('\n'), "a newline in a value stays escaped: {body}");
    }

    #[test]
    fn json_output_that_is_not_json_is_refused() {
        // A value put inside quotes by hand is written quoted a second time.
        let err = render("{\n  \"text\": \"Hello {{ payload.id }}\"\n}", Format::Json, order()).unwrap_err();
        assert_eq!((err.line, err.column), (None, None));
        assert!(
            err.message.starts_with("the output is not valid JSON: expected `,` or `}`")
                && err.message.ends_with("(line 2, column 19 of the output)"),
            "{}",
            err.message
        );
        let err = render("{% if false %}{}{% endif %}", Format::Json, order()).unwrap_err();
        assert!(err.message.contains("EOF while parsing a value"), "{}", err.message);
    }

    #[test]
    fn xml_renders_an_order_with_toxml() {
        let source = "\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{{ payload|toxml(root=\"order\") }}\n";
        let body = render(source, Format::Xml, order()).unwrap();
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<order>\
             <customer><name>Zoë &quot;Z&quot; &lt;Smith&gt;</name><vip>true</vip></customer>\
             <id>ord_1</id>\
             <items><qty>2</qty><sku>A-1</sku></items><items><qty>1</qty><sku>B&amp;2</sku></items>\
             <note/><total>31.5</total></order>"
        );
    }

    #[test]
    fn toxml_names_list_items_and_repairs_element_names() {
        let payload = json!({"1st": "a", "a b:c": [[1, 2], 3], "ok_name-1.x": "\u{1}bell"});
        let body = render("{{ payload|toxml }}", Format::Xml, payload).unwrap();
        assert_eq!(
            body,
            "<root><_1st>a</_1st><a_b_c><item>1</item><item>2</item></a_b_c><a_b_c>3</a_b_c>\
             <ok_name-1.x>\u{FFFD}bell</ok_name-1.x></root>"
        );
        let body = render("{{ [1, 2]|toxml('tags') }}", Format::Xml, json!(null)).unwrap();
        assert_eq!(body, "<tags><item>1</item><item>2</item></tags>");
        let err = render("{{ 1|toxml(rot='x') }}", Format::Xml, json!(null)).unwrap_err();
        assert!(err.message.contains("rot"), "{}", err.message);
    }

    #[test]
    fn xml_escapes_values() {
        let body =
            render("<note by=\"{{ payload.customer.name }}\">{{ payload.items[1].sku }}</note>", Format::Xml, order())
                .unwrap();
        assert_eq!(body, "<note by=\"Zoë &quot;Z&quot; &lt;Smith&gt;\">B&amp;2</note>");
    }

    #[test]
    fn form_encodes_values_and_flattens_with_toform() {
        let source = "order={{ payload.id }}&customer={{ payload.customer.name }}&vip={{ payload.customer.vip }}&note={{ payload.note }}";
        let body = render(source, Format::Form, order()).unwrap();
        assert_eq!(body, "order=ord_1&customer=Zo%C3%AB%20%22Z%22%20%3CSmith%3E&vip=true&note=");

        let body = render("{{ payload|toform }}", Format::Form, order()).unwrap();
        assert_eq!(
            body,
            "customer[name]=Zo%C3%AB%20%22Z%22%20%3CSmith%3E&customer[vip]=true&id=ord_1\
             &items[][qty]=2&items[][sku]=A-1&items[][qty]=1&items[][sku]=B%262&note=&total=31.5"
        );
        // Neither the filter's output nor `urlencode`'s is encoded twice.
        let body = render("q={{ 'x y'|urlencode }}&{{ {'a b': 1}|toform }}", Format::Form, json!(null)).unwrap();
        assert_eq!(body, "q=x%20y&a%20b=1");
        let err = render("{{ [1]|toform }}", Format::Form, json!(null)).unwrap_err();
        assert!(err.message.contains("toform expects a map"), "{}", err.message);
    }

    #[test]
    fn text_is_written_as_it_is() {
        let body = render(
            "[{{ event_type }}] {{ payload.customer.name }} & co: {{ payload.customer.vip }}\n",
            Format::Text,
            order(),
        )
        .unwrap();
        assert_eq!(body, "[order.created] Zoë \"Z\" <Smith> & co: true");
        let body = render("{{ payload|toxml }} {{ {'a': 1}|toform }}", Format::Text, json!({"b": "<"})).unwrap();
        assert_eq!(body, "<root><b>&lt;</b></root> a=1");
    }

    #[test]
    fn lazy_lists_from_builtin_filters_are_written_whole() {
        // Walking a value to charge for it must not use it up.
        let source = "{\"skus\": {{ payload['items']|map(attribute='sku') }}, \"big\": \
                      {{ payload['items']|selectattr('qty', 'gt', 1)|tojson }}, \"n\": {{ range(3)|list }}}";
        let body = render(source, Format::Json, order()).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, json!({"skus": ["A-1", "B&2"], "big": [{"qty": 2, "sku": "A-1"}], "n": [0, 1, 2]}));
    }

    #[test]
    fn markup_filters_give_strings_in_json() {
        let body =
            render("{\"xml\": {{ payload|toxml }}, \"form\": {{ payload|toform }}}", Format::Json, json!({"a": "x y"}))
                .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, json!({"xml": "<root><a>x y</a></root>", "form": "a=x%20y"}));
    }

    #[test]
    fn every_variable_is_available() {
        let source = "{{ event_type }} {{ eventType }} {{ msg_id }} {{ msgId }} {{ event_id }} {{ timestamp }} \
                      {{ timestamp_iso }} {{ channels|join(',') }} {{ endpoint.id }} [{{ endpoint.uid }}] \
                      {{ endpoint.url }} {{ endpoint.metadata.team }}";
        let body = render(source, Format::Text, json!({})).unwrap();
        assert_eq!(
            body,
            "order.created order.created msg_2b1 msg_2b1 evt-7 1700000000 2023-11-14T22:13:20Z eu,orders \
             ep_9x [] https://hooks.example.com/in billing"
        );
    }

    #[test]
    fn undefined_values_are_lenient_until_looked_into() {
        assert_eq!(render("{\"x\": {{ payload.missing }}}", Format::Json, json!({})).unwrap(), "{\"x\": null}");
        assert_eq!(
            render("[{{ payload.missing }}]{% for x in nope %}x{% endfor %}", Format::Text, json!({})).unwrap(),
            "[]"
        );
        let err = render("{{ payload.missing.name }}", Format::Text, json!({})).unwrap_err();
        assert_eq!((err.line, err.column), (Some(1), Some(11)));
        assert!(err.message.starts_with("undefined value"), "{}", err.message);
    }

    #[test]
    fn syntax_errors_point_at_line_and_column() {
        let err =
            Template::compile("{\n  \"a\": {{ payload.id }},\n  \"b\": {{ payload.x }\n}", Format::Json).unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(21)));
        assert_eq!(err.message, "syntax error: unexpected `}`, expected end of variable block");
        assert_eq!(err.to_string(), "line 3, column 21: syntax error: unexpected `}`, expected end of variable block");
        // Columns count characters, not bytes.
        let err = Template::compile("é {% if %}", Format::Text).unwrap_err();
        assert_eq!((err.line, err.column), (Some(1), Some(9)));
    }

    #[test]
    fn unknown_filters_are_named_with_their_place() {
        let err = render("<a>\n  {{ payload|toxm }}</a>", Format::Xml, json!({})).unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(14)));
        assert_eq!(err.to_string(), "line 2, column 14: unknown filter `toxm`");
        let err = render("{{ nope() }}{% if 1 is odd_ish %}{% endif %}", Format::Text, json!({})).unwrap_err();
        assert_eq!(err.to_string(), "line 1, column 4: unknown function `nope`");
        let err = render("{% if 1 is odd_ish %}{% endif %}", Format::Text, json!({})).unwrap_err();
        assert_eq!(err.to_string(), "line 1, column 12: unknown test `odd_ish`");
    }

    #[test]
    fn other_templates_cannot_be_loaded() {
        for (source, statement) in [
            ("{% include 'secrets' %}", "include"),
            ("{% import 'macros' as m %}", "import"),
            ("{% from 'macros' import m %}", "from"),
            ("x\n{% extends 'base' %}", "extends"),
        ] {
            let err = Template::compile(source, Format::Text).unwrap_err();
            assert_eq!(
                err.message,
                format!("`{statement}` is not available: a template cannot load or extend other templates")
            );
            assert!(err.line.is_some() && err.column.is_some(), "{err:?}");
        }
    }

    #[test]
    fn endless_loops_run_out_of_fuel_quickly() {
        let started = Instant::now();
        let err = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
            Format::Text,
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err.message, "the template ran out of fuel (more than 200000 steps)");
        assert_eq!(err.line, Some(1));
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

        let small = Limits { fuel: 50, ..Limits::default() };
        let err =
            render_with("{% for i in range(100) %}{{ i }}{% endfor %}", Format::Text, json!({}), &small).unwrap_err();
        assert_eq!(err.message, "the template ran out of fuel (more than 50 steps)");
    }

    #[test]
    fn writing_out_shared_lists_is_paid_for() {
        // 100 × 100 × 100 × 100 items, built in a few steps, written out whole.
        let build = "{% set a = [1] * 100 %}{% set b = [a] * 100 %}{% set c = [b] * 100 %}{% set d = [c] * 100 %}";
        for (write, format) in [
            ("{{ d }}", Format::Json),
            ("{{ d }}", Format::Text),
            ("{{ d|tojson }}", Format::Text),
            ("{{ d|string }}", Format::Text),
            ("{{ d|toxml }}", Format::Xml),
            ("{{ {'d': d}|toform }}", Format::Form),
        ] {
            let started = Instant::now();
            let err = render(&format!("{build}{write}"), format, json!({})).unwrap_err();
            assert!(err.message.contains("ran out of fuel"), "{write}: {}", err.message);
            assert!(started.elapsed() < Duration::from_secs(2), "{write} took {:?}", started.elapsed());
        }
    }

    #[test]
    fn output_is_limited() {
        let limits = Limits { max_output: 1000, ..Limits::default() };
        let err = render_with("{% for i in range(2000) %}x{% endfor %}", Format::Text, json!({}), &limits).unwrap_err();
        assert_eq!(err.describe(), "the output is larger than 1000 bytes");
        let body = render_with("{% for i in range(1000) %}x{% endfor %}", Format::Text, json!({}), &limits).unwrap();
        assert_eq!(body.len(), 1000);
    }

    #[test]
    fn long_sources_are_refused() {
        let err = Template::compile(&"x".repeat(MAX_SOURCE_LEN + 1), Format::Text).unwrap_err();
        assert_eq!(err.to_string(), "the template is longer than 65536 bytes");
        assert!(Template::compile(&"x".repeat(MAX_SOURCE_LEN), Format::Text).is_ok());
    }
}
