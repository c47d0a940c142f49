//! Svix-compatible JavaScript transformations: code that defines
//! `function handler(webhook) { ...; return webhook; }` and may change a
//! message's payload, method, URL and extra headers just before it is sent to
//! one endpoint, or cancel that send.
//!
//! The code runs on QuickJS with nothing but the language itself: no module
//! loader, no `std`/`os` modules, no fetch, no timers, so it cannot do I/O.
//! [`run`] gives every run a fresh runtime; [`run_warm`] keeps one sandbox per
//! key (an endpoint) and thread for the same code's next runs, as a warm
//! serverless function is kept, and starts over after any failure. Each
//! runtime is bounded in memory ([`Limits::memory_bytes`]), native stack
//! ([`MAX_STACK_BYTES`]) and wall time per run ([`Limits::time`]). Runs block
//! the calling thread: async callers use `spawn_blocking`.
//!
//! This module owns running the code and checking what it returned (method,
//! URL, header names and values, payload size). It does not decide whether
//! the endpoint may reach the returned URL: the sender's SSRF guard does.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::{context::EvalOptions, promise::PromiseState, Context, Ctx, Function, Persistent, Runtime, Value};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Longest code accepted, in characters (Svix's `maxLength`).
pub const MAX_CODE_LEN: usize = 51_200;
/// Shortest code accepted, in characters (Svix's `minLength`).
pub const MIN_CODE_LEN: usize = 10;
/// Native stack QuickJS may use before deep recursion throws a `RangeError`.
/// Well under the 2 MiB that tokio's blocking threads and test threads get,
/// so runaway recursion is a JavaScript error and never a stack overflow.
pub const MAX_STACK_BYTES: usize = 512 * 1024;

/// Headers a transformation may not set: they frame the request (the HTTP
/// client owns them) or carry hookd's signature and authentication, which a
/// receiver must be able to trust.
const RESERVED_HEADERS: [&str; 11] = [
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "authorization",
];

/// What one run may consume.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Heap the JavaScript runtime may allocate, the input webhook included.
    pub memory_bytes: usize,
    /// Wall time from the start of the run to the handler's result.
    pub time: Duration,
    /// Largest body the payload may serialize to, in bytes.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 16 * 1024 * 1024, time: Duration::from_millis(100), max_output: 1024 * 1024 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The code does not compile, or defines no `handler` function.
    #[error("invalid transformation: {0}")]
    Invalid(String),
    /// The code threw while running.
    #[error("the transformation threw: {0}")]
    Threw(String),
    #[error("the transformation ran longer than its {0:?} limit; make it do less work per message")]
    TimedOut(Duration),
    #[error("the transformation ran out of memory; make it build smaller values")]
    OutOfMemory,
    /// The handler returned something that cannot be sent.
    #[error("the transformation returned an unusable webhook: {0}")]
    BadResult(String),
}

/// What the handler receives, as the JavaScript object `webhook`
/// (keys in camelCase: `eventType`, `msgId`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookIn {
    /// `"POST"`.
    pub method: String,
    pub url: String,
    pub event_type: String,
    pub msg_id: String,
    pub channels: Option<Vec<String>>,
    /// A raw payload that is not JSON arrives as a string.
    pub payload: serde_json::Value,
    /// Extra request headers to add; starts empty.
    pub headers: BTreeMap<String, String>,
    /// The endpoint's transformation variables.
    pub variables: BTreeMap<String, String>,
}

/// What the send uses after the handler ran.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOut {
    /// `"POST"` or `"PUT"`.
    pub method: String,
    pub url: String,
    /// The payload as compact JSON, or a string payload's UTF-8 bytes as is.
    pub body: Vec<u8>,
    /// False when the payload was a string.
    pub body_is_json: bool,
    pub headers: BTreeMap<String, String>,
    /// True when this endpoint must not receive the message.
    pub cancel: bool,
}

/// Checks that `code` has an accepted length, compiles, and defines
/// `handler`: what is asked of code before it is stored. The top level of the
/// code runs, under the default limits.
pub fn check(code: &str) -> Result<(), TransformError> {
    let chars = code.chars().count();
    if !(MIN_CODE_LEN..=MAX_CODE_LEN).contains(&chars) {
        return Err(TransformError::Invalid(format!(
            "the code is {chars} characters long; it must be {MIN_CODE_LEN} to {MAX_CODE_LEN}"
        )));
    }
    let sandbox = Sandbox::new(&Limits::default())?;
    sandbox.context.with(|ctx| {
        sandbox.load_handler(&ctx, code).map(drop).map_err(|error| match error {
            // Code whose top level throws can never run: refuse it now.
            TransformError::Threw(message) => TransformError::Invalid(message),
            other => other,
        })
    })
}

/// Runs the transformation `code` on `input` and checks what it returned.
pub fn run(code: &str, input: &WebhookIn, limits: &Limits) -> Result<WebhookOut, TransformError> {
    let input_json = serde_json::to_string(input)
        .expect("a WebhookIn serializes: it holds strings, string-keyed maps and JSON values");
    let sandbox = Sandbox::new(limits)?;
    sandbox.context.with(|ctx| {
        let handler = sandbox.load_handler(&ctx, code)?;
        sandbox.call(&ctx, handler, input_json, input, limits)
    })
}

/// Sandboxes kept warm per thread, at most (past it the least recently used
/// one goes).
const MAX_WARM: usize = 64;
/// A sandbox holding more than this after a run is not kept warm, so warm
/// sandboxes take at most `MAX_WARM` times this per thread.
pub const MAX_WARM_BYTES: i64 = 2 * 1024 * 1024;

/// A sandbox whose code's top level ran: each run calls its handler.
/// (`handler` drops before `sandbox`, whose runtime it lives in.)
struct Warm {
    handler: Persistent<Function<'static>>,
    sandbox: Sandbox,
    code: String,
    memory_bytes: usize,
    /// When it last ran, in runs of this thread.
    used: u64,
}

thread_local! {
    static WARM: RefCell<HashMap<String, Warm>> = RefCell::new(HashMap::new());
    static RUNS: Cell<u64> = const { Cell::new(0) };
}

/// Drops every warm sandbox of this thread (after a panic, say).
pub fn forget_warm() {
    WARM.with(|warm| warm.borrow_mut().clear());
}

/// [`run`], in a sandbox kept for `key`'s next runs of the same code on this
/// thread: globals the code sets may still be there next time (or not: a
/// sandbox starts over after any failure, when the code changes, and when a
/// thread keeps too many). Each run has the whole time limit.
pub fn run_warm(key: &str, code: &str, input: &WebhookIn, limits: &Limits) -> Result<WebhookOut, TransformError> {
    let input_json = serde_json::to_string(input)
        .expect("a WebhookIn serializes: it holds strings, string-keyed maps and JSON values");
    WARM.with(|warm| {
        let mut warm = warm.borrow_mut();
        let fresh = warm.get(key).is_none_or(|w| w.code != code || w.memory_bytes != limits.memory_bytes);
        let now = RUNS.with(|runs| {
            runs.set(runs.get() + 1);
            runs.get()
        });
        if fresh {
            warm.remove(key);
            if warm.len() >= MAX_WARM {
                let oldest = warm.iter().min_by_key(|(_, w)| w.used).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    warm.remove(&k);
                }
            }
            let sandbox = Sandbox::new(limits)?;
            let handler =
                sandbox.context.with(|ctx| sandbox.load_handler(&ctx, code).map(|h| Persistent::save(&ctx, h)))?;
            warm.insert(
                key.to_string(),
                Warm { handler, sandbox, code: code.to_string(), memory_bytes: limits.memory_bytes, used: now },
            );
        }
        let w = warm.get_mut(key).expect("just made");
        w.used = now;
        // A new sandbox's clock started with it: its top level and its first
        // call share one limit, as in `run`.
        if !fresh {
            w.sandbox.arm(limits.time);
        }
        let out = w.sandbox.context.with(|ctx| {
            let handler = w.handler.clone().restore(&ctx).map_err(|_| TransformError::OutOfMemory)?;
            w.sandbox.call(&ctx, handler, input_json, input, limits)
        });
        if out.is_err() || w.sandbox.runtime.memory_usage().memory_used_size > MAX_WARM_BYTES {
            warm.remove(key);
        }
        out
    })
}

impl Sandbox {
    /// Gives the next run the whole time limit.
    fn arm(&self, time: Duration) {
        self.deadline.set(Instant::now() + time);
        self.interrupted.set(false);
    }

    /// Calls `handler` with the webhook and checks what it returned.
    fn call<'js>(
        &self,
        ctx: &Ctx<'js>,
        handler: Function<'js>,
        input_json: String,
        input: &WebhookIn,
        limits: &Limits,
    ) -> Result<WebhookOut, TransformError> {
        let webhook = ctx.json_parse(input_json).map_err(|error| self.failure(ctx, error, Stage::Handler))?;
        let returned: Value = handler.call((webhook,)).map_err(|error| self.failure(ctx, error, Stage::Handler))?;
        let returned = self.settle(ctx, returned)?;
        if !returned.is_object() || returned.is_array() || returned.is_function() {
            return Err(TransformError::BadResult(format!(
                "the handler returned {}; it must return the webhook object",
                type_name(&returned)
            )));
        }
        // Stringifying runs the code's own `toJSON` methods and getters, so it
        // stays inside the sandbox's limits.
        let json = ctx
            .json_stringify(returned)
            .and_then(|json| json.map(|json| json.to_string()).transpose())
            .map_err(|error| self.failure(ctx, error, Stage::Result))?
            .unwrap_or_default();
        read_returned(&json, input, limits)
    }
}

/// Which part of a run failed: decides how a JavaScript exception is reported.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// Compiling and running the top level of the code.
    TopLevel,
    /// Calling the handler (and settling its promise).
    Handler,
    /// Serializing what the handler returned.
    Result,
}

/// A fresh QuickJS runtime and context with the run's limits installed.
struct Sandbox {
    context: Context,
    runtime: Runtime,
    deadline: Rc<Cell<Instant>>,
    /// Set by the interrupt handler when it stops the code: the exception
    /// QuickJS raises then is an ordinary `InternalError`, so this is how a
    /// time-out is told apart from code that threw.
    interrupted: Rc<Cell<bool>>,
    time_limit: Duration,
}

impl Sandbox {
    fn new(limits: &Limits) -> Result<Self, TransformError> {
        let runtime = Runtime::new().map_err(|_| TransformError::OutOfMemory)?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(MAX_STACK_BYTES);
        let deadline = Rc::new(Cell::new(Instant::now() + limits.time));
        let interrupted = Rc::new(Cell::new(false));
        let flag = Rc::clone(&interrupted);
        let until = Rc::clone(&deadline);
        // QuickJS calls this every few thousand operations (and in regular
        // expression backtracking), so reading the clock here costs little.
        runtime.set_interrupt_handler(Some(Box::new(move || {
            let stop = Instant::now() >= until.get();
            if stop {
                flag.set(true);
            }
            stop
        })));
        // The full set of intrinsics is the language's built-ins only; I/O
        // lives in quickjs-libc's modules, which are never loaded.
        let context = Context::full(&runtime).map_err(|_| TransformError::OutOfMemory)?;
        context.with(|ctx| {
            ctx.eval::<(), _>(CONSOLE_PRELUDE).map_err(|error| Sandbox::failure_before_code(&ctx, error))?;
            install_helpers(&ctx).map_err(|error| Sandbox::failure_before_code(&ctx, error))
        })?;
        Ok(Sandbox { context, runtime, deadline, interrupted, time_limit: limits.time })
    }

    /// Runs the top level of `code` and returns its `handler` function.
    fn load_handler<'js>(&self, ctx: &Ctx<'js>, code: &str) -> Result<Function<'js>, TransformError> {
        // Sloppy mode, like a plain browser script, so handlers written for
        // Svix run unchanged.
        let mut options = EvalOptions::default();
        options.strict = false;
        ctx.eval_with_options::<(), _>(code, options).map_err(|error| self.failure(ctx, error, Stage::TopLevel))?;
        // Evaluated as a second script so `const handler = …` is found too:
        // top-level `let`/`const` are shared between scripts but are not
        // properties of the global object.
        let handler: Value = ctx
            .eval(r#"typeof handler === "function" ? handler : undefined"#)
            .map_err(|error| self.failure(ctx, error, Stage::TopLevel))?;
        handler
            .into_function()
            .ok_or_else(|| TransformError::Invalid("the code must define `function handler(webhook)`".into()))
    }

    /// Waits for the value an `async` handler promised, running queued jobs.
    fn settle<'js>(&self, ctx: &Ctx<'js>, returned: Value<'js>) -> Result<Value<'js>, TransformError> {
        let Some(promise) = returned.as_promise() else {
            return Ok(returned);
        };
        // Jobs that keep queueing jobs would loop here forever: watch the clock.
        while promise.state() == PromiseState::Pending {
            if self.interrupted.get() || Instant::now() >= self.deadline.get() {
                return Err(TransformError::TimedOut(self.time_limit));
            }
            if !ctx.execute_pending_job() {
                return Err(TransformError::BadResult(
                    "the handler's promise never settled (there are no timers or I/O to wait for)".into(),
                ));
            }
        }
        promise
            .result::<Value>()
            .expect("the promise is settled")
            .map_err(|error| self.failure(ctx, error, Stage::Handler))
    }

    /// Turns an engine error into what the caller is told.
    fn failure(&self, ctx: &Ctx<'_>, error: rquickjs::Error, stage: Stage) -> TransformError {
        if self.interrupted.get() {
            return TransformError::TimedOut(self.time_limit);
        }
        let thrown = match error {
            rquickjs::Error::Exception => Thrown::catch(ctx),
            rquickjs::Error::Allocation => return TransformError::OutOfMemory,
            rquickjs::Error::InvalidString(_) => {
                return TransformError::Invalid("the code contains a NUL character".into())
            }
            other => Thrown { summary: other.to_string(), at: None, was_null: false },
        };
        if thrown.is_out_of_memory() {
            return TransformError::OutOfMemory;
        }
        match (stage, thrown.at) {
            (Stage::TopLevel, Some(at)) if thrown.summary.starts_with("SyntaxError") => {
                TransformError::Invalid(format!("{} at line {}, column {}", thrown.summary, at.line, at.column))
            }
            (Stage::TopLevel, None) if thrown.summary.starts_with("SyntaxError") => {
                TransformError::Invalid(thrown.summary)
            }
            (Stage::TopLevel | Stage::Handler, Some(at)) => TransformError::Threw(format!("{} ({at})", thrown.summary)),
            (Stage::TopLevel | Stage::Handler, None) => TransformError::Threw(thrown.summary),
            (Stage::Result, _) => {
                TransformError::BadResult(format!("it cannot be serialized to JSON: {}", thrown.summary))
            }
        }
    }

    /// Failures while preparing the context, before any user code ran: only
    /// a memory limit too small for QuickJS's own built-ins gets here.
    fn failure_before_code(ctx: &Ctx<'_>, error: rquickjs::Error) -> TransformError {
        match error {
            rquickjs::Error::Exception if !Thrown::catch(ctx).is_out_of_memory() => {
                TransformError::Invalid("the sandbox could not be prepared".into())
            }
            _ => TransformError::OutOfMemory,
        }
    }
}

/// `console.log` and friends exist, because handlers call them, and discard
/// what they are given.
const CONSOLE_PRELUDE: &str = r#"
globalThis.console = (() => {
  const ignore = () => undefined;
  return { log: ignore, info: ignore, warn: ignore, error: ignore, debug: ignore, trace: ignore };
})();
"#;

/// `hookd.md5(text)`: the lowercase hex MD5 of the text's UTF-8 bytes, which
/// some receivers use as a key (Mailchimp's subscriber hash). Pure: no I/O.
fn install_helpers(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    use md5::Digest;
    let helpers = rquickjs::Object::new(ctx.clone())?;
    helpers
        .set("md5", Function::new(ctx.clone(), |text: String| format!("{:x}", md5::Md5::digest(text.as_bytes())))?)?;
    ctx.globals().set("hookd", helpers)
}

/// A JavaScript exception, described for a person.
struct Thrown {
    /// `String(thrown)`: `"TypeError: not a function"` for an error.
    summary: String,
    /// Where in the code it was thrown, from the error's stack.
    at: Option<CodeFrame>,
    /// `throw null`, or QuickJS failing to allocate an error.
    was_null: bool,
}

impl Thrown {
    fn catch(ctx: &Ctx<'_>) -> Self {
        let value = ctx.catch();
        let summary = value
            .get::<rquickjs::convert::Coerced<String>>()
            .map(|text| text.0)
            .unwrap_or_else(|_| format!("a thrown {}", type_name(&value)));
        let stack = value.as_object().and_then(|error| error.get::<_, Option<String>>("stack").ok().flatten());
        Thrown { summary, at: stack.as_deref().and_then(CodeFrame::first_in), was_null: value.is_null() }
    }

    /// QuickJS throws `InternalError: out of memory` at the limit, or `null`
    /// when even that error cannot be allocated (the usual case when many
    /// small objects fill the heap). Code that throws `null` itself is
    /// reported as out of memory too: nothing else tells the two apart.
    fn is_out_of_memory(&self) -> bool {
        self.was_null || self.summary.starts_with("InternalError: out of memory")
    }
}

/// One frame of a QuickJS stack that lies in the evaluated code.
struct CodeFrame {
    /// None at the top level.
    function: Option<String>,
    line: u32,
    column: u32,
}

impl CodeFrame {
    /// The innermost frame in the code; frames read `at handler (eval_script:3:20)`,
    /// `at <eval> (eval_script:5:1)`, or `at eval_script:2:14` for a syntax error.
    /// QuickJS records positions only at calls, throws and a few other
    /// operations: an error inside one (reading a property of `undefined`)
    /// points at the start of its function.
    fn first_in(stack: &str) -> Option<Self> {
        let (before, after) = stack.lines().find_map(|frame| frame.split_once("eval_script:"))?;
        let mut numbers = after.split(|c: char| !c.is_ascii_digit());
        let line = numbers.next()?.parse().ok()?;
        let column = numbers.next()?.parse().ok()?;
        let function = before
            .trim_start()
            .strip_prefix("at ")
            .and_then(|name| name.strip_suffix(" ("))
            .filter(|name| !name.starts_with('<'))
            .map(str::to_owned);
        Some(CodeFrame { function, line, column })
    }
}

impl std::fmt::Display for CodeFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(function) = &self.function {
            write!(f, "in {function}, ")?;
        }
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

fn type_name(value: &Value<'_>) -> &'static str {
    if value.is_array() {
        "an array"
    } else if value.is_null() {
        "null"
    } else if value.is_promise() {
        "a promise"
    } else {
        match value.type_of() {
            rquickjs::Type::Undefined | rquickjs::Type::Uninitialized => "undefined",
            rquickjs::Type::Bool => "a boolean",
            rquickjs::Type::Int | rquickjs::Type::Float => "a number",
            rquickjs::Type::String => "a string",
            rquickjs::Type::Symbol => "a symbol",
            rquickjs::Type::BigInt => "a bigint",
            rquickjs::Type::Function | rquickjs::Type::Constructor => "a function",
            _ => "an object",
        }
    }
}

/// The returned webhook as JSON. Fields the handler removed or set to `null`
/// keep the input's method and URL, no extra headers, and no cancel.
#[derive(Deserialize)]
struct Returned<'a> {
    method: Option<serde_json::Value>,
    url: Option<serde_json::Value>,
    headers: Option<serde_json::Value>,
    cancel: Option<serde_json::Value>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

fn read_returned(json: &str, input: &WebhookIn, limits: &Limits) -> Result<WebhookOut, TransformError> {
    let bad = |message: String| TransformError::BadResult(message);
    let returned: Returned<'_> =
        serde_json::from_str(json).map_err(|error| bad(format!("it is not a JSON object: {error}")))?;

    let method = match returned.method {
        None => input.method.clone(),
        Some(serde_json::Value::String(method)) if method.eq_ignore_ascii_case("POST") => "POST".into(),
        Some(serde_json::Value::String(method)) if method.eq_ignore_ascii_case("PUT") => "PUT".into(),
        Some(other) => return Err(bad(format!("method is {other}; it must be \"POST\" or \"PUT\""))),
    };
    let url = match returned.url {
        None => input.url.clone(),
        // Unchanged (a broker endpoint's redis:// or nats:// URL among them).
        Some(serde_json::Value::String(url)) if url == input.url => url,
        Some(serde_json::Value::String(url)) => check_url(url)?,
        Some(other) => return Err(bad(format!("url is {other}; it must be a string"))),
    };
    let headers = match returned.headers {
        None => BTreeMap::new(),
        Some(serde_json::Value::Object(headers)) => check_headers(headers)?,
        Some(other) => return Err(bad(format!("headers is {other}; it must be an object of header names to strings"))),
    };
    let cancel = match returned.cancel {
        None => false,
        Some(serde_json::Value::Bool(cancel)) => cancel,
        Some(other) => return Err(bad(format!("cancel is {other}; it must be true or false"))),
    };
    let payload = returned.payload.ok_or_else(|| {
        bad("payload is missing (undefined, null or a function); return the webhook with its payload".into())
    })?;
    let (body, body_is_json) = if payload.get().starts_with('"') {
        let text: String = serde_json::from_str(payload.get())
            .map_err(|_| bad("the payload string is not valid Unicode (it holds a lone surrogate)".into()))?;
        (text.into_bytes(), false)
    } else {
        (payload.get().as_bytes().to_vec(), true)
    };
    if body.len() > limits.max_output {
        return Err(bad(format!("the payload is {} bytes, more than the {} allowed", body.len(), limits.max_output)));
    }
    Ok(WebhookOut { method, url, body, body_is_json, headers, cancel })
}

/// Longest URL a handler may return (as an endpoint's URL may be).
const MAX_URL_LEN: usize = 2048;
/// Most headers a handler may add.
const MAX_HEADERS: usize = 64;

/// Accepts an absolute http(s) URL without credentials in it, returned as
/// the handler wrote it.
fn check_url(url: String) -> Result<String, TransformError> {
    if url.len() > MAX_URL_LEN {
        return Err(TransformError::BadResult(format!("url is longer than {MAX_URL_LEN} bytes")));
    }
    match url::Url::parse(&url) {
        Ok(parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            Err(TransformError::BadResult("url may not carry a user name or password".into()))
        }
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(url),
        Ok(_) => Err(TransformError::BadResult(format!("url {url:?} must be an http or https URL"))),
        Err(error) => Err(TransformError::BadResult(format!("url {url:?} is not a valid URL: {error}"))),
    }
}

/// Accepts header names that are HTTP tokens and values of visible ASCII,
/// space and tab (RFC 9110 §5.1, §5.5), none of them reserved or repeated.
fn check_headers(
    headers: serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, TransformError> {
    let bad = |message: String| Err(TransformError::BadResult(message));
    if headers.len() > MAX_HEADERS {
        return bad(format!("the handler set {} headers; at most {MAX_HEADERS} are sent", headers.len()));
    }
    let mut seen = BTreeSet::new();
    let mut checked = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(is_token_char) {
            return bad(format!("header name {name:?} is not a valid HTTP header name"));
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return bad(format!("header {name:?} is set by hookd and cannot be overridden"));
        }
        if !seen.insert(lower) {
            return bad(format!("header {name:?} is given twice (names ignore case)"));
        }
        let serde_json::Value::String(value) = value else {
            return bad(format!("header {name:?} is {value}; header values must be strings"));
        };
        if value.contains(['\r', '\n']) {
            return bad(format!("header {name:?} contains a line break"));
        }
        if !value.chars().all(|c| c == '\t' || c == ' ' || c.is_ascii_graphic()) {
            return bad(format!("header {name:?} contains a character that is not visible ASCII, space or tab"));
        }
        checked.insert(name, value);
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn webhook() -> WebhookIn {
        WebhookIn {
            method: "POST".into(),
            url: "https://example.com/hook".into(),
            event_type: "invoice.paid".into(),
            msg_id: "msg_1".into(),
            channels: Some(vec!["billing".into()]),
            payload: json!({"amount": 10, "currency": "EUR"}),
            headers: BTreeMap::new(),
            variables: BTreeMap::from([("token".to_string(), "abc".to_string())]),
        }
    }

    fn run_handler(body: &str) -> Result<WebhookOut, TransformError> {
        run(&format!("function handler(webhook) {{\n{body}\n}}"), &webhook(), &Limits::default())
    }

    fn bad_result(body: &str) -> String {
        match run_handler(body) {
            Err(TransformError::BadResult(message)) => message,
            other => panic!("expected BadResult, got {other:?}"),
        }
    }

    #[test]
    fn identity_keeps_the_webhook() {
        let out = run_handler("return webhook;").unwrap();
        assert_eq!(
            out,
            WebhookOut {
                method: "POST".into(),
                url: "https://example.com/hook".into(),
                body: br#"{"amount":10,"currency":"EUR"}"#.to_vec(),
                body_is_json: true,
                headers: BTreeMap::new(),
                cancel: false,
            }
        );
    }

    #[test]
    fn handler_sees_the_message_in_camel_case() {
        let out = run_handler(
            "webhook.payload = [webhook.eventType, webhook.msgId, webhook.channels, webhook.variables.token];
             return webhook;",
        )
        .unwrap();
        assert_eq!(out.body, br#"["invoice.paid","msg_1",["billing"],"abc"]"#);
    }

    #[test]
    fn handler_changes_payload_method_url_and_headers() {
        let out = run_handler(
            r#"webhook.payload = { text: `paid ${webhook.payload.amount}` };
               webhook.method = "PUT";
               webhook.url = "http://other.example/in?x=1";
               webhook.headers["X-Token"] = webhook.variables.token;
               return webhook;"#,
        )
        .unwrap();
        assert_eq!(out.body, br#"{"text":"paid 10"}"#);
        assert_eq!(out.method, "PUT");
        assert_eq!(out.url, "http://other.example/in?x=1");
        assert_eq!(out.headers, BTreeMap::from([("X-Token".to_string(), "abc".to_string())]));
    }

    #[test]
    fn cancel_is_reported() {
        assert!(run_handler("webhook.cancel = true; return webhook;").unwrap().cancel);
    }

    #[test]
    fn string_payload_is_sent_as_is() {
        let out = run_handler(r#"webhook.payload = "a=1&b=\u00e9"; return webhook;"#).unwrap();
        assert_eq!(out.body, "a=1&b=é".as_bytes());
        assert!(!out.body_is_json);
        assert!(bad_result(r#"webhook.payload = "\ud800"; return webhook;"#).contains("not valid Unicode"));
    }

    #[test]
    fn async_handler_is_awaited() {
        let code = "async function handler(webhook) { webhook.payload = await Promise.resolve(7); return webhook; }";
        assert_eq!(run(code, &webhook(), &Limits::default()).unwrap().body, b"7");
    }

    #[test]
    fn async_handler_failures_are_reported() {
        let code = "async function handler(w) { await null; throw new Error('late'); }";
        let error = run(code, &webhook(), &Limits::default()).unwrap_err();
        assert!(matches!(&error, TransformError::Threw(message) if message.starts_with("Error: late")), "{error:?}");
        let code = "function handler(w) { return new Promise(() => {}); }";
        let error = run(code, &webhook(), &Limits::default()).unwrap_err();
        assert!(matches!(&error, TransformError::BadResult(message) if message.contains("never settled")), "{error:?}");
    }

    fn counted(key: &str, code: &str, payload: serde_json::Value) -> Result<serde_json::Value, TransformError> {
        let input = WebhookIn { payload, ..webhook() };
        run_warm(key, code, &input, &Limits::default()).map(|out| serde_json::from_slice(&out.body).unwrap())
    }

    #[test]
    fn a_warm_sandbox_is_kept_for_one_key_and_the_same_code_only() {
        let code = "var n = 0; function handler(w) { n += 1; w.payload = {n: n}; return w; }";
        assert_eq!(counted("warm-ep1", code, json!({})).unwrap(), json!({"n": 1}));
        assert_eq!(counted("warm-ep1", code, json!({})).unwrap(), json!({"n": 2}));
        assert_eq!(counted("warm-ep2", code, json!({})).unwrap(), json!({"n": 1}), "another key, its own sandbox");
        let changed = "var n = 10; function handler(w) { n += 1; w.payload = {n: n}; return w; }";
        assert_eq!(counted("warm-ep1", changed, json!({})).unwrap(), json!({"n": 11}), "new code starts over");
        let fresh = run(code, &webhook(), &Limits::default()).unwrap();
        assert_eq!(fresh.body, br#"{"n":1}"#, "run is always fresh");
    }

    #[test]
    fn a_warm_sandbox_starts_over_after_a_failure_and_each_run_has_its_own_time() {
        let code = "var n = 0; function handler(w) { n += 1; if (w.payload.boom) throw new Error('boom'); \
                    if (w.payload.spin) { for (;;) {} } w.payload = {n: n}; return w; }";
        assert_eq!(counted("warm-fail", code, json!({})).unwrap(), json!({"n": 1}));
        assert!(matches!(counted("warm-fail", code, json!({"boom": true})), Err(TransformError::Threw(_))));
        assert_eq!(counted("warm-fail", code, json!({})).unwrap(), json!({"n": 1}), "started over");
        let limits = Limits { time: Duration::from_millis(50), ..Limits::default() };
        let spin = WebhookIn { payload: json!({"spin": true}), ..webhook() };
        assert!(matches!(run_warm("warm-fail", code, &spin, &limits), Err(TransformError::TimedOut(_))));
        std::thread::sleep(Duration::from_millis(60));
        // A run after a long pause still has its whole limit.
        let calm = WebhookIn { payload: json!({}), ..webhook() };
        assert!(run_warm("warm-fail", code, &calm, &limits).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(run_warm("warm-fail", code, &calm, &limits).is_ok(), "the deadline is set per run");
    }

    #[test]
    fn a_sandbox_that_grows_large_is_not_kept_warm() {
        let code = "var keep = []; function handler(w) { keep.push('x'.repeat(3 * 1024 * 1024)); \
                    w.payload = {n: keep.length}; return w; }";
        assert_eq!(counted("warm-big", code, json!({})).unwrap(), json!({"n": 1}));
        assert_eq!(counted("warm-big", code, json!({})).unwrap(), json!({"n": 1}), "too big to keep: started over");
    }

    #[test]
    fn md5_is_there_for_keys_that_need_it() {
        let code = "function handler(w) { w.url = w.url + '/' + hookd.md5(w.payload.email.toLowerCase()); return w; }";
        let input = WebhookIn { payload: json!({"email": "Ada@Example.com"}), ..webhook() };
        let out = run(code, &input, &Limits::default()).unwrap();
        // md5("ada@example.com")
        assert_eq!(out.url, "https://example.com/hook/3e3417d7ef77d5932a6734b916515ed5");
    }

    #[test]
    fn sandbox_has_no_io() {
        let out = run_handler(
            "webhook.payload = [typeof std, typeof os, typeof fetch, typeof setTimeout, typeof require];
             return webhook;",
        )
        .unwrap();
        assert_eq!(out.body, br#"["undefined","undefined","undefined","undefined","undefined"]"#);
        let code = "async function handler(w) { await import('os'); return w; }";
        let error = run(code, &webhook(), &Limits::default()).unwrap_err();
        assert!(matches!(error, TransformError::Threw(_)), "{error:?}");
    }

    #[test]
    fn console_log_does_nothing() {
        let out = run_handler("console.log('seen', webhook); console.error(1); return webhook;");
        assert!(out.is_ok(), "{out:?}");
    }

    #[test]
    fn syntax_error_is_invalid_with_its_position() {
        let error = check("function handler(webhook) {\n  return (webhook;\n}").unwrap_err();
        let TransformError::Invalid(message) = &error else { panic!("{error:?}") };
        assert!(message.starts_with("SyntaxError:"), "{message}");
        assert!(message.contains("at line 2, column"), "{message}");
    }

    #[test]
    fn code_without_handler_is_invalid() {
        let error = check("function transform(webhook) { return webhook; }").unwrap_err();
        assert_eq!(error, TransformError::Invalid("the code must define `function handler(webhook)`".into()));
        assert!(check("const handler = (webhook) => webhook;").is_ok());
        assert!(matches!(check("x"), Err(TransformError::Invalid(_))), "too short");
    }

    #[test]
    fn thrown_error_is_reported_with_its_line() {
        let error =
            run_handler("const amount = webhook.payload.amount;\n  throw new Error(`no ${amount}`);").unwrap_err();
        assert_eq!(error, TransformError::Threw("Error: no 10 (in handler, line 3, column 13)".into()));
        let error = run_handler("return webhook.missing.y;").unwrap_err();
        assert_eq!(
            error,
            TransformError::Threw(
                "TypeError: cannot read property 'y' of undefined (in handler, line 1, column 1)".into()
            )
        );
        let error = run_handler("throw 'boom';").unwrap_err();
        assert_eq!(error, TransformError::Threw("boom".into()));
    }

    #[test]
    fn infinite_loop_times_out() {
        let limits = Limits { time: Duration::from_millis(50), ..Limits::default() };
        let started = Instant::now();
        let error = run("function handler(webhook) { for (;;) {} }", &webhook(), &limits).unwrap_err();
        assert_eq!(error, TransformError::TimedOut(limits.time));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        // A loop at the top level, and one caught by the code itself.
        assert_eq!(check("while (true) {}"), Err(TransformError::TimedOut(Limits::default().time)));
        let caught = "function handler(w) { for (;;) { try { for (;;) {} } catch (e) {} } }";
        assert_eq!(run(caught, &webhook(), &limits), Err(TransformError::TimedOut(limits.time)));
        let backtracking = "function handler(w) { /(a+)+$/.test('a'.repeat(40) + 'b'); return w; }";
        assert_eq!(run(backtracking, &webhook(), &limits), Err(TransformError::TimedOut(limits.time)));
    }

    #[test]
    fn memory_bombs_fail_cleanly() {
        let bombs = [
            "const a = []; for (;;) a.push({ n: a.length });",
            "let s = 'x'; for (;;) s = s + s;",
            "const a = []; for (;;) a.push(new Array(100000).fill(1));",
        ];
        for bomb in bombs {
            let code = format!("function handler(webhook) {{ {bomb} }}");
            // Time enough to reach the memory limit in a debug build.
            let limits = Limits { time: Duration::from_secs(10), ..Limits::default() };
            let error = run(&code, &webhook(), &limits).unwrap_err();
            assert_eq!(error, TransformError::OutOfMemory, "{bomb}");
        }
    }

    #[test]
    fn deep_recursion_throws() {
        let error = run_handler("const f = (n) => f(n + 1) + 1; return f(0);").unwrap_err();
        let TransformError::Threw(message) = &error else { panic!("{error:?}") };
        assert!(message.starts_with("RangeError"), "{message}");
    }

    #[test]
    fn result_must_be_a_webhook_object() {
        assert!(bad_result("return 3;").contains("returned a number"));
        assert!(bad_result("").contains("returned undefined"));
        assert!(bad_result("return [webhook];").contains("returned an array"));
        assert!(bad_result("delete webhook.payload; return webhook;").contains("payload is missing"));
        let cyclic = bad_result("webhook.payload.self = webhook.payload; return webhook;");
        assert!(cyclic.contains("cannot be serialized"), "{cyclic}");
    }

    #[test]
    fn method_must_be_post_or_put() {
        assert_eq!(run_handler("webhook.method = 'put'; return webhook;").unwrap().method, "PUT");
        assert!(bad_result("webhook.method = 'GET'; return webhook;").contains("\"POST\" or \"PUT\""));
        assert!(bad_result("webhook.method = 1; return webhook;").contains("method is 1"));
    }

    #[test]
    fn url_must_be_absolute_http() {
        for url in ["'ftp://example.com/'", "'/relative'", "'not a url'", "42"] {
            let message = bad_result(&format!("webhook.url = {url}; return webhook;"));
            assert!(message.starts_with("url "), "{url}: {message}");
        }
    }

    #[test]
    fn headers_are_checked() {
        let cases = [
            ("{ 'webhook-signature': 'v1,forged' }", "\"webhook-signature\" is set by hookd"),
            ("{ Authorization: 'Bearer x' }", "\"Authorization\" is set by hookd"),
            ("{ 'X-A': 'a\\r\\nX-Evil: 1' }", "line break"),
            ("{ 'X-A': 'caf\\u00e9' }", "not visible ASCII"),
            ("{ 'X A': 'a' }", "not a valid HTTP header name"),
            ("{ 'X-A': 1 }", "must be strings"),
            ("{ 'X-A': 'a', 'x-a': 'b' }", "given twice"),
            ("'X-A: 1'", "must be an object"),
        ];
        for (headers, expected) in cases {
            let message = bad_result(&format!("webhook.headers = {headers}; return webhook;"));
            assert!(message.contains(expected), "{headers}: {message}");
        }
    }

    #[test]
    fn oversized_payload_is_refused() {
        let limits = Limits { max_output: 1000, ..Limits::default() };
        let code = "function handler(w) { w.payload = 'x'.repeat(1001); return w; }";
        let error = run(code, &webhook(), &limits).unwrap_err();
        assert_eq!(error, TransformError::BadResult("the payload is 1001 bytes, more than the 1000 allowed".into()));
    }

    /// Prints what one run of a small handler costs, a fresh runtime each
    /// time: `cargo test --release -p hookd-shaping run_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn run_cost() {
        let code = "function handler(webhook) { webhook.payload.seen = true; return webhook; }";
        let runs = 2000;
        let started = Instant::now();
        for _ in 0..runs {
            run(code, &webhook(), &Limits::default()).unwrap();
        }
        println!("one run: {:?}", started.elapsed() / runs);
    }
}
