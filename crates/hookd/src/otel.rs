//! OpenTelemetry traces (`--otlp-endpoint`): the tracer behind the layer that
//! turns hookd's spans (`message.accept`, `delivery`) into OTLP spans,
//! exported in batches over HTTP/JSON, and the `traceparent` receivers get.

use anyhow::Context;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A tracer exporting to the collector at `base` (its `/v1/traces`).
pub fn tracer(base: &str) -> anyhow::Result<(opentelemetry_sdk::trace::Tracer, SdkTracerProvider)> {
    let endpoint = format!("{}/v1/traces", base.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .build()
        .context("--otlp-endpoint: cannot build the OTLP exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("hookd").build())
        .build();
    let tracer = provider.tracer("hookd");
    Ok((tracer, provider))
}

/// The current span's W3C `traceparent`, when it is being traced.
pub fn traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}
