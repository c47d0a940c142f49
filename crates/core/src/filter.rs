//! Endpoint filters: a small boolean language over a message's attributes and
//! its JSON payload, deciding at fan-out whether a message goes to an endpoint.
//!
//! ```text
//! eventType in ["invoice.paid", "invoice.failed"] and /data/amount gte 100
//! not (tags contains "test") or /data/customer/id exists
//! ```
//!
//! ```text
//! expr  := and ("or" and)*
//! and   := unary ("and" unary)*
//! unary := "not" unary | "(" expr ")" | field "exists" | field op value | field "in" "[" value ("," value)* "]"
//! op    := eq | ne | gt | gte | lt | lte | contains
//! field := /json/pointer (RFC 6901) | eventType | eventId | msgId | channels | tags
//! value := a JSON string, number, true, false or null
//! ```
//!
//! A filter is parsed and bounded when an endpoint is written (errors name the
//! character position), compiled once into a tree, and evaluated for every
//! message without allocating. A comparison with a missing field (a JSON Pointer
//! that does not resolve, an absent attribute) is false whatever the operator,
//! so `not (/x eq 1)` holds when `/x` is missing.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

/// Longest filter source, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Most comparisons in one filter.
pub const MAX_COMPARISONS: usize = 64;
/// Deepest nesting of `not` and parentheses.
pub const MAX_DEPTH: usize = 32;
/// Most values in one `in` list.
pub const MAX_IN_VALUES: usize = 100;
/// Longest string literal, in bytes once its escapes are decoded.
pub const MAX_STRING_LEN: usize = 1024;

/// Why a filter was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct FilterError {
    /// 0-based character (not byte) offset into the source.
    pub position: usize,
    pub message: String,
}

/// A parsed and compiled filter. It serializes as its source string and
/// deserializing parses, so it can live in a JSON column and is compiled on load.
#[derive(Clone)]
pub struct Filter {
    source: String,
    root: Node,
    reads_payload: bool,
}

/// What a filter is evaluated against: one message, borrowed.
pub struct FilterInput<'a> {
    pub event_type: &'a str,
    pub event_id: Option<&'a str>,
    pub msg_id: &'a str,
    /// `None` or empty: `channels` is missing.
    pub channels: Option<&'a [String]>,
    /// `None` or empty: `tags` is missing.
    pub tags: Option<&'a [String]>,
    /// The payload parsed, when the message has a JSON payload (None: every payload pointer is missing).
    pub payload: Option<&'a Value>,
}

impl Filter {
    /// Parses and compiles `source`, refusing it with the position of the first error.
    pub fn parse(source: &str) -> Result<Filter, FilterError> {
        let mut parser = Parser { src: source, pos: 0, peeked: None, comparisons: 0, depth: 0, reads_payload: false };
        let root = parser
            .filter()
            .map_err(|e| FilterError { position: source[..e.at].chars().count(), message: e.message })?;
        Ok(Filter { source: source.to_owned(), root, reads_payload: parser.reads_payload })
    }

    /// The filter as it was written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether any comparison reads the payload (so callers parse the payload only when needed).
    pub fn reads_payload(&self) -> bool {
        self.reads_payload
    }

    /// Whether the message goes to the endpoint.
    pub fn matches(&self, msg: &FilterInput<'_>) -> bool {
        self.root.eval(msg)
    }
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Filter {}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.source).finish()
    }
}

impl Serialize for Filter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Filter::parse(&source).map_err(serde::de::Error::custom)
    }
}

// ---- The compiled tree and its evaluation ----

#[derive(Clone)]
enum Node {
    Any(Vec<Node>),
    All(Vec<Node>),
    Not(Box<Node>),
    Test(Field, Test),
}

#[derive(Clone)]
enum Field {
    EventType,
    EventId,
    MsgId,
    Channels,
    Tags,
    /// A JSON Pointer, unescaped and split, with array indices parsed up front.
    Payload(Vec<PointerToken>),
}

#[derive(Clone)]
struct PointerToken {
    key: String,
    /// The key as an RFC 6901 array index (`0`, `12`; not `01` or `-`).
    index: Option<usize>,
}

/// Literals are scalars (string, number, bool, null); the parser makes nothing else.
#[derive(Clone)]
enum Test {
    Exists,
    Eq(Value),
    Ne(Value),
    Order(Bound, Value),
    Contains(Value),
    In(Vec<Value>),
}

#[derive(Clone, Copy)]
enum Bound {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A field's value in one message, borrowed from it.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Json(&'a Value),
    Str(&'a str),
    Strs(&'a [String]),
}

impl Node {
    fn eval(&self, msg: &FilterInput<'_>) -> bool {
        match self {
            Node::Any(nodes) => nodes.iter().any(|n| n.eval(msg)),
            Node::All(nodes) => nodes.iter().all(|n| n.eval(msg)),
            Node::Not(node) => !node.eval(msg),
            Node::Test(field, test) => field.resolve(msg).is_some_and(|subject| test.holds(subject)),
        }
    }
}

impl Field {
    /// The field's value, or `None` when it is missing.
    fn resolve<'a>(&self, msg: &FilterInput<'a>) -> Option<Subject<'a>> {
        let non_empty = |list: Option<&'a [String]>| list.filter(|l| !l.is_empty()).map(Subject::Strs);
        match self {
            Field::EventType => Some(Subject::Str(msg.event_type)),
            Field::EventId => msg.event_id.map(Subject::Str),
            Field::MsgId => Some(Subject::Str(msg.msg_id)),
            Field::Channels => non_empty(msg.channels),
            Field::Tags => non_empty(msg.tags),
            Field::Payload(tokens) => tokens
                .iter()
                .try_fold(msg.payload?, |value, token| match value {
                    Value::Object(map) => map.get(&token.key),
                    Value::Array(items) => items.get(token.index?),
                    _ => None,
                })
                .map(Subject::Json),
        }
    }
}

impl Test {
    fn holds(&self, subject: Subject<'_>) -> bool {
        match self {
            Test::Exists => true,
            Test::Eq(lit) => subject.equals(lit),
            Test::Ne(lit) => !subject.equals(lit),
            Test::Order(bound, lit) => subject.order(lit).is_some_and(|o| match bound {
                Bound::Gt => o == Ordering::Greater,
                Bound::Gte => o != Ordering::Less,
                Bound::Lt => o == Ordering::Less,
                Bound::Lte => o != Ordering::Greater,
            }),
            Test::Contains(lit) => subject.any_element(|e| e.equals(lit)).unwrap_or_else(
                || matches!((subject.text(), lit.as_str()), (Some(hay), Some(needle)) if hay.contains(needle)),
            ),
            Test::In(list) => subject
                .any_element(|e| list.iter().any(|lit| e.equals(lit)))
                .unwrap_or_else(|| list.iter().any(|lit| subject.equals(lit))),
        }
    }
}

impl<'a> Subject<'a> {
    /// JSON equality with a scalar literal; numbers compare by value (`1` equals `1.0`).
    fn equals(self, lit: &Value) -> bool {
        match (self, lit) {
            (Subject::Json(Value::Number(a)), Value::Number(b)) => compare_numbers(a, b) == Some(Ordering::Equal),
            (Subject::Json(value), _) => value == lit,
            (Subject::Str(s), _) => lit.as_str() == Some(s),
            (Subject::Strs(_), _) => false,
        }
    }

    /// Numbers against numbers, strings against strings (by bytes); else unordered.
    fn order(self, lit: &Value) -> Option<Ordering> {
        match (self, lit) {
            (Subject::Json(Value::Number(a)), Value::Number(b)) => compare_numbers(a, b),
            (_, Value::String(b)) => Some(self.text()?.cmp(b.as_str())),
            _ => None,
        }
    }

    fn text(self) -> Option<&'a str> {
        match self {
            Subject::Json(Value::String(s)) => Some(s),
            Subject::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether `test` holds for any element, or `None` when this is not an array.
    fn any_element(self, test: impl Fn(Subject<'a>) -> bool) -> Option<bool> {
        match self {
            Subject::Json(Value::Array(items)) => Some(items.iter().any(|i| test(Subject::Json(i)))),
            Subject::Strs(items) => Some(items.iter().any(|i| test(Subject::Str(i)))),
            _ => None,
        }
    }
}

/// Integers compare exactly (a u64 beyond 2^53 stays itself); anything else as f64.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (int(a), int(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

// ---- Parsing ----

const KEYWORDS: &[&str] =
    &["and", "or", "not", "eq", "ne", "gt", "gte", "lt", "lte", "contains", "in", "exists", "true", "false", "null"];
const FIELD_HELP: &str =
    "a field is a JSON Pointer starting with / or one of eventType, eventId, msgId, channels, tags";
const OPERATOR_HELP: &str = "expected an operator (eq, ne, gt, gte, lt, lte, contains, in, exists)";
const VALUE_HELP: &str = "expected a value (a JSON string, number, true, false or null)";

/// A refusal at a byte offset; [`Filter::parse`] turns it into a character position.
struct Syntax {
    at: usize,
    message: String,
}

impl Syntax {
    fn new(at: usize, message: impl Into<String>) -> Self {
        Syntax { at, message: message.into() }
    }
}

/// A token spans `src[at..end]`.
struct Token {
    at: usize,
    end: usize,
    kind: Kind,
}

enum Kind {
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    /// A string literal, decoded.
    Str(String),
    Pointer,
    /// Anything else: a keyword, an attribute, a number, or a mistake.
    Word,
    End,
}

/// A recursive-descent parser that lexes lazily, so the first error in reading
/// order is the one reported.
struct Parser<'s> {
    src: &'s str,
    /// Byte offset of the next unread character.
    pos: usize,
    peeked: Option<Token>,
    comparisons: usize,
    depth: usize,
    reads_payload: bool,
}

impl<'s> Parser<'s> {
    fn filter(&mut self) -> Result<Node, Syntax> {
        if self.src.len() > MAX_FILTER_LEN {
            let at = (0..=MAX_FILTER_LEN).rev().find(|&i| self.src.is_char_boundary(i)).unwrap_or(0);
            let message = format!("the filter is {} bytes long; at most {MAX_FILTER_LEN} are allowed", self.src.len());
            return Err(Syntax::new(at, message));
        }
        if self.src.trim().is_empty() {
            return Err(Syntax::new(0, "the filter is empty"));
        }
        let root = self.expr()?;
        let tok = self.next()?;
        match tok.kind {
            Kind::End => Ok(root),
            Kind::Close => Err(Syntax::new(tok.at, "unexpected \")\"")),
            _ => Err(Syntax::new(
                tok.at,
                format!("expected end of filter (or \"and\", \"or\"), found {}", self.describe(&tok)),
            )),
        }
    }

    /// `or := and ("or" and)*`
    fn expr(&mut self) -> Result<Node, Syntax> {
        let mut any = vec![self.and()?];
        while self.eat_word("or")? {
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 { any.swap_remove(0) } else { Node::Any(any) })
    }

    /// `and := unary ("and" unary)*`
    fn and(&mut self) -> Result<Node, Syntax> {
        let mut all = vec![self.unary()?];
        while self.eat_word("and")? {
            all.push(self.unary()?);
        }
        Ok(if all.len() == 1 { all.swap_remove(0) } else { Node::All(all) })
    }

    /// `unary := "not" unary | "(" expr ")" | cmp`
    fn unary(&mut self) -> Result<Node, Syntax> {
        let tok = self.next()?;
        let text = self.text(&tok);
        match tok.kind {
            Kind::Word if text == "not" => {
                self.enter(&tok)?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Node::Not(Box::new(inner)))
            }
            Kind::Open => {
                self.enter(&tok)?;
                let inner = self.expr()?;
                let close = self.next()?;
                if !matches!(close.kind, Kind::Close) {
                    let opened = self.src[..tok.at].chars().count();
                    let found = self.describe(&close);
                    let message = format!("expected \")\" to close the \"(\" at position {opened}, found {found}");
                    return Err(Syntax::new(close.at, message));
                }
                self.depth -= 1;
                Ok(inner)
            }
            Kind::Pointer => {
                let field = self.pointer(&tok)?;
                self.comparison(&tok, field)
            }
            Kind::Word if !KEYWORDS.contains(&text) => match attribute(text) {
                Some(field) => self.comparison(&tok, field),
                None => Err(Syntax::new(tok.at, format!("unknown field {}: {FIELD_HELP}", self.describe(&tok)))),
            },
            Kind::Close | Kind::CloseList | Kind::OpenList | Kind::Comma => {
                Err(Syntax::new(tok.at, format!("unexpected {}", self.describe(&tok))))
            }
            Kind::Word | Kind::Str(_) | Kind::End => {
                Err(Syntax::new(tok.at, format!("expected a field, \"not\" or \"(\", found {}", self.describe(&tok))))
            }
        }
    }

    /// One more level of `not` or parentheses, refused past [`MAX_DEPTH`].
    fn enter(&mut self, tok: &Token) -> Result<(), Syntax> {
        if self.depth == MAX_DEPTH {
            let message = format!("nesting is limited to {MAX_DEPTH} levels of \"not\" and parentheses");
            return Err(Syntax::new(tok.at, message));
        }
        self.depth += 1;
        Ok(())
    }

    /// `cmp := field "exists" | field op value | field "in" "[" value ("," value)* "]"`
    fn comparison(&mut self, field_tok: &Token, field: Field) -> Result<Node, Syntax> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            let message = format!("a filter may hold at most {MAX_COMPARISONS} comparisons");
            return Err(Syntax::new(field_tok.at, message));
        }
        let op = self.next()?;
        let name = if matches!(op.kind, Kind::Word) { self.text(&op) } else { "" };
        let test = match name {
            "exists" => Test::Exists,
            "eq" => Test::Eq(self.value()?),
            "ne" => Test::Ne(self.value()?),
            "gt" => Test::Order(Bound::Gt, self.value()?),
            "gte" => Test::Order(Bound::Gte, self.value()?),
            "lt" => Test::Order(Bound::Lt, self.value()?),
            "lte" => Test::Order(Bound::Lte, self.value()?),
            "contains" => Test::Contains(self.value()?),
            "in" => Test::In(self.list()?),
            _ => return Err(Syntax::new(op.at, format!("{OPERATOR_HELP} after {}", self.text(field_tok)))),
        };
        Ok(Node::Test(field, test))
    }

    fn list(&mut self) -> Result<Vec<Value>, Syntax> {
        let open = self.next()?;
        if !matches!(open.kind, Kind::OpenList) {
            return Err(Syntax::new(open.at, format!("expected \"[\" after in, found {}", self.describe(&open))));
        }
        let mut values = Vec::new();
        loop {
            let tok = self.next()?;
            if values.len() == MAX_IN_VALUES {
                let message = format!("an \"in\" list may hold at most {MAX_IN_VALUES} values");
                return Err(Syntax::new(tok.at, message));
            }
            values.push(self.literal(tok)?);
            let sep = self.next()?;
            match sep.kind {
                Kind::Comma => continue,
                Kind::CloseList => return Ok(values),
                _ => {
                    let message = format!("expected \",\" or \"]\" in the \"in\" list, found {}", self.describe(&sep));
                    return Err(Syntax::new(sep.at, message));
                }
            }
        }
    }

    fn value(&mut self) -> Result<Value, Syntax> {
        let tok = self.next()?;
        self.literal(tok)
    }

    /// `value := JSON string | number | true | false | null`
    fn literal(&self, tok: Token) -> Result<Value, Syntax> {
        let text = self.text(&tok);
        match tok.kind {
            Kind::Str(s) => Ok(Value::String(s)),
            Kind::Word => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Ok(Value::Null),
                _ if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => text
                    .parse::<Number>()
                    .map(Value::Number)
                    .map_err(|_| Syntax::new(tok.at, format!("invalid number {}", self.describe(&tok)))),
                _ => {
                    let message = format!("{VALUE_HELP}, found {}; strings need double quotes", self.describe(&tok));
                    Err(Syntax::new(tok.at, message))
                }
            },
            _ => Err(Syntax::new(tok.at, format!("{VALUE_HELP}, found {}", self.describe(&tok)))),
        }
    }

    /// Splits and unescapes a JSON Pointer (RFC 6901: `~1` is `/`, `~0` is `~`).
    fn pointer(&mut self, tok: &Token) -> Result<Field, Syntax> {
        let raw = self.text(tok);
        let bytes = raw.as_bytes();
        let bad_escape = (0..bytes.len()).find(|&i| bytes[i] == b'~' && !matches!(bytes.get(i + 1), Some(b'0' | b'1')));
        if let Some(i) = bad_escape {
            let message = "invalid JSON Pointer escape: \"~\" must be followed by 0 (for ~) or 1 (for /)";
            return Err(Syntax::new(tok.at + i, message));
        }
        self.reads_payload = true;
        let tokens = raw[1..]
            .split('/')
            .map(|segment| {
                let key = segment.replace("~1", "/").replace("~0", "~");
                let is_index = key.bytes().all(|b| b.is_ascii_digit()) && (key == "0" || !key.starts_with('0'));
                PointerToken { index: if is_index { key.parse().ok() } else { None }, key }
            })
            .collect();
        Ok(Field::Payload(tokens))
    }

    /// Takes the next word if it is `word`.
    fn eat_word(&mut self, word: &str) -> Result<bool, Syntax> {
        let tok = self.next()?;
        let found = matches!(tok.kind, Kind::Word) && self.text(&tok) == word;
        if !found {
            self.peeked = Some(tok);
        }
        Ok(found)
    }

    fn next(&mut self) -> Result<Token, Syntax> {
        match self.peeked.take() {
            Some(tok) => Ok(tok),
            None => self.lex(),
        }
    }

    fn lex(&mut self) -> Result<Token, Syntax> {
        let rest = &self.src[self.pos..];
        let at = self.pos + (rest.len() - rest.trim_start().len());
        let single = |kind| (kind, at + 1);
        // A pointer runs to whitespace, a parenthesis or a comma; a word also stops at brackets and quotes.
        let run = |stops: &str| {
            self.src[at..].find(|c: char| c.is_whitespace() || stops.contains(c)).map_or(self.src.len(), |i| at + i)
        };
        let (kind, end) = match self.src[at..].chars().next() {
            None => (Kind::End, at),
            Some('(') => single(Kind::Open),
            Some(')') => single(Kind::Close),
            Some('[') => single(Kind::OpenList),
            Some(']') => single(Kind::CloseList),
            Some(',') => single(Kind::Comma),
            Some('"') => self.string(at)?,
            Some('/') => (Kind::Pointer, run("(),")),
            Some(_) => (Kind::Word, run("()[],\"")),
        };
        self.pos = end;
        Ok(Token { at, end, kind })
    }

    /// A JSON string literal starting at the quote at `at`; returns it decoded and its end.
    fn string(&self, at: usize) -> Result<(Kind, usize), Syntax> {
        let body = at + 1;
        let mut chars = self.src[body..].char_indices();
        let mut out = String::new();
        let end = loop {
            let Some((i, c)) = chars.next() else { return Err(Syntax::new(at, "unterminated string")) };
            match c {
                '"' => break body + i + 1,
                '\\' => {
                    let Some((_, escape)) = chars.next() else { return Err(Syntax::new(at, "unterminated string")) };
                    out.push(match escape {
                        '"' | '\\' | '/' => escape,
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'u' => unicode_escape(&mut chars).ok_or_else(|| Syntax::new(body + i, BAD_UNICODE_ESCAPE))?,
                        _ => return Err(Syntax::new(body + i, format!("invalid escape \"\\{escape}\" in string"))),
                    });
                }
                c if c < ' ' => {
                    return Err(Syntax::new(body + i, "control character in string; escape it (\\n, \\t, \\u0000)"))
                }
                c => out.push(c),
            }
        };
        if out.len() > MAX_STRING_LEN {
            return Err(Syntax::new(at, format!("a string may be at most {MAX_STRING_LEN} bytes long")));
        }
        Ok((Kind::Str(out), end))
    }

    fn text(&self, tok: &Token) -> &'s str {
        &self.src[tok.at..tok.end]
    }

    /// The token as an error message names it, cut short when long.
    fn describe(&self, tok: &Token) -> String {
        let text = self.text(tok);
        match tok.kind {
            Kind::End => "the end of the filter".to_owned(),
            Kind::Str(_) => "a string".to_owned(),
            _ => match text.char_indices().nth(40) {
                Some((cut, _)) => format!("\"{}…\"", &text[..cut]),
                None => format!("\"{text}\""),
            },
        }
    }
}

const BAD_UNICODE_ESCAPE: &str = "invalid \\u escape: expected 4 hex digits (a surrogate pair for U+10000 and up)";

/// The four hex digits after `\u` (and a low surrogate after a high one).
fn unicode_escape(chars: &mut std::str::CharIndices<'_>) -> Option<char> {
    let hex4 = |chars: &mut std::str::CharIndices<'_>| {
        (0..4).try_fold(0u32, |acc, _| Some(acc * 16 + chars.next()?.1.to_digit(16)?))
    };
    let high = hex4(chars)?;
    if !(0xD800..0xDC00).contains(&high) {
        return char::from_u32(high);
    }
    if chars.next()?.1 != '\\' || chars.next()?.1 != 'u' {
        return None;
    }
    let low = hex4(chars)?;
    if !(0xDC00..0xE000).contains(&low) {
        return None;
    }
    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
}

fn attribute(name: &str) -> Option<Field> {
    Some(match name {
        "eventType" => Field::EventType,
        "eventId" => Field::EventId,
        "msgId" => Field::MsgId,
        "channels" => Field::Channels,
        "tags" => Field::Tags,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payload() -> Value {
        json!({"data": {
            "amount": 150, "price": 1.0, "currency": "EUR", "note": "paid in full", "flag": true, "none": null,
            "items": [{"sku": "A-1"}, {"sku": "B-2"}], "labels": ["vip", "new"], "a/b": 1, "m~n": 2,
            "big": u64::MAX,
        }})
    }

    fn channels() -> Vec<String> {
        vec!["eu".to_owned(), "billing".to_owned()]
    }

    fn message<'a>(channels: &'a [String], payload: &'a Value) -> FilterInput<'a> {
        FilterInput {
            event_type: "invoice.paid",
            event_id: Some("evt_1"),
            msg_id: "msg_1",
            channels: Some(channels),
            tags: None,
            payload: Some(payload),
        }
    }

    fn bare() -> FilterInput<'static> {
        FilterInput {
            event_type: "user.created",
            event_id: None,
            msg_id: "msg_2",
            channels: None,
            tags: None,
            payload: None,
        }
    }

    fn check(msg: &FilterInput<'_>, cases: &[(&str, bool)]) {
        for (source, expected) in cases {
            let filter = Filter::parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
            assert_eq!(filter.matches(msg), *expected, "{source:?}");
        }
    }

    #[test]
    fn operators_on_attributes() {
        let (channels, payload) = (channels(), payload());
        check(
            &message(&channels, &payload),
            &[
                (r#"eventType eq "invoice.paid""#, true),
                (r#"eventType ne "invoice.paid""#, false),
                (r#"eventType contains "paid""#, true),
                (r#"eventType in ["user.created", "invoice.paid"]"#, true),
                (r#"eventType gt "invoice""#, true),
                (r#"eventType lte "a""#, false),
                (r#"eventId eq "evt_1" and msgId eq "msg_1""#, true),
                (r#"channels contains "eu""#, true),
                (r#"channels in ["us", "billing"]"#, true),
                (r#"channels in ["us"]"#, false),
                (r#"channels eq "eu""#, false),
                ("tags exists", false),
                (r#"tags contains "test""#, false),
                (r#"not (tags contains "test")"#, true),
            ],
        );
        check(
            &bare(),
            &[
                ("eventId exists", false),
                (r#"eventId ne "evt_1""#, false),
                ("not eventId exists", true),
                ("channels exists", false),
                ("/data exists", false),
                ("not /data exists", true),
            ],
        );
        let empty: Vec<String> = Vec::new();
        check(&FilterInput { channels: Some(&empty), ..bare() }, &[("channels exists", false)]);
    }

    #[test]
    fn operators_on_payload_fields() {
        let (channels, payload) = (channels(), payload());
        check(
            &message(&channels, &payload),
            &[
                ("/data/amount eq 150", true),
                ("/data/amount eq 150.0", true),
                ("/data/amount eq 1.5e2", true),
                ("/data/price eq 1", true),
                ("/data/amount ne 150", false),
                ("/data/amount gt 100 and /data/amount gte 150 and /data/amount lte 150", true),
                ("/data/amount lt 150", false),
                (r#"/data/amount gt "100""#, false),
                (r#"/data/amount eq "150""#, false),
                (r#"/data/currency gte "EUR" and /data/currency lt "a""#, true),
                (r#"/data/currency gt "EUR""#, false),
                (r#"/data/note contains "in full""#, true),
                (r#"/data/labels contains "vip""#, true),
                (r#"/data/labels in ["x", "new"]"#, true),
                ("/data/amount in [1, 150.0]", true),
                // Integers compare exactly, even where f64 would round them together.
                ("/data/big gt 18446744073709551614", true),
                ("/data/big eq 18446744073709551614", false),
                ("/data/flag eq true and /data/none eq null and /data/none exists", true),
                (r#"/data/items/0/sku eq "A-1" and /data/items/1/sku eq "B-2""#, true),
                ("/data/items/2/sku exists", false),
                ("/data/items/01/sku exists", false),
                ("/data/a~1b eq 1 and /data/m~0n eq 2", true),
                ("/data/missing exists", false),
                ("/data/missing ne 1", false),
                ("/data/missing lt 1", false),
                ("not (/data/missing eq 1)", true),
            ],
        );
    }

    #[test]
    fn precedence_not_and_parentheses() {
        let (channels, payload) = (channels(), payload());
        check(
            &message(&channels, &payload),
            &[
                // `a or b and c` is `a or (b and c)`.
                ("eventType exists or /data/flag eq true and /data/amount lt 0", true),
                ("(eventType exists or /data/flag eq true) and /data/amount lt 0", false),
                // `not` binds tighter than `and`.
                ("not /data/flag eq false and /data/amount gt 0", true),
                ("not (/data/flag eq true and /data/amount gt 0)", false),
                ("not not eventType exists", true),
                ("((eventType exists))", true),
                // Whitespace is needed only between words.
                (r#"not(tags exists)and(eventType in["invoice.paid"])or(eventType eq"x")"#, true),
            ],
        );
    }

    #[test]
    fn reads_payload_only_with_a_pointer() {
        assert!(!Filter::parse(r#"eventType eq "a" or tags exists"#).unwrap().reads_payload());
        assert!(Filter::parse("eventType exists or /x exists").unwrap().reads_payload());
    }

    #[test]
    fn errors_name_the_position() {
        let cases = [
            (
                "/data/amount 100",
                13,
                "expected an operator (eq, ne, gt, gte, lt, lte, contains, in, exists) after /data/amount",
            ),
            (r#"evenType eq "x""#, 0, r#"unknown field "evenType": a field is a JSON Pointer"#),
            (r#"eventType eq "abc"#, 13, "unterminated string"),
            ("eventType eq", 12, "expected a value (a JSON string, number, true, false or null)"),
            ("eventType eq user", 13, "strings need double quotes"),
            ("(eventType exists))", 18, r#"unexpected ")""#),
            ("eventType exists /x exists", 17, "expected end of filter"),
            ("(eventType exists", 17, r#"expected ")" to close the "(" at position 0"#),
            ("eventType in [1, 2", 18, r#"expected "," or "]""#),
            ("eventType in 1", 13, r#"expected "[""#),
            ("eventType in []", 14, "expected a value"),
            ("/a~2 exists", 2, "invalid JSON Pointer escape"),
            (r#"eventType eq "\q""#, 14, r#"invalid escape "\q""#),
            (r#"eventType eq "\ud800""#, 14, "invalid \\u escape"),
            ("eventType eq \"a\tb\"", 15, "control character in string"),
            ("/x eq 01", 6, r#"invalid number "01""#),
            ("/x eq 1.", 6, "invalid number"),
            ("/é eq é", 6, "expected a value"),
            ("and /x exists", 0, r#"expected a field, "not" or "(", found "and""#),
            ("/x exists and", 13, "found the end of the filter"),
            ("", 0, "the filter is empty"),
            ("   ", 0, "the filter is empty"),
        ];
        for (source, position, message) in cases {
            let err = Filter::parse(source).expect_err(source);
            assert_eq!(err.position, position, "{source:?}: {err}");
            assert!(err.message.contains(message), "{source:?}: {err}");
        }
    }

    #[test]
    fn string_escapes_decode() {
        let f = Filter::parse(r#"eventType eq "a\"b\\c\u00e9\ud83d\ude00""#).unwrap();
        assert!(f.matches(&FilterInput { event_type: "a\"b\\cé😀", ..bare() }));
    }

    #[test]
    fn every_bound_is_enforced() {
        let refused = |source: &str| Filter::parse(source).expect_err("over the limit");

        let longest = format!("/{} exists", "a".repeat(MAX_FILTER_LEN - 8));
        assert_eq!(longest.len(), MAX_FILTER_LEN);
        assert!(Filter::parse(&longest).is_ok());
        let err = refused(&format!("/{} exists", "é".repeat(MAX_FILTER_LEN)));
        assert_eq!(err.position, (MAX_FILTER_LEN - 1) / 2 + 1);
        assert!(err.message.contains("at most 4096"), "{err}");

        let comparisons = |n| vec!["/x exists"; n].join(" or ");
        assert!(Filter::parse(&comparisons(MAX_COMPARISONS)).is_ok());
        let err = refused(&comparisons(MAX_COMPARISONS + 1));
        assert_eq!((err.position, err.message.as_str()), (64 * 13, "a filter may hold at most 64 comparisons"));

        assert!(Filter::parse(&format!("{}/x exists", "not ".repeat(MAX_DEPTH))).is_ok());
        let err = refused(&format!("{}/x exists", "not ".repeat(MAX_DEPTH + 1)));
        assert_eq!(err.position, 32 * 4);
        assert!(err.message.contains("limited to 32 levels"), "{err}");
        let parens = |n| format!("{}/x exists{}", "(".repeat(n), ")".repeat(n));
        assert!(Filter::parse(&parens(MAX_DEPTH)).is_ok());
        assert_eq!(refused(&parens(MAX_DEPTH + 1)).position, 32);

        let list = |n: usize| format!("/x in [{}]", (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert!(Filter::parse(&list(MAX_IN_VALUES)).is_ok());
        let (source, err) = (list(MAX_IN_VALUES + 1), refused(&list(MAX_IN_VALUES + 1)));
        assert_eq!(err.position, source.find(",100").unwrap() + 1);
        assert!(err.message.contains("at most 100 values"), "{err}");

        let string = |n| format!("eventType eq \"{}\"", "a".repeat(n));
        assert!(Filter::parse(&string(MAX_STRING_LEN)).is_ok());
        let err = refused(&string(MAX_STRING_LEN + 1));
        assert_eq!((err.position, err.message.as_str()), (13, "a string may be at most 1024 bytes long"));
    }

    #[test]
    fn serde_round_trip_as_the_source_string() {
        let filter = Filter::parse(r#"eventType eq "x""#).unwrap();
        let json = serde_json::to_string(&filter).unwrap();
        assert_eq!(json, r#""eventType eq \"x\"""#);
        assert_eq!(serde_json::from_str::<Filter>(&json).unwrap(), filter);
        assert_eq!(format!("{filter:?}"), r#"Filter("eventType eq \"x\"")"#);
        let err = serde_json::from_str::<Filter>(r#""eventType eq""#).unwrap_err();
        assert!(err.to_string().contains("at position 12"), "{err}");
    }

    /// xorshift64: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    #[rustfmt::skip]
    const FIELDS: &[&str] = &[
        "eventType", "eventId", "msgId", "channels", "tags", "/data/amount", "/data/items/0/sku", "/data/labels",
        "/data/a~1b", "/missing", "/data/note", "/",
    ];
    const OPS: &[&str] = &["eq", "ne", "gt", "gte", "lt", "lte", "contains"];
    const VALUES: &[&str] =
        &["1", "150.0", "-2.5e1", r#""vip""#, r#""invoice.paid""#, r#""\u00e9\n""#, "true", "false", "null", r#""""#];

    /// Parses `source`, checking what must hold for any input; returns whether it parsed.
    fn parse_checked(source: &str, samples: &[FilterInput<'_>]) -> bool {
        match Filter::parse(source) {
            Err(err) => {
                assert!(err.position <= source.chars().count(), "{source:?}: {err}");
                false
            }
            Ok(filter) => {
                let again = Filter::parse(filter.source()).expect("a filter re-parses from its source");
                assert_eq!(again, filter);
                for msg in samples {
                    assert_eq!(filter.matches(msg), again.matches(msg), "{source:?}");
                }
                true
            }
        }
    }

    fn random_filter(rng: &mut Rng, depth: usize) -> String {
        match rng.below(if depth == 0 { 1 } else { 5 }) {
            0 => {
                let field = rng.pick(FIELDS);
                match rng.below(4) {
                    0 => format!("{field} exists"),
                    1 => {
                        let values: Vec<&str> = (0..=rng.below(3)).map(|_| rng.pick(VALUES)).collect();
                        format!("{field} in [{}]", values.join(", "))
                    }
                    _ => format!("{field} {} {}", rng.pick(OPS), rng.pick(VALUES)),
                }
            }
            1 => format!("not {}", random_filter(rng, depth - 1)),
            2 => format!("({})", random_filter(rng, depth - 1)),
            3 => format!("{} and {}", random_filter(rng, depth - 1), random_filter(rng, depth - 1)),
            _ => format!("{} or {}", random_filter(rng, depth - 1), random_filter(rng, depth - 1)),
        }
    }

    #[test]
    fn random_valid_filters_parse_and_not_negates() {
        let (channels, payload, other) = (channels(), payload(), json!([1, "a", null]));
        let samples = [message(&channels, &payload), bare(), FilterInput { payload: Some(&other), ..bare() }];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2_000 {
            let source = random_filter(&mut rng, 4);
            let filter = Filter::parse(&source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
            let negated = Filter::parse(&format!("not ({source})")).unwrap();
            for msg in &samples {
                assert_eq!(negated.matches(msg), !filter.matches(msg), "{source:?}");
            }
        }
    }

    #[test]
    fn fuzz_parse_never_panics() {
        let (channels, payload) = (channels(), payload());
        let samples = [message(&channels, &payload), bare()];
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);

        // Random sequences of grammar tokens and junk.
        #[rustfmt::skip]
        let pieces: &[&str] = &[
            "/", "/data", "/data/amount", "/items/0", "~0", "~1", "~", "eventType", "channels", "tags", "evenType",
            "tags exists", "/data/amount gt 1", "and", "or", "not", "eq", "ne", "gt", "lte", "contains", "in",
            "exists", "(", ")", "[", "]", ",", "\"", r#""x""#, r#""\u00e9""#, r#""\ud83d\ude00""#, r#""\ud83d""#,
            "\\", "\\u", "1", "-0", "1.5e3", "01", "1e400", "true", "null", " ", "\t", "\n", "é", "😀", "\u{0}",
            "x", ".",
        ];
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut source = String::new();
            for _ in 0..=rng.below(12) {
                source.push_str(rng.pick(pieces));
                if rng.below(2) == 0 {
                    source.push(' ');
                }
            }
            parsed += usize::from(parse_checked(&source, &samples));
        }
        assert!(parsed > 50, "too few random sequences parsed: {parsed}");

        // Valid filters with characters deleted, inserted and swapped.
        let junk =
            ['/', '~', '0', '1', '"', '\\', '(', ')', '[', ']', ',', ' ', 'a', 'e', 'n', 'o', 't', 'é', '😀', '-'];
        let mut parsed = 0;
        for _ in 0..10_000 {
            let mut chars: Vec<char> = random_filter(&mut rng, 3).chars().collect();
            for _ in 0..=rng.below(3) {
                let i = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 if i < chars.len() => drop(chars.remove(i)),
                    1 if i + 1 < chars.len() => chars.swap(i, i + 1),
                    _ => chars.insert(i, rng.pick(&junk)),
                }
            }
            parsed += usize::from(parse_checked(&chars.into_iter().collect::<String>(), &samples));
        }
        assert!(parsed > 1_000, "too few mutants parsed: {parsed}");
    }
}
