//! Test harness: a scripted mock upstream on 127.0.0.1:0, switchyard in-process on
//! 127.0.0.1:0, and a small HTTP client. No fixed ports, no sleeps as synchronisation.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type MockBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// What the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One scripted answer.
pub enum Reply {
    /// A complete response.
    Json(StatusCode, serde_json::Value),
    /// SSE events; before each event whose index is in `gates`, wait for that gate.
    Sse {
        events: Vec<String>,
        gate: Option<(usize, Arc<Notify>)>,
    },
    /// Send the SSE events, wait for the gate, then cut the connection mid-body.
    SseThenCut(Vec<String>, Arc<Notify>),
    /// SSE events, counting in `sent` how many the connection has taken so far.
    SseCounted(Vec<String>, Arc<std::sync::atomic::AtomicUsize>),
    /// Accept the request and never answer.
    Hang,
}

pub type Script = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

pub struct Mock {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Mock {
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

pub async fn mock(script: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let script: Script = Arc::new(script);
    let rec = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            let rec = rec.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let script = script.clone();
                    let rec = rec.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let r = Received {
                            path,
                            headers,
                            body,
                        };
                        rec.lock().unwrap().push(r.clone());
                        Ok::<_, Infallible>(answer(script(&r)).await)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Mock { addr, received }
}

async fn answer(reply: Reply) -> Response<MockBody> {
    match reply {
        Reply::Json(status, value) => {
            let mut rsp = Response::new(
                Full::new(Bytes::from(value.to_string()))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            );
            *rsp.status_mut() = status;
            rsp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            rsp
        }
        Reply::Sse { events, gate } => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(64);
            tokio::spawn(async move {
                for (i, e) in events.into_iter().enumerate() {
                    if let Some((at, notify)) = &gate
                        && *at == i
                    {
                        notify.notified().await;
                    }
                    if tx.send(Ok(Frame::data(Bytes::from(e)))).await.is_err() {
                        return;
                    }
                }
            });
            sse_response(rx)
        }
        Reply::SseThenCut(events, gate) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(64);
            tokio::spawn(async move {
                for e in events {
                    let _ = tx.send(Ok(Frame::data(Bytes::from(e)))).await;
                }
                gate.notified().await;
                let _ = tx.send(Err("cut".into())).await;
            });
            sse_response(rx)
        }
        Reply::SseCounted(events, sent) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
            tokio::spawn(async move {
                for e in events {
                    if tx.send(Ok(Frame::data(Bytes::from(e)))).await.is_err() {
                        return;
                    }
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
            sse_response(rx)
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

fn sse_response(
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
) -> Response<MockBody> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut rsp = Response::new(StreamBody::new(stream).boxed_unsync());
    rsp.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    rsp
}

/// switchyard running in-process.
pub struct Proxy {
    pub addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    pub state: switchyard::AppState,
    stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Proxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    /// Begin graceful shutdown.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn proxy(policy_yaml: &str) -> Proxy {
    proxy_with(policy_yaml, switchyard::Limits::default()).await
}

pub async fn proxy_with(policy_yaml: &str, limits: switchyard::Limits) -> Proxy {
    proxy_full(policy_yaml, limits, switchyard::system_clock()).await
}

/// A clock the test moves by hand.
pub fn manual_clock(start: &str) -> (switchyard::Clock, Arc<Mutex<jiff::Timestamp>>) {
    let now = Arc::new(Mutex::new(start.parse::<jiff::Timestamp>().unwrap()));
    let n = now.clone();
    (Arc::new(move || *n.lock().unwrap()), now)
}

pub async fn proxy_full(
    policy_yaml: &str,
    limits: switchyard::Limits,
    clock: switchyard::Clock,
) -> Proxy {
    let policy = switchyard::Policy::from_yaml("test.yaml", policy_yaml, &|_| None)
        .unwrap_or_else(|e| panic!("{e:#?}"));
    let data_dir = tempfile::tempdir().unwrap();
    let state = switchyard::state_with_clock(policy, limits, data_dir.path(), clock).unwrap();
    proxy_from_state(state, data_dir).await
}

/// Serve an already built state (its ledger in `data_dir`).
pub async fn proxy_from_state(state: switchyard::AppState, data_dir: tempfile::TempDir) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(switchyard::run(state.clone(), listener, async {
        let _ = rx.await;
    }));
    Proxy {
        addr,
        data_dir,
        state,
        stop: Some(tx),
        done,
    }
}

/// A policy with one OpenAI-compatible provider per URL, models `m0`, `m1`, … on them, and one
/// catch-all route using them in order.
pub fn openai_policy(urls: &[String]) -> String {
    let mut out = String::from("version: 1\nproviders:\n");
    for (i, u) in urls.iter().enumerate() {
        out.push_str(&format!(
            "  p{i}: {{ kind: openai, base_url: \"{u}\", read_timeout_ms: 5000 }}\n"
        ));
    }
    out.push_str("models:\n");
    for i in 0..urls.len() {
        out.push_str(&format!(
            "  m{i}: {{ provider: p{i}, model: upstream-{i}, tier: open, price: {{ input: 1.0, output: 2.0 }} }}\n"
        ));
    }
    let names: Vec<String> = (0..urls.len()).map(|i| format!("m{i}")).collect();
    out.push_str(&format!(
        "routes:\n  - {{ name: main, use: [{}] }}\n",
        names.join(", ")
    ));
    out
}

pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

pub async fn post(url: &str, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Answer {
    let rsp = post_raw(url, body, headers).await;
    let status = rsp.status();
    let headers = rsp.headers().clone();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn post_raw(
    url: &str,
    body: impl Into<Bytes>,
    headers: &[(&str, &str)],
) -> Response<Incoming> {
    let mut req = Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client()
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap()
}

pub async fn get(url: &str) -> Answer {
    let rsp = client()
        .request(Request::get(url).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = rsp.status();
    let headers = rsp.headers().clone();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// Read the next data frame of a streaming body (None at the end). Guarded by a generous
/// timeout so a buffering bug fails the test instead of hanging it.
pub async fn next_chunk(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("no chunk within 10 s")?
            .ok()?;
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}

/// OpenAI chat chunk events for `words`, then usage (if `usage`), then `[DONE]`.
pub fn openai_stream(words: &[&str], usage: Option<(u64, u64)>) -> Vec<String> {
    let mut events = vec![format!(
        "data: {}\n\n",
        serde_json::json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"u","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})
    )];
    for w in words {
        events.push(format!(
            "data: {}\n\n",
            serde_json::json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"u","choices":[{"index":0,"delta":{"content":w},"finish_reason":null}]})
        ));
    }
    events.push(format!(
        "data: {}\n\n",
        serde_json::json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"u","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})
    ));
    if let Some((p, c)) = usage {
        events.push(format!(
            "data: {}\n\n",
            serde_json::json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"u","choices":[],"usage":{"prompt_tokens":p,"completion_tokens":c,"total_tokens":p+c}})
        ));
    }
    events.push("data: [DONE]\n\n".to_owned());
    events
}

pub fn completion(content: &str, prompt_tokens: u64, completion_tokens: u64) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "upstream-0",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
    })
}

/// A loopback address nothing listens on (bound, then released).
pub async fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/v1")
}

/// The summed tally over every route and model.
pub fn totals(state: &switchyard::AppState) -> switchyard::tally::Totals {
    let mut t = switchyard::tally::Totals::default();
    for (_, _, r) in state.tally.rows() {
        t.requests += r.requests;
        t.input_tokens += r.input_tokens;
        t.cached_input_tokens += r.cached_input_tokens;
        t.output_tokens += r.output_tokens;
        t.cost += r.cost;
        t.estimated += r.estimated;
        t.streamed += r.streamed;
    }
    t
}

/// Every ledger row as (request_id, key, team, model, status, cost micro-dollars, output tokens),
/// after a flush.
pub async fn ledger_rows(
    p: &Proxy,
) -> Vec<(String, String, Option<String>, String, String, u64, u64)> {
    p.state.ledger.flush().await.unwrap();
    let db = rusqlite::Connection::open(p.data_dir.path().join("ledger.sqlite3")).unwrap();
    let mut stmt = db
        .prepare("SELECT request_id, key, team, model, status, cost, output_tokens FROM requests ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The admin listener running in-process on 127.0.0.1:0 over `state`.
pub struct AdminServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl AdminServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn admin(
    state: &switchyard::AppState,
    admin: switchyard::dashboard::Admin,
) -> AdminServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(switchyard::dashboard::serve(
        listener,
        state.clone(),
        admin,
        async {
            let _ = rx.await;
        },
    ));
    AdminServer {
        addr,
        stop: Some(tx),
    }
}

/// GET with extra headers.
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let rsp = client()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = rsp.status();
    let headers = rsp.headers().clone();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// The dashboard's money format (`app.js` `money` for USD): two decimals with thousands
/// separators from $1 up, four below.
pub fn dollars(usd: f64) -> String {
    if usd.abs() >= 1.0 {
        let cents = format!("{usd:.2}");
        let (int, frac) = cents.split_once('.').unwrap();
        let mut grouped = String::new();
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("${grouped}.{frac}")
    } else {
        format!("${usd:.4}")
    }
}

/// `SWITCHYARD_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test` (trust auth).
pub fn pg_base_url() -> String {
    std::env::var("SWITCHYARD_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL schema of a test's own, dropped at the end (`drop_schema`).
pub struct Schema {
    pub name: String,
    pub admin: tokio_postgres::Client,
}

impl Schema {
    pub async fn new(test: &str) -> Schema {
        let (admin, conn) = tokio_postgres::connect(&pg_base_url(), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL at SWITCHYARD_TEST_PG_URL (default 127.0.0.1:5432, database test)");
        tokio::spawn(conn);
        let name = format!("sy_{test}_{}", std::process::id());
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await
            .unwrap();
        Schema { name, admin }
    }

    /// The store URL selecting this schema.
    pub fn url(&self) -> String {
        let base = pg_base_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-csearch_path%3D{}", self.name)
    }

    /// The real server's TCP address, for a test that puts something in front of it.
    pub fn server(&self) -> (String, u16) {
        let config: tokio_postgres::Config = pg_base_url().parse().unwrap();
        match (config.get_hosts().first(), config.get_ports().first()) {
            (Some(tokio_postgres::config::Host::Tcp(h)), Some(port)) => (h.clone(), *port),
            other => panic!("a TCP PostgreSQL is needed, not {other:?}"),
        }
    }

    /// A store URL for this schema reaching PostgreSQL through `127.0.0.1:port`, with `extra`
    /// query parameters (`sslmode=require&`…).
    pub fn url_via(&self, port: u16, extra: &str) -> String {
        let config: tokio_postgres::Config = pg_base_url().parse().unwrap();
        let password = config
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        format!(
            "postgres://{}{password}@127.0.0.1:{port}/{}?{extra}options=-csearch_path%3D{}",
            config.get_user().unwrap_or("postgres"),
            config.get_dbname().unwrap_or("test"),
            self.name
        )
    }

    /// The first column of the one row `sql` returns; `{s}` stands for the schema.
    pub async fn one(&self, sql: &str) -> i64 {
        self.admin
            .query_one(&sql.replace("{s}", &self.name), &[])
            .await
            .unwrap()
            .get(0)
    }

    pub async fn drop_schema(self) {
        self.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .unwrap();
    }
}
