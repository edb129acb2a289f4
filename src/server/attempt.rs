//! One attempt at answering: try the decision's candidates in order (fallback), then stream
//! the answer back through `UsageTap` or read it whole, and charge it. The escalation cascade
//! in `proxy` may make a second attempt.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::error::{ApiError, Dialect, full};
use super::exchange::{self, Exchange};
use super::proxy::{header_value, with_headers};
use super::spend;
use super::{AppState, Body, HEADER_COST, HEADER_MODEL, HEADER_REMAINING};
use crate::budget::{self, MicroUsd, Reservation, Tenant, Usage};
use crate::chat;
use crate::policy::{Model, ModelKind, Policy, Trigger};
use crate::providers::{self, Operation, StreamEnd, UsageTap, estimate_tokens};
use crate::route::Decision;
use crate::telemetry::{RequestSpan, metrics};

/// What one attempt needs from the request, whichever candidates it tries.
pub(super) struct Call<'a, 'p> {
    pub(super) state: &'a AppState,
    pub(super) policy: &'p Policy,
    pub(super) request: &'a chat::Request<'a>,
    pub(super) original: &'a [u8],
    pub(super) dialect: Dialect,
    pub(super) operation: Operation,
    pub(super) request_id: &'a str,
    pub(super) tenant: &'a Tenant,
    /// Shadow mode: send the client's bytes unchanged (same wire format).
    pub(super) verbatim: bool,
}

/// One attempt's answer: a stream already on its way, or a complete (charged) response.
pub(super) enum Answer {
    Stream(Response<Body>),
    Complete {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        cost: MicroUsd,
    },
}

impl Answer {
    pub(super) fn cost(&self) -> MicroUsd {
        match self {
            Answer::Complete { cost, .. } => *cost,
            Answer::Stream(_) => MicroUsd::ZERO,
        }
    }

    /// Both attempts of an escalation are charged; the header reports the total.
    pub(super) fn add_cost(&mut self, extra: MicroUsd) {
        if let Answer::Complete { cost, headers, .. } = self {
            *cost += extra;
            headers.insert(HEADER_COST, header_value(&format!("{:.6}", cost.as_usd())));
        }
    }

    /// The first of `checks` this (non-streamed) answer fails.
    pub(super) fn failed_check(
        &self,
        checks: &[Trigger],
        request: &chat::Request<'_>,
        dialect: Dialect,
    ) -> Option<Trigger> {
        let Answer::Complete { status, body, .. } = self else {
            return None;
        };
        if !status.is_success() {
            return checks.contains(&Trigger::Error).then_some(Trigger::Error);
        }
        let (truncated, text) = exchange::answer_summary(dialect, body);
        if truncated && checks.contains(&Trigger::Truncated) {
            return Some(Trigger::Truncated);
        }
        let wants_json = matches!(
            request.response_format.as_deref(),
            Some("json_object" | "json_schema")
        );
        if wants_json
            && checks.contains(&Trigger::InvalidJson)
            && serde_json::from_str::<serde_json::Value>(text.as_deref().unwrap_or("")).is_err()
        {
            return Some(Trigger::InvalidJson);
        }
        None
    }

    pub(super) fn into_response(self, mut extra: HeaderMap) -> Response<Body> {
        match self {
            Answer::Stream(mut rsp) => {
                for (name, value) in extra.drain().filter_map(|(n, v)| n.map(|n| (n, v))) {
                    rsp.headers_mut().entry(name).or_insert(value);
                }
                rsp
            }
            Answer::Complete {
                status,
                mut headers,
                body,
                ..
            } => {
                for (name, value) in extra.drain().filter_map(|(n, v)| n.map(|n| (n, v))) {
                    headers.entry(name).or_insert(value);
                }
                with_headers(Response::new(full(body)), status, headers)
            }
        }
    }
}

impl<'p> Call<'_, 'p> {
    /// Send to the decision's candidates in order (fallback), then stream the answer back or
    /// read it whole; charge it.
    pub(super) async fn attempt(
        &self,
        decision: &Decision<'p>,
        reservation: Reservation,
        facts: spend::Facts,
        mut span: RequestSpan,
    ) -> Result<Answer, ApiError> {
        let Call {
            state,
            policy,
            request,
            ..
        } = *self;
        let input_estimate = estimate_tokens(request.input_chars);
        let sent = send_first_available(
            state,
            policy,
            decision,
            request,
            self.original,
            self.dialect,
            self.operation,
            reservation,
            &facts,
            self.verbatim,
        )
        .await;
        let Sent {
            model,
            exchange,
            upstream,
            mut reservation,
        } = match sent {
            Ok(sent) => sent,
            Err(err) => {
                span.failed("upstream_error");
                return Err(err);
            }
        };
        if let Some(provider) = policy.provider_of(model) {
            span.answered(
                provider.kind.as_str(),
                &model.name,
                &model.upstream,
                model.tier.as_str(),
            );
        }
        reservation.set_drop_row(facts.row(&model.name, model.tier.as_str(), "dropped"));
        let read_timeout = policy
            .provider_of(model)
            .map_or(state.limits.request_timeout, |p| p.read_timeout);
        let status = upstream.status();
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_MODEL, header_value(&model.name));

        if !status.is_success() {
            // Nothing was generated: release the hold. Same wire format: the client reads the
            // upstream's own error, unchanged. Translated: re-shaped for the client, status kept.
            let row = facts.row(&model.name, model.tier.as_str(), "upstream_rejected");
            drop(reservation.release(row));
            span.failed("upstream_rejected");
            let body = read_upstream(
                upstream.headers().get(header::CONTENT_TYPE).cloned(),
                upstream.into_body(),
                state.limits.max_response_bytes,
                read_timeout,
                &model.name,
                &mut headers,
            )
            .await?;
            if exchange.is_passthrough() {
                return Ok(Answer::Complete {
                    status,
                    headers,
                    body,
                    cost: MicroUsd::ZERO,
                });
            }
            return Err(ApiError::UpstreamRejected {
                status,
                message: exchange::upstream_error_message(&body),
            });
        }
        let charge = spend::Charge::new(
            reservation,
            span,
            facts,
            state.tally.clone(),
            policy,
            model,
            request.stream,
        );
        if request.stream {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            let now = (state.clock)();
            if let Some(remaining) =
                spend::tightest_remaining(&state.ledger.status(self.tenant, now))
            {
                headers.insert(
                    HEADER_REMAINING,
                    header_value(&format!("{:.6}", remaining.as_usd())),
                );
            }
            let mode = exchange.stream_mode(request, &model.upstream, self.request_id);
            let settle = Box::new(move |usage: Usage, estimated: bool, end: StreamEnd| {
                let (_cost, durable) = charge.settle(usage, estimated, end);
                let durability: providers::Durability = Box::pin(async move {
                    if let Err(err) = durable.await {
                        tracing::error!(error = %err, "ledger write failed");
                    }
                });
                durability
            });
            let tap = UsageTap::new(
                upstream.into_body(),
                mode,
                input_estimate,
                read_timeout,
                settle,
            );
            return Ok(Answer::Stream(with_headers(
                Response::new(tap.boxed_unsync()),
                status,
                headers,
            )));
        }
        let body = read_upstream(
            None,
            upstream.into_body(),
            state.limits.max_response_bytes,
            read_timeout,
            &model.name,
            &mut headers,
        )
        .await?;
        let (body, usage) = exchange.response(body, &model.upstream)?;
        let (usage, estimated) = match usage.usage {
            Some(u) => (u, false),
            None => (
                Usage {
                    input: input_estimate,
                    cached_input: 0,
                    output: estimate_tokens(usage.text_chars),
                },
                true,
            ),
        };
        let (cost, durable) = charge.settle(usage, estimated, StreamEnd::Completed);
        // The client sees its answer only once the charge is durable.
        durable.await.map_err(ApiError::Ledger)?;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(HEADER_COST, header_value(&format!("{:.6}", cost.as_usd())));
        if let Some(remaining) =
            spend::tightest_remaining(&state.ledger.status(self.tenant, (state.clock)()))
        {
            headers.insert(
                HEADER_REMAINING,
                header_value(&format!("{:.6}", remaining.as_usd())),
            );
        }
        Ok(Answer::Complete {
            status,
            headers,
            body,
            cost,
        })
    }
}

/// Shadow mode: the logical model the client named (by logical or upstream name), if any.
/// `auto` names none, so it is routed as in enforce mode.
pub(super) fn shadow_target(policy: &Policy, requested: &str, kind: ModelKind) -> Option<usize> {
    policy
        .models
        .iter()
        .position(|m| m.kind == kind && (*m.name == *requested || *m.upstream == *requested))
}

/// The candidate that answered, with its response and the request's reservation.
pub(super) struct Sent<'p> {
    pub(super) model: &'p Model,
    pub(super) exchange: Exchange,
    pub(super) upstream: Response<Incoming>,
    pub(super) reservation: Reservation,
}

/// Try each candidate in order. Falls back on connect errors, header timeouts, 429 and 5xx —
/// all before any byte reached the client — moving the one reservation to the next
/// candidate's worst case (a candidate whose worst case does not fit is skipped). A request
/// the client wrote that cannot be translated for a candidate's provider is the client's
/// error, not a reason to fall back.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_first_available<'p>(
    state: &AppState,
    policy: &'p Policy,
    decision: &Decision<'p>,
    request: &chat::Request<'_>,
    original: &[u8],
    dialect: Dialect,
    operation: Operation,
    mut reservation: Reservation,
    facts: &spend::Facts,
    verbatim: bool,
) -> Result<Sent<'p>, ApiError> {
    let mut last: Option<providers::Error> = None;
    let input_tokens = request.input_token_bound();
    for (attempt, index) in decision.candidates.iter().enumerate() {
        let Some(model) = policy.model(*index) else {
            continue;
        };
        let Some(provider) = policy.provider_of(model) else {
            continue;
        };
        if attempt > 0 {
            let worst = spend::worst_case(model, input_tokens, request.max_tokens);
            match reservation.resize(worst).await {
                Ok(()) => {}
                Err(budget::Error::Exhausted(refused)) => {
                    tracing::info!(model = %model.name, budget = %refused.budget, "fallback skipped: over budget");
                    continue;
                }
                Err(err) => return Err(ApiError::Ledger(err)),
            }
        }
        let exchange = Exchange::new(dialect, provider.kind);
        let body = if verbatim && exchange.is_passthrough() {
            Bytes::copy_from_slice(original)
        } else {
            exchange.request(request, original, &model.upstream)?
        };
        let sent_at = Instant::now();
        let answer = state
            .client
            .send(provider, operation, body, request.stream)
            .await;
        metrics::record_upstream(&model.name, sent_at.elapsed());
        match answer {
            Ok(rsp)
                if rsp.status().is_server_error()
                    || rsp.status() == StatusCode::TOO_MANY_REQUESTS =>
            {
                let status = if rsp.status() == StatusCode::TOO_MANY_REQUESTS {
                    "rate_limited"
                } else {
                    "server_error"
                };
                metrics::record_upstream_error(&model.name, status);
                tracing::warn!(model = %model.name, status = rsp.status().as_u16(), "provider refused; trying the next candidate");
                last = Some(providers::Error::Status {
                    provider: provider.name.to_string(),
                    status: rsp.status(),
                });
            }
            Ok(upstream) => {
                return Ok(Sent {
                    model,
                    exchange,
                    upstream,
                    reservation,
                });
            }
            Err(err) => {
                metrics::record_upstream_error(&model.name, "unavailable");
                tracing::warn!(model = %model.name, error = %err, "provider unavailable; trying the next candidate");
                last = Some(err);
            }
        }
    }
    drop(reservation.release(facts.row("", "", "upstream_error")));
    Err(last.map_or(ApiError::NoRoute, ApiError::from))
}

/// Read a whole upstream body (bounded in size and time). `content_type`, when given, is
/// copied to `headers` (an upstream error passed through keeps its own type).
pub(super) async fn read_upstream(
    content_type: Option<HeaderValue>,
    body: Incoming,
    limit: usize,
    timeout: std::time::Duration,
    model: &str,
    headers: &mut HeaderMap,
) -> Result<Bytes, ApiError> {
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(source)) => Err(ApiError::Upstream(providers::Error::Body {
            provider: model.to_owned(),
            source,
        })),
        Err(_) => Err(ApiError::UpstreamTimeout(providers::Error::Timeout {
            provider: model.to_owned(),
            timeout,
        })),
    }
}
