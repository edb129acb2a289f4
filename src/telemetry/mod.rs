//! Telemetry: Prometheus metric names and helpers (`metrics.rs`), and OpenTelemetry traces
//! exported over OTLP/HTTP (protobuf) when the standard `OTEL_*` variables ask for them.
//!
//! Traces: one span per proxied request (`RequestSpan`), named `{operation} {requested
//! model}`, carrying the OpenTelemetry GenAI attributes (`gen_ai.request.model`,
//! `gen_ai.response.model`, `gen_ai.usage.input_tokens`, …) and `switchyard.*` ones (route,
//! task, difficulty, cost). `Traces` is passed in `AppState`, not a global: off, every call is a
//! no-op that allocates nothing. Spans never carry prompt text, keys or team ids.
//!
//! Export: `opentelemetry-otlp`'s HTTP exporter over `otlp::Client`, a small adapter to the
//! hyper client already in the crate, so no second HTTP stack is linked. The SDK's batch
//! processor runs on its own thread; the adapter hands each export to the tokio runtime.

pub mod metrics;
mod otlp;

use std::borrow::Cow;

use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::budget::{MicroUsd, Usage};

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the OTLP exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot build the OTLP HTTP client")]
    Client(#[source] std::io::Error),
}

/// Where request spans go. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Traces {
    tracer: Option<SdkTracer>,
}

impl Traces {
    /// No spans (the default).
    pub fn off() -> Traces {
        Traces { tracer: None }
    }

    /// Spans from `provider` (tests pass one with an in-memory exporter).
    pub fn from_provider(provider: &SdkTracerProvider) -> Traces {
        Traces {
            tracer: Some(provider.tracer("switchyard")),
        }
    }

    pub fn is_on(&self) -> bool {
        self.tracer.is_some()
    }

    /// Start the span of one request: `operation` is the GenAI operation (`chat`,
    /// `embeddings`), `request_model` what the client asked for (`auto`, an alias, …).
    pub fn start(
        &self,
        operation: &'static str,
        request_model: &str,
        request_id: &str,
    ) -> RequestSpan {
        let Some(tracer) = &self.tracer else {
            return RequestSpan(None);
        };
        let span = tracer
            .span_builder(format!("{operation} {request_model}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("gen_ai.operation.name", operation),
                KeyValue::new("gen_ai.request.model", request_model.to_owned()),
                KeyValue::new("switchyard.request_id", request_id.to_owned()),
            ])
            .start(tracer);
        RequestSpan(Some(span))
    }
}

/// Build the OTLP exporter and tracer provider if `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and neither `OTEL_SDK_DISABLED=true` nor
/// `OTEL_TRACES_EXPORTER=none` says otherwise. The exporter reads the other standard
/// variables itself (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`). Only `http/protobuf` is supported.
/// Call inside the tokio runtime; call `shutdown` on the provider before exiting to flush.
pub fn traces_from_env(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SdkTracerProvider>, Error> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    // The signal's own endpoint is used as written; the general one gets `/v1/traces`.
    let endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
        get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    });
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    let Some(endpoint) = endpoint.filter(|_| !disabled) else {
        return Ok(None);
    };
    if let Some(protocol) =
        env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        && protocol != "http/protobuf"
    {
        tracing::warn!(%protocol, "only OTLP http/protobuf is supported; using it");
    }
    Ok(Some(provider(otlp::exporter(endpoint)?)))
}

/// A tracer provider that batches spans into `exporter`, with `service.name` = `switchyard`
/// unless `OTEL_SERVICE_NAME` says otherwise.
pub fn provider<E: opentelemetry_sdk::trace::SpanExporter + 'static>(
    exporter: E,
) -> SdkTracerProvider {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "switchyard".to_owned()),
        )
        .build();
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build()
}

/// The span of one request. Ends when settled, failed, or dropped (a request that ended
/// early for any other reason).
#[derive(Debug)]
pub struct RequestSpan(Option<opentelemetry_sdk::trace::Span>);

impl RequestSpan {
    /// A span that records nothing.
    pub fn none() -> RequestSpan {
        RequestSpan(None)
    }

    fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(span) = &mut self.0 {
            span.set_attribute(KeyValue::new(key, value));
        }
    }

    /// The routing decision.
    pub fn decided(
        &mut self,
        route: &str,
        task: Option<&'static str>,
        difficulty: Option<&'static str>,
    ) {
        if self.0.is_none() {
            return;
        }
        self.set("switchyard.route", route.to_owned());
        if let Some(task) = task {
            self.set("switchyard.task", task);
        }
        if let Some(difficulty) = difficulty {
            self.set("switchyard.difficulty", difficulty);
        }
    }

    /// The candidate that answered: its provider, logical and upstream model names and tier.
    pub fn answered(
        &mut self,
        provider: &'static str,
        model: &str,
        upstream_model: &str,
        tier: &'static str,
    ) {
        if self.0.is_none() {
            return;
        }
        // `gen_ai.system` is the older name of `gen_ai.provider.name`; both are set so either
        // generation of backends recognises it.
        self.set("gen_ai.system", provider);
        self.set("gen_ai.provider.name", provider);
        self.set("gen_ai.response.model", upstream_model.to_owned());
        self.set("switchyard.model", model.to_owned());
        self.set("switchyard.tier", tier);
    }

    /// The charge: usage, cost and how the request ended. Ends the span.
    pub fn settled(
        mut self,
        usage: &Usage,
        cost: MicroUsd,
        baseline_cost: MicroUsd,
        estimated: bool,
        status: &'static str,
    ) {
        let Some(mut span) = self.0.take() else {
            return;
        };
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        span.set_attributes([
            KeyValue::new(
                "gen_ai.usage.input_tokens",
                tokens(usage.input.saturating_add(usage.cached_input)),
            ),
            KeyValue::new("gen_ai.usage.output_tokens", tokens(usage.output)),
            KeyValue::new(
                "switchyard.usage.cached_input_tokens",
                tokens(usage.cached_input),
            ),
            KeyValue::new("switchyard.cost_usd", cost.as_usd()),
            KeyValue::new("switchyard.baseline_cost_usd", baseline_cost.as_usd()),
            KeyValue::new("switchyard.usage_estimated", estimated),
            KeyValue::new("switchyard.status", status),
        ]);
        if status != "ok" {
            span.set_status(Status::error(status));
        }
        span.end();
    }

    /// The request failed with `code` (`budget_exceeded`, `upstream_error`, …). Ends the span.
    pub fn failed(mut self, code: &'static str) {
        let Some(mut span) = self.0.take() else {
            return;
        };
        span.set_attribute(KeyValue::new("error.type", code));
        span.set_status(Status::Error {
            description: Cow::Borrowed(code),
        });
        span.end();
    }
}
