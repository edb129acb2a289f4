//! The leaf handler: the request path as straight-line async code.
//!
//! read body (capped) → parse → `policy.snapshot()` → rules → `route::decide` → try candidates
//! in order (`Client::send`, falling back on connect errors, timeouts, 429 and 5xx before the
//! first byte) → stream back through `UsageTap`, or read the whole (bounded) JSON response →
//! usage → cost → tally. Wire-format differences (OpenAI ⇄ Anthropic) live in `exchange.rs`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::error::{ApiError, Dialect, full};
use super::exchange::{self, Exchange};
use super::stack::RequestId;
use super::{
    AppState, Body, HEADER_COST, HEADER_DIFFICULTY, HEADER_DRY_RUN, HEADER_MODEL, HEADER_REMAINING,
    HEADER_ROUTE, HEADER_TASK, HEADER_TIER,
};
use super::{HEADER_ESCALATED, HEADER_SHADOW_MODEL, auth, spend};
use crate::budget::{MicroUsd, Reservation, Tenant, Usage};
use crate::chat;
use crate::classify::{self, Classification, Difficulty, Task};
use crate::policy::{Mode, Model, ModelKind, Policy, Tier, Trigger};
use crate::providers::{self, Operation, StreamEnd, UsageTap, estimate_tokens};
use crate::route::{self, Decision, Facts, NoRoute, Reason, RuleInput};
use crate::telemetry::{RequestSpan, metrics};

/// Dispatch by method and path; every error becomes a response in the client's shape here.
pub async fn route_request(
    state: AppState,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| Arc::from("-"), |id| id.0.clone());
    let (result, dialect) = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => (
            complete(&state, req, Endpoint::Chat, &id).await,
            Dialect::OpenAi,
        ),
        (&Method::POST, "/v1/messages") => (
            complete(&state, req, Endpoint::Messages, &id).await,
            Dialect::Anthropic,
        ),
        (&Method::POST, "/v1/embeddings") => (
            complete(&state, req, Endpoint::Embeddings, &id).await,
            Dialect::OpenAi,
        ),
        (&Method::GET, "/v1/models") => (Ok(models(&state.policy.snapshot())), Dialect::OpenAi),
        (&Method::GET, "/healthz") => (
            Ok(Response::new(full(Bytes::from_static(b"ok\n")))),
            Dialect::OpenAi,
        ),
        (method, path) => (
            Err(ApiError::NotFound {
                method: method.to_string(),
                path: path.to_owned(),
            }),
            Dialect::OpenAi,
        ),
    };
    Ok(result.unwrap_or_else(|e| e.into_response_for(&id, dialect)))
}

/// The endpoints that cost money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Messages,
    Embeddings,
}

impl Endpoint {
    fn dialect(self) -> Dialect {
        match self {
            Endpoint::Messages => Dialect::Anthropic,
            Endpoint::Chat | Endpoint::Embeddings => Dialect::OpenAi,
        }
    }
}

async fn complete(
    state: &AppState,
    req: Request<Incoming>,
    endpoint: Endpoint,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let policy = state.policy.snapshot();
    let tenant = auth::authenticate(&policy, &parts.headers)?;
    let bytes = read_body(body, state.limits.max_body_bytes).await?;
    let (parse_kind, model_kind, operation) = match endpoint {
        Endpoint::Chat => (chat::Kind::Chat, ModelKind::Chat, Operation::Chat),
        Endpoint::Messages => (chat::Kind::Messages, ModelKind::Chat, Operation::Chat),
        Endpoint::Embeddings => (
            chat::Kind::Embeddings,
            ModelKind::Embedding,
            Operation::Embeddings,
        ),
    };
    let request = chat::parse(&bytes, parse_kind)?;
    if !policy.accepts_model(&request.model) {
        return Err(ApiError::UnknownModel(request.model.into_owned()));
    }
    let mut span = state.traces.start(
        match endpoint {
            Endpoint::Embeddings => "embeddings",
            Endpoint::Chat | Endpoint::Messages => "chat",
        },
        &request.model,
        request_id,
    );
    let classifier = state.classifier.load();
    let plan = plan(&classifier, &policy, &request, &parts.headers, model_kind)?;
    if parts
        .headers
        .get(HEADER_DRY_RUN)
        .is_some_and(|v| v.as_bytes() == b"1")
    {
        return Ok(dry_run(&policy, plan, &request));
    }
    let (class_task, class_difficulty) = (plan.task, plan.difficulty);
    let mut decision = match plan.decision {
        Ok(d) => d,
        Err(none) => {
            let reasons: Vec<String> = none.reasons.iter().map(ToString::to_string).collect();
            tracing::info!(reasons = ?reasons, "no route");
            span.failed("no_route");
            return Err(ApiError::NoRoute);
        }
    };
    span.decided(
        &decision.route.name,
        class_task.map(Task::as_str),
        class_difficulty.map(Difficulty::as_str),
    );

    // Money: reserve the worst case before anything is sent.
    let now = (state.clock)();
    let facts = spend::Facts {
        request_id: request_id.to_owned(),
        tenant: tenant.clone(),
        route: decision.route.name.clone(),
        task: class_task.map(Task::as_str),
        difficulty: class_difficulty.map(Difficulty::as_str),
        difficulty_score: plan.classification.as_ref().map(|c| c.difficulty_score),
        started,
        now,
        shadow: None,
    };
    // Shadow mode: forward exactly as the client asked; remember what the policy would do.
    let shadow = policy.mode == Mode::Shadow;
    let mut facts = facts;
    if shadow && let Some(asked) = shadow_target(&policy, &request.model, model_kind) {
        if let Some(would) = decision.candidates.first().and_then(|i| policy.model(*i)) {
            facts.shadow = Some((would.name.clone(), would.price));
        }
        decision.candidates = vec![asked];
    }
    // Only budgets with `downgrade_at` can keep frontier models for hard requests; shadow mode
    // forwards as asked whatever the budgets say.
    if !shadow && policy.budgets.iter().any(|b| b.downgrade_at.is_some()) {
        let statuses = state.ledger.status(&tenant, now);
        spend::keep_frontier_for_hard(
            &policy,
            &mut decision,
            class_difficulty,
            &statuses,
            model_kind,
        );
    }
    let reservation = match spend::reserve(
        &state.ledger,
        &policy,
        &tenant,
        &mut decision,
        request.input_token_bound(),
        request.max_tokens,
        now,
    ) {
        Ok(r) => r,
        Err(exhausted) => {
            // The refusal leaves its row too; nobody waits for it.
            drop(state.ledger.record(facts.row("", "", "rejected")));
            metrics::record_rejection(&exhausted.budget);
            span.failed("budget_exceeded");
            return Err(ApiError::BudgetExceeded(exhausted));
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_ROUTE, header_value(&decision.route.name));
    if let Some(task) = class_task {
        headers.insert(HEADER_TASK, HeaderValue::from_static(task.as_str()));
    }
    if let Some(difficulty) = class_difficulty {
        headers.insert(
            HEADER_DIFFICULTY,
            HeaderValue::from_static(difficulty.as_str()),
        );
    }
    if let Some((would, _)) = &facts.shadow {
        headers.insert(HEADER_SHADOW_MODEL, header_value(would));
    }
    let call = Call {
        verbatim: facts.shadow.is_some(),
        state,
        policy: &policy,
        request: &request,
        original: &bytes,
        dialect: endpoint.dialect(),
        operation,
        request_id,
        tenant: &tenant,
    };
    if decision
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::Downgraded { .. } | Reason::FrontierKeptForHard))
    {
        metrics::record_downgrade(&decision.route.name);
    }
    metrics::record_overhead(started.elapsed());
    let first = call
        .attempt(&decision, reservation, facts.clone(), span)
        .await;

    // The escalation cascade: non-streamed answers only, before anything reached the client.
    let Some(escalate) = decision.route.escalate.as_ref().filter(|_| !request.stream) else {
        return first.map(|a| a.into_response(headers));
    };
    let trigger = match &first {
        Err(_) if escalate.on.contains(&Trigger::Error) => Some(Trigger::Error),
        Err(_) => None,
        Ok(answer) => answer.failed_check(&escalate.on, &request, endpoint.dialect()),
    };
    let Some(trigger) = trigger else {
        return first.map(|a| a.into_response(headers));
    };
    let mut second = Decision {
        route: decision.route,
        candidates: vec![escalate.to],
        reasons: Vec::new(),
    };
    let Ok(reservation) = spend::reserve(
        &state.ledger,
        &policy,
        &tenant,
        &mut second,
        request.input_token_bound(),
        request.max_tokens,
        (state.clock)(),
    ) else {
        tracing::info!(
            trigger = trigger.as_str(),
            "escalation skipped: over budget"
        );
        return first.map(|a| a.into_response(headers));
    };
    tracing::debug!(trigger = trigger.as_str(), "escalating");
    let first_cost = first.as_ref().map_or(MicroUsd::ZERO, Answer::cost);
    metrics::record_escalation(&decision.route.name, trigger.as_str());
    // The escalation is its own attempt, with its own span.
    let span = state.traces.start("chat", &request.model, request_id);
    let mut escalated = call.attempt(&second, reservation, facts, span).await?;
    escalated.add_cost(first_cost);
    headers.insert(HEADER_ESCALATED, HeaderValue::from_static(trigger.as_str()));
    Ok(escalated.into_response(headers))
}

/// What one attempt needs from the request, whichever candidates it tries.
struct Call<'a, 'p> {
    state: &'a AppState,
    policy: &'p Policy,
    request: &'a chat::Request<'a>,
    original: &'a [u8],
    dialect: Dialect,
    operation: Operation,
    request_id: &'a str,
    tenant: &'a Tenant,
    /// Shadow mode: send the client's bytes unchanged (same wire format).
    verbatim: bool,
}

/// One attempt's answer: a stream already on its way, or a complete (charged) response.
enum Answer {
    Stream(Response<Body>),
    Complete {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        cost: MicroUsd,
    },
}

impl Answer {
    fn cost(&self) -> MicroUsd {
        match self {
            Answer::Complete { cost, .. } => *cost,
            Answer::Stream(_) => MicroUsd::ZERO,
        }
    }

    /// Both attempts of an escalation are charged; the header reports the total.
    fn add_cost(&mut self, extra: MicroUsd) {
        if let Answer::Complete { cost, headers, .. } = self {
            *cost += extra;
            headers.insert(HEADER_COST, header_value(&format!("{:.6}", cost.as_usd())));
        }
    }

    /// The first of `checks` this (non-streamed) answer fails.
    fn failed_check(
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

    fn into_response(self, mut extra: HeaderMap) -> Response<Body> {
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
    async fn attempt(
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

/// Classification, overrides and the routing decision for one request.
struct Plan<'p> {
    classification: Option<Classification>,
    task: Option<Task>,
    difficulty: Option<Difficulty>,
    decision: Result<Decision<'p>, NoRoute<'p>>,
}

/// classify → rules → decide → tier pin. Pure but for the classifier call.
fn plan<'p>(
    classifier: &classify::Model,
    policy: &'p Policy,
    request: &chat::Request<'_>,
    headers: &HeaderMap,
    kind: ModelKind,
) -> Result<Plan<'p>, ApiError> {
    let classification = (kind == ModelKind::Chat).then(|| {
        let started = Instant::now();
        let c = classifier.classify(&classifier_input(request), &policy.thresholds);
        metrics::record_classify(started.elapsed());
        c
    });
    let last_user = request.last_user_text();
    let overrides = route::apply_rules(
        policy,
        &RuleInput {
            last_user: &last_user,
            input_tokens: estimate_tokens(request.input_chars),
            headers,
        },
    );
    let task = overrides
        .task
        .map(|(t, _)| t)
        .or(classification.as_ref().map(|c| c.task));
    let difficulty = overrides
        .difficulty
        .map(|(d, _)| d)
        .or(classification.as_ref().map(|c| c.difficulty));
    let pin = match headers.get(HEADER_TIER).map(|v| v.as_bytes()) {
        None => None,
        Some(b"open") => Some(Tier::Open),
        Some(b"frontier") => Some(Tier::Frontier),
        Some(_) => {
            return Err(ApiError::BadHeader {
                name: "x-switchyard-tier",
                expected: "`open` or `frontier`",
            });
        }
    };
    let facts = Facts {
        requested_model: &request.model,
        headers,
        kind,
        task,
        difficulty,
    };
    let mut decision = route::decide(policy, &facts);
    if let Ok(d) = &mut decision {
        if let Some((task, rule)) = overrides.task {
            d.reasons.insert(
                0,
                Reason::RuleApplied {
                    rule,
                    field: "task",
                    value: task.as_str(),
                },
            );
        }
        if let Some((difficulty, rule)) = overrides.difficulty {
            d.reasons.insert(
                0,
                Reason::RuleApplied {
                    rule,
                    field: "difficulty",
                    value: difficulty.as_str(),
                },
            );
        }
        match pin {
            Some(tier) if policy.allow_tier_header => route::pin_tier(policy, d, tier, kind),
            Some(_) => d.reasons.push(Reason::TierPinRefused),
            None => {}
        }
    }
    Ok(Plan {
        classification,
        task,
        difficulty,
        decision,
    })
}

/// The classifier's view of a chat request.
fn classifier_input<'r>(request: &'r chat::Request<'_>) -> classify::Input<'r> {
    classify::Input {
        turns: request
            .messages
            .iter()
            .map(|m| classify::Turn {
                role: classify::Role::from_name(&m.role),
                text: m.text(),
            })
            .collect(),
        has_tools: request.has_tools,
        response_format: match request.response_format.as_deref() {
            Some("json_object") => Some(classify::ResponseFormat::JsonObject),
            Some("json_schema") => Some(classify::ResponseFormat::JsonSchema),
            Some(_) => Some(classify::ResponseFormat::Text),
            None => None,
        },
        max_tokens: request
            .max_tokens
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

/// What `switchyard explain` prints for a chat request body: the same plan the proxy makes,
/// explained. Calls nothing.
pub fn explain(
    classifier: &classify::Model,
    policy: &Policy,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<route::Explanation, ApiError> {
    let request = chat::parse(body, chat::Kind::Chat)?;
    if !policy.accepts_model(&request.model) {
        return Err(ApiError::UnknownModel(request.model.into_owned()));
    }
    let plan = plan(classifier, policy, &request, headers, ModelKind::Chat)?;
    Ok(explanation(policy, plan, &request))
}

fn explanation(policy: &Policy, plan: Plan<'_>, request: &chat::Request<'_>) -> route::Explanation {
    let decision = match &plan.decision {
        Ok(d) => Ok(d),
        Err(none) => Err(none.reasons.as_slice()),
    };
    route::explain(
        policy,
        plan.classification,
        plan.task,
        plan.difficulty,
        decision,
        request.input_token_bound(),
        request.max_tokens,
    )
}

/// `x-switchyard-dry-run: 1`: the decision, its reasons and candidate costs; no provider call.
fn dry_run(policy: &Policy, plan: Plan<'_>, request: &chat::Request<'_>) -> Response<Body> {
    let explanation = explanation(policy, plan, request);
    let body = serde_json::to_vec(&explanation).unwrap_or_default();
    let mut rsp = Response::new(full(Bytes::from(body)));
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}

/// Shadow mode: the logical model the client named (by logical or upstream name), if any.
/// `auto` names none, so it is routed as in enforce mode.
fn shadow_target(policy: &Policy, requested: &str, kind: ModelKind) -> Option<usize> {
    policy
        .models
        .iter()
        .position(|m| m.kind == kind && (*m.name == *requested || *m.upstream == *requested))
}

/// The candidate that answered, with its response and the request's reservation.
struct Sent<'p> {
    model: &'p Model,
    exchange: Exchange,
    upstream: Response<Incoming>,
    reservation: Reservation,
}

/// Try each candidate in order. Falls back on connect errors, header timeouts, 429 and 5xx —
/// all before any byte reached the client — moving the one reservation to the next
/// candidate's worst case (a candidate whose worst case does not fit is skipped). A request
/// the client wrote that cannot be translated for a candidate's provider is the client's
/// error, not a reason to fall back.
#[allow(clippy::too_many_arguments)]
async fn send_first_available<'p>(
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
            if let Err(refused) = reservation.resize(worst) {
                tracing::info!(model = %model.name, budget = %refused.budget, "fallback skipped: over budget");
                continue;
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

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::TooLarge { limit })
        }
        Err(err) => Err(ApiError::ClientBody(err)),
    }
}

/// Read a whole upstream body (bounded in size and time). `content_type`, when given, is
/// copied to `headers` (an upstream error passed through keeps its own type).
async fn read_upstream(
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

fn with_headers(mut rsp: Response<Body>, status: StatusCode, headers: HeaderMap) -> Response<Body> {
    *rsp.status_mut() = status;
    rsp.headers_mut().extend(headers);
    rsp
}

/// Names from the policy are plain ASCII in practice; anything unencodable becomes `invalid`
/// rather than failing the response.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn models(policy: &Policy) -> Response<Body> {
    let data: Vec<serde_json::Value> = policy
        .listed_models()
        .into_iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "switchyard"}))
        .collect();
    let body = serde_json::json!({"object": "list", "data": data});
    let mut rsp = Response::new(full(Bytes::from(body.to_string())));
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}
