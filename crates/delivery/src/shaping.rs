//! Shaping at send time: an endpoint's transformation (JavaScript) and then
//! its template turn a delivery's payload into the request that goes out.
//!
//! Template versions are immutable, so a compiled version is kept for as long
//! as there is room; an endpoint pinned to the latest version learns of a new
//! one within [`LATEST_TTL`] (at once on the node that added it). A
//! transformation runs on one of a few transformation threads, always the same
//! one for an endpoint, which keeps the endpoint's sandbox warm between sends
//! (see [`transform::run_warm`]).
//! Whatever fails here fails the attempt with the reason, never the worker.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookd_core::payload::Payload;
use hookd_shaping::template::{self as tpl, EndpointVars, Format, RenderContext};
use hookd_shaping::transform::{self, WebhookIn};
use hookd_store::{DeliveryJob, Resources, StoreError, TemplatePin};

use crate::sender::Outgoing;

/// How long a node keeps using what it learnt the latest version of a template is.
pub const LATEST_TTL: Duration = Duration::from_secs(5);
/// Compiled template versions kept at most (past it the cache starts over).
const MAX_COMPILED: usize = 1024;

/// What shaping made of a delivery.
#[derive(Debug)]
pub enum Shaped {
    Send(Outgoing),
    /// The transformation canceled it: nothing goes to this endpoint.
    Canceled,
}

/// One transformation to run, and where its result goes.
struct Job {
    key: String,
    code: String,
    input: WebhookIn,
    limits: transform::Limits,
    reply: tokio::sync::oneshot::Sender<Result<transform::WebhookOut, transform::TransformError>>,
}

/// Threads that run transformations: an endpoint's always run on the same
/// one, so its warm sandbox is found there; their number bounds the memory
/// warm sandboxes take.
struct TransformThreads {
    queues: Vec<tokio::sync::mpsc::Sender<Job>>,
}

/// Transformations queued for one thread, at most; a send waits for room up
/// to [`QUEUE_WAIT`], then fails (and is retried on its schedule).
const QUEUE_DEPTH: usize = 64;
const QUEUE_WAIT: Duration = Duration::from_secs(10);

impl TransformThreads {
    fn start() -> Self {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 16);
        let queues = (0..n)
            .map(|i| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(QUEUE_DEPTH);
                std::thread::Builder::new()
                    .name(format!("hookd-transform-{i}"))
                    .spawn(move || {
                        while let Some(job) = rx.blocking_recv() {
                            let run = || transform::run_warm(&job.key, &job.code, &job.input, &job.limits);
                            let out =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
                                    // Whatever the sandboxes held is suspect now.
                                    transform::forget_warm();
                                    Err(transform::TransformError::BadResult("the transformation engine failed".into()))
                                });
                            let _ = job.reply.send(out);
                        }
                    })
                    .expect("a transformation thread starts");
                tx
            })
            .collect();
        TransformThreads { queues }
    }

    /// Runs `code` for the endpoint `key` on its thread.
    async fn run(
        &self,
        key: &str,
        code: &str,
        input: WebhookIn,
        limits: transform::Limits,
    ) -> Result<Result<transform::WebhookOut, transform::TransformError>, String> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let queue = &self.queues[(h.finish() % self.queues.len() as u64) as usize];
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job { key: key.to_string(), code: code.to_string(), input, limits, reply };
        match tokio::time::timeout(QUEUE_WAIT, queue.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err("the transformation threads stopped".into()),
            Err(_) => return Err("too many transformations are waiting; retried later".into()),
        }
        answer.await.map_err(|_| "the transformation did not finish".to_string())
    }
}

pub struct Shaper {
    /// Started with the first transformation.
    threads: std::sync::OnceLock<TransformThreads>,
    resources: Arc<dyn Resources>,
    compiled: Mutex<HashMap<(String, u32), Arc<tpl::Template>>>,
    latest: Mutex<HashMap<String, (u32, Instant)>>,
    templates: tpl::Limits,
    transforms: transform::Limits,
}

impl Shaper {
    pub fn new(resources: Arc<dyn Resources>) -> Self {
        Shaper {
            threads: std::sync::OnceLock::new(),
            resources,
            compiled: Mutex::default(),
            latest: Mutex::default(),
            templates: tpl::Limits::default(),
            transforms: transform::Limits::default(),
        }
    }

    /// A new version of the template was added: endpoints on its latest
    /// version render with it from now on (on this node).
    pub fn forget_latest(&self, template_id: &str) {
        lock(&self.latest).remove(template_id);
    }

    /// The request for `job`, whose payload (opened) is `payload`.
    pub async fn shape(&self, job: &DeliveryJob, payload: Arc<[u8]>) -> Result<Shaped, String> {
        let control = &job.endpoint.control;
        let transformation = control.transformation.as_ref().filter(|t| t.enabled).and_then(|t| t.code.as_ref());
        // What the code and the template see: the JSON payload, or a raw one as a string.
        let (mut out, raw) = match Payload::read(&payload) {
            Payload::Json(_) => (Outgoing::json(payload), false),
            raw @ Payload::Raw { .. } => (Outgoing::of(Arc::from(raw.body()), raw.content_type()), true),
        };
        let seen = |body: &[u8], is_json: bool| match is_json {
            true => payload_value(body),
            false => serde_json::Value::String(String::from_utf8_lossy(body).into()),
        };
        let mut current: Option<serde_json::Value> = None;
        if transformation.is_none() && control.template.is_none() {
            return Ok(Shaped::Send(out));
        }
        if let Some(code) = transformation {
            let input = WebhookIn {
                method: "POST".into(),
                url: job.endpoint.url.clone(),
                event_type: job.event_type.clone(),
                msg_id: job.msg_id.clone(),
                channels: None,
                payload: seen(&out.body, !raw),
                headers: Default::default(),
                variables: control.transformation.as_ref().map(|t| t.variables.clone()).unwrap_or_default(),
            };
            let result = self
                .threads
                .get_or_init(TransformThreads::start)
                .run(&job.endpoint.id, code, input, self.transforms)
                .await?
                .map_err(|e| format!("transformation: {e}"))?;
            if result.cancel {
                return Ok(Shaped::Canceled);
            }
            current = Some(seen(&result.body, result.body_is_json));
            let mut headers = result.headers;
            let content_type = headers
                .keys()
                .find(|k| k.eq_ignore_ascii_case("content-type"))
                .cloned()
                .and_then(|k| headers.remove(&k));
            out = Outgoing {
                content_type: match (content_type, result.body_is_json) {
                    (Some(ct), _) => ct,
                    (None, true) => "application/json".into(),
                    (None, false) => "text/plain; charset=utf-8".into(),
                },
                body: Arc::from(result.body),
                method: if result.method.eq_ignore_ascii_case("PUT") {
                    reqwest::Method::PUT
                } else {
                    reqwest::Method::POST
                },
                url: (result.url != job.endpoint.url).then_some(result.url),
                headers,
            };
        }
        if let Some(pin) = &control.template {
            let template = self.template(&job.org_id, pin).await?;
            let payload = current.take().unwrap_or_else(|| seen(&out.body, !raw));
            let ctx = RenderContext {
                payload: &payload,
                event_type: &job.event_type,
                msg_id: &job.msg_id,
                event_id: None,
                timestamp: job.msg_created_at / 1000,
                channels: None,
                endpoint: EndpointVars {
                    id: &job.endpoint.id,
                    uid: job.endpoint.uid.as_deref(),
                    url: &job.endpoint.url,
                    metadata: &job.endpoint.metadata,
                },
            };
            let body = template.render(&ctx, &self.templates).map_err(|e| format!("template {}: {e}", pin.id))?;
            out.body = Arc::from(body);
            out.content_type = template.format().content_type().to_string();
        }
        Ok(Shaped::Send(out))
    }

    /// The compiled version the endpoint renders with.
    async fn template(&self, org_id: &str, pin: &TemplatePin) -> Result<Arc<tpl::Template>, String> {
        let cached_latest = match pin.version {
            Some(_) => None,
            None => lock(&self.latest).get(&pin.id).filter(|(_, at)| at.elapsed() < LATEST_TTL).map(|(v, _)| *v),
        };
        if let Some(v) = pin.version.or(cached_latest) {
            if let Some(t) = lock(&self.compiled).get(&(pin.id.clone(), v)) {
                return Ok(t.clone());
            }
        }
        let version = match self.resources.get_template_version(org_id, &pin.id, pin.version.or(cached_latest)).await {
            Ok(v) => v,
            Err(StoreError::NotFound) => return Err(format!("template {} has no such version", pin.id)),
            Err(e) => return Err(format!("reading template {}: {e}", pin.id)),
        };
        if pin.version.is_none() {
            lock(&self.latest).insert(pin.id.clone(), (version.version, Instant::now()));
        }
        let format = Format::parse(&version.format).unwrap_or_default();
        let compiled = Arc::new(
            tpl::Template::compile(&version.source, format)
                .map_err(|e| format!("template {} version {}: {e}", pin.id, version.version))?,
        );
        let mut map = lock(&self.compiled);
        if map.len() >= MAX_COMPILED {
            map.clear();
        }
        map.insert((pin.id.clone(), version.version), compiled.clone());
        Ok(compiled)
    }
}

/// The payload as templates and transformations see it: JSON, or a string
/// when it is not JSON.
fn payload_value(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
