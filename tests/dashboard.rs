//! The admin listener over a seeded ledger: every `/api/v1` endpoint, auth, redaction, and the
//! page itself in headless Chromium (figures equal the API's, the month picker works, a
//! screenshot is written under target/).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http::StatusCode;
use serde_json::{Value, json};
use support::*;
use switchyard::dashboard::{Admin, Token, check_exposure};

const PROVIDER_SECRET: &str = "sk-live-SECRET-0123456789abcdef";
const KEY_SEARCH: &str = "sy-search-virtual-key-secret";
const KEY_DATA: &str = "sy-data-virtual-key-secret";
const PROMPT: &str = "please summarise this confidential memo about Project Nightingale";

fn policy(url: &str, extra: &str) -> String {
    format!(
        r#"version: 1
providers:
  local: {{ kind: openai, base_url: "{url}", read_timeout_ms: 5000 }}
  cloud: {{ kind: openai, base_url: "{url}", api_key: "{PROVIDER_SECRET}", read_timeout_ms: 5000 }}
models:
  small: {{ provider: local, model: small-up, tier: open, price: {{ input: 1.0, output: 2.0 }} }}
  big: {{ provider: cloud, model: big-up, tier: frontier, price: {{ input: 10.0, output: 30.0 }} }}
routes:
  - {{ name: main, use: [small, big] }}
baseline: big
allow_tier_header: true
budgets:
  - {{ name: company, limit_usd: 0.1, warn_at: [0.5, 0.8], downgrade_at: 0.9, on_limit: reject }}
  - {{ name: per-team, scope: team, limit_usd: 0.05, on_limit: downgrade }}
keys:
  - {{ name: search-backend, team: search, sha256: "{}" }}
  - {{ name: batch-jobs, team: data, sha256: "{}" }}
{extra}"#,
        switchyard::server::hash_key(KEY_SEARCH),
        switchyard::server::hash_key(KEY_DATA),
    )
}

struct Seeded {
    proxy: Proxy,
    _upstream: Mock,
    clock: Arc<Mutex<jiff::Timestamp>>,
}

async fn chat(p: &Proxy, key: &str, tier: &str) -> Answer {
    let body = json!({"model": "auto", "max_tokens": 600, "messages": [{"role": "user", "content": PROMPT}]});
    post(
        &p.url("/v1/chat/completions"),
        body.to_string(),
        &[
            ("authorization", &format!("Bearer {key}")),
            ("x-switchyard-tier", tier),
        ],
    )
    .await
}

/// October: two small requests. November (now: the 11th): three small ones from `data`, two
/// big ones from `search` (its team budget is then capped) and a third big one refused.
/// Every response is 1000 input + 500 output tokens: small costs $0.002, big (the baseline)
/// $0.025.
async fn seeded(extra: &str) -> Seeded {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("done", 1000, 500))).await;
    let (clock, now) = manual_clock("2026-10-20T12:00:00Z");
    let p = proxy_full(
        &policy(&up.url(), extra),
        switchyard::Limits::default(),
        clock,
    )
    .await;
    for _ in 0..2 {
        assert_eq!(chat(&p, KEY_DATA, "open").await.status, StatusCode::OK);
    }
    *now.lock().unwrap() = "2026-11-11T12:00:00Z".parse().unwrap();
    for _ in 0..3 {
        assert_eq!(chat(&p, KEY_DATA, "open").await.status, StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(
            chat(&p, KEY_SEARCH, "frontier").await.status,
            StatusCode::OK
        );
    }
    let refused = chat(&p, KEY_SEARCH, "frontier").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        refused.json()
    );
    p.state.ledger.flush().await.unwrap();
    Seeded {
        proxy: p,
        _upstream: up,
        clock: now,
    }
}

fn close(a: &Value, b: f64) {
    let a = a.as_f64().unwrap_or_else(|| panic!("not a number: {a}"));
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

async fn api(admin: &AdminServer, path: &str) -> Value {
    let a = get(&admin.url(path)).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{path}: {}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header("content-type"), "application/json");
    a.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_endpoint_answers_from_the_seeded_ledger() {
    let s = seeded("").await;
    let admin = admin(&s.proxy.state, Admin::default()).await;

    let b = api(&admin, "/api/v1/budgets").await;
    assert_eq!(
        (b["month"].as_str(), b["current"].as_bool()),
        (Some("2026-11"), Some(true))
    );
    let company = b["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["budget"] == "company")
        .unwrap();
    close(&company["spent_usd"], 0.056);
    close(&company["limit_usd"], 0.1);
    close(&company["remaining_usd"], 0.044);
    assert_eq!(company["state"], "warned");
    close(&company["warned_at"], 0.5);
    assert_eq!(company["warn_at"], json!([0.5, 0.8]));
    close(&company["downgrade_at"], 0.9);
    // 10.5 days into a 30-day month: $0.056 → $0.16 projected, $0.1 reached on day 18.75.
    close(&company["projected_usd"], 0.16);
    assert_eq!(company["cap_reached_at"], "2026-11-19T18:00:00Z");
    let search = b["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["scope_id"] == "search")
        .unwrap();
    assert_eq!(
        (search["budget"].as_str(), search["state"].as_str()),
        (Some("per-team"), Some("capped"))
    );

    let oct = api(&admin, "/api/v1/budgets?month=2026-10").await;
    assert_eq!(oct["current"], false);
    let company_oct = oct["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["budget"] == "company")
        .unwrap();
    close(&company_oct["spent_usd"], 0.004);
    close(&company_oct["projected_usd"], 0.004);

    let spend = api(&admin, "/api/v1/spend?by=model").await;
    assert_eq!(spend["by"], "model");
    let rows = spend["rows"].as_array().unwrap();
    assert_eq!(rows[0]["model"], "big");
    assert_eq!(rows[0]["requests"], 2);
    close(&rows[0]["cost_usd"], 0.05);
    close(&spend["total"]["cost_usd"], 0.056);
    close(&spend["total"]["baseline_cost_usd"], 0.125);
    close(&spend["total"]["savings_usd"], 0.069);
    close(&spend["total"]["savings_pct"], 55.2);
    let tier = api(&admin, "/api/v1/spend?by=tier").await;
    let open = tier["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tier"] == "open")
        .unwrap();
    assert_eq!(open["requests"], 3);
    let team = api(&admin, "/api/v1/spend?by=team&month=2026-10").await;
    assert_eq!(team["rows"][0]["team"], "data");
    close(&team["total"]["cost_usd"], 0.004);
    for dim in ["task", "route", "key"] {
        let r = api(&admin, &format!("/api/v1/spend?by={dim}")).await;
        close(&r["total"]["cost_usd"], 0.056);
    }

    let daily = api(&admin, "/api/v1/daily").await;
    let days = daily["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[10]["day"], "2026-11-11");
    assert_eq!(days[10]["requests"], 6);
    close(&days[10]["cost_usd"], 0.056);
    close(&days[29]["cumulative_cost_usd"], 0.056);
    assert_eq!(days[0]["requests"], 0);

    let grid = api(&admin, "/api/v1/grid").await;
    assert_eq!(grid["tasks"].as_array().unwrap().len(), 11);
    assert_eq!(grid["difficulties"], json!(["easy", "medium", "hard"]));
    let counted: u64 = grid["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 6);
    assert!(
        grid["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["task"] != "" && c["difficulty"] != "")
    );

    let recent = api(&admin, "/api/v1/recent?limit=2").await;
    let last = recent["requests"].as_array().unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last[0]["status"], "rejected");
    assert_eq!(last[1]["key"], "search-backend");
    assert_eq!(last[1]["team"], "search");
    assert_eq!(last[1]["model"], "big");
    assert_eq!(last[1]["route"], "main");
    assert_eq!(
        (
            last[1]["input_tokens"].as_u64(),
            last[1]["output_tokens"].as_u64()
        ),
        (Some(1000), Some(500))
    );
    close(&last[1]["cost_usd"], 0.025);
    for field in ["time", "task", "difficulty", "latency_ms", "status"] {
        assert!(!last[1][field].is_null(), "{field}");
    }
    let october = api(&admin, "/api/v1/recent?month=2026-10").await;
    assert_eq!(october["requests"].as_array().unwrap().len(), 2);

    let policy = api(&admin, "/api/v1/policy").await;
    assert_eq!(policy["baseline"], "big");
    let cloud = policy["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cloud")
        .unwrap();
    assert_eq!(cloud["api_key"], "[redacted]");
    assert_eq!(
        policy["keys"][0],
        json!({"name": "search-backend", "team": "search"})
    );
    assert_eq!(policy["reload"]["last_attempt_ok"], true);

    assert_eq!(get(&admin.url("/healthz")).await.status, StatusCode::OK);
    assert_eq!(get(&admin.url("/readyz")).await.status, StatusCode::OK);
    // No recorder given: /metrics says so rather than serving an empty page.
    assert_eq!(
        get(&admin.url("/metrics")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let index = get(&admin.url("/")).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(
        index
            .header("content-security-policy")
            .contains("script-src 'self'")
    );
    assert!(String::from_utf8_lossy(&index.body).contains("/assets/app.js"));
    drop(s.clock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_named_in_the_proxy_error_shape() {
    let s = seeded("").await;
    let admin = admin(&s.proxy.state, Admin::default()).await;
    for (path, param) in [
        ("/api/v1/spend?by=colour", "by"),
        ("/api/v1/daily?month=2026-13", "month"),
        ("/api/v1/budgets?month=nov", "month"),
        ("/api/v1/recent?limit=100000", "limit"),
    ] {
        let a = get(&admin.url(path)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        let e = a.json();
        assert_eq!(e["error"]["param"], param, "{path}");
        assert_eq!(e["error"]["code"], "bad_request");
    }
    assert_eq!(
        get(&admin.url("/api/v1/nothing")).await.status,
        StatusCode::NOT_FOUND
    );
    let a = post(&admin.url("/api/v1/budgets"), "", &[]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_admin_response_contains_a_secret_or_prompt_text() {
    let s = seeded("display_currency: { code: MYR, per_usd: 4.45 }\n").await;
    let admin = admin(&s.proxy.state, Admin::default()).await;
    let paths = [
        "/",
        "/assets/app.js",
        "/api/v1/budgets",
        "/api/v1/spend?by=key",
        "/api/v1/spend?by=team",
        "/api/v1/daily",
        "/api/v1/grid",
        "/api/v1/recent?limit=500",
        "/api/v1/policy",
    ];
    let hashes = [
        switchyard::server::hash_key(KEY_SEARCH),
        switchyard::server::hash_key(KEY_DATA),
    ];
    for path in paths {
        let body = String::from_utf8(get(&admin.url(path)).await.body.to_vec()).unwrap();
        for secret in [
            PROVIDER_SECRET,
            KEY_SEARCH,
            KEY_DATA,
            "Nightingale",
            &hashes[0],
            &hashes[1],
        ] {
            assert!(!body.contains(secret), "{path} shows {secret}");
        }
    }
    let budgets = api(&admin, "/api/v1/budgets").await;
    assert_eq!(budgets["currency"], json!({"code": "MYR", "per_usd": 4.45}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_guards_everything_but_the_probes() {
    let s = seeded("").await;
    let token = "admin-token-for-tests";
    let admin = admin(
        &s.proxy.state,
        Admin {
            token: Some(Token::new(token).unwrap()),
            metrics: None,
        },
    )
    .await;
    for path in [
        "/",
        "/assets/app.js",
        "/api/v1/budgets",
        "/api/v1/policy",
        "/metrics",
    ] {
        let a = get(&admin.url(path)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(a.json()["error"]["code"], "unauthorized");
        let wrong = get_with(
            &admin.url(path),
            &[("authorization", "Bearer admin-token-for-test")],
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let refused = post(&admin.url("/api/v1/policy/reload"), "", &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&admin.url("/healthz")).await.status, StatusCode::OK);
    assert_eq!(get(&admin.url("/readyz")).await.status, StatusCode::OK);
    let bearer = format!("Bearer {token}");
    let ok = get_with(&admin.url("/api/v1/budgets"), &[("authorization", &bearer)]).await;
    assert_eq!(ok.status, StatusCode::OK);

    // A browser opens /?token=… once: a cookie, and the token leaves the address bar.
    let first = get(&admin.url(&format!("/?month=2026-10&token={token}"))).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(first.header("location"), "/?month=2026-10");
    let cookie = first
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(first.header("set-cookie").contains("HttpOnly"));
    let page = get_with(&admin.url("/api/v1/daily"), &[("cookie", &cookie)]).await;
    assert_eq!(page.status, StatusCode::OK);
    let bad = get(&admin.url("/?token=nope")).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn a_token_is_required_beyond_loopback() {
    let open: std::net::SocketAddr = "0.0.0.0:9090".parse().unwrap();
    let err = check_exposure(open, None).unwrap_err();
    assert!(err.to_string().contains("SWITCHYARD_ADMIN_TOKEN"), "{err}");
    let token = Token::new("t").unwrap();
    assert!(check_exposure(open, Some(&token)).is_ok());
    assert!(check_exposure("127.0.0.1:9090".parse().unwrap(), None).is_ok());
    assert!(check_exposure("[::1]:9090".parse().unwrap(), None).is_ok());
    assert!(Token::new("  ").is_err());
    assert_eq!(format!("{token:?}"), "Token([redacted])");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_answers_with_file_line_column_errors_and_keeps_the_old_policy() {
    let up = mock(|_| Reply::Json(StatusCode::OK, completion("done", 10, 5))).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    let text = policy(&up.url(), "");
    std::fs::write(&file, &text).unwrap();
    let state = switchyard::state_from_file(
        &file,
        switchyard::Limits::default(),
        switchyard::budget::Store::open_sqlite(&dir.path().join("data")).unwrap(),
        switchyard::system_clock(),
    )
    .unwrap();
    let admin = admin(&state, Admin::default()).await;

    std::fs::write(&file, text.replace("baseline: big", "baseline: bigg")).unwrap();
    let refused = post(&admin.url("/api/v1/policy/reload"), "", &[]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = refused.json();
    assert_eq!(r["ok"], false);
    let line = text
        .lines()
        .position(|l| l.starts_with("baseline:"))
        .unwrap()
        + 1;
    let expected = format!(
        "{}:{line}:11: unknown model `bigg` (at `baseline`)\n  hint: did you mean `big`?",
        file.display()
    );
    assert_eq!(r["errors"], json!([expected]));
    let status = api(&admin, "/api/v1/policy").await;
    assert_eq!(status["baseline"], "big", "the old policy keeps serving");
    assert_eq!(status["reload"]["last_attempt_ok"], false);
    assert_eq!(status["reload"]["failures"], 1);

    std::fs::write(&file, text.replace("limit_usd: 0.1,", "limit_usd: 7,")).unwrap();
    let ok = post(&admin.url("/api/v1/policy/reload"), "", &[]).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json());
    assert_eq!(ok.json()["reload"]["reloads"], 1);
    let b = api(&admin, "/api/v1/budgets").await;
    close(&b["budgets"][0]["limit_usd"], 7.0);
}

// The browser ---------------------------------------------------------------------------------

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium on `url` with `args`; returns stdout. Fails loudly without it:
/// `.ci/run` installs it (`apt-get install -y chromium`).
async fn chromium(url: String, args: Vec<String>) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)"
    );
    tokio::task::spawn_blocking(move || {
        let profile = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("timeout")
            .arg("120")
            .arg(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--no-first-run",
                "--hide-scrollbars",
                // Virtual time waits for the page's fetches before the DOM is dumped.
                "--virtual-time-budget=15000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(&args)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await
    .unwrap()
}

/// The opening tag and text of the element with `id` in a dumped DOM.
fn element<'d>(dom: &'d str, id: &str) -> (&'d str, &'d str) {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    let text_end = end + 1 + dom[end + 1..].find('<').unwrap();
    (&dom[start..=end], &dom[end + 1..text_end])
}

fn data_usd(tag: &str) -> f64 {
    let v = tag
        .split("data-usd=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no data-usd in {tag}"));
    v[..v.find('"').unwrap()].parse().unwrap()
}

fn shows(dom: &str, id: &str, usd: f64) {
    let (tag, text) = element(dom, id);
    assert!((data_usd(tag) - usd).abs() < 1e-9, "#{id}: {tag} vs {usd}");
    assert_eq!(text, dollars(usd), "#{id}");
}

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_apis_figures_and_follows_the_month_picker() {
    let s = seeded("").await;
    let admin = admin(&s.proxy.state, Admin::default()).await;
    let budgets = api(&admin, "/api/v1/budgets").await;
    let tier = api(&admin, "/api/v1/spend?by=tier").await;

    let dom = chromium(admin.url("/"), vec!["--dump-dom".into()]).await;
    let (errors, text) = element(&dom, "errors");
    assert!(
        errors.contains("hidden") && text.is_empty(),
        "page errors: {text}"
    );
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page never finished loading:\n{dom}"
    );
    assert!(dom.contains("data-month=\"2026-11\""));
    shows(
        &dom,
        "total-spend",
        tier["total"]["cost_usd"].as_f64().unwrap(),
    );
    shows(
        &dom,
        "savings",
        tier["total"]["savings_usd"].as_f64().unwrap(),
    );
    shows(
        &dom,
        "baseline-spend",
        tier["total"]["baseline_cost_usd"].as_f64().unwrap(),
    );
    let (_, pct) = element(&dom, "savings-pct");
    assert_eq!(
        pct,
        format!("{:.1}%", tier["total"]["savings_pct"].as_f64().unwrap())
    );
    for (i, b) in budgets["budgets"].as_array().unwrap().iter().enumerate() {
        shows(
            &dom,
            &format!("b{i}-spent"),
            b["spent_usd"].as_f64().unwrap(),
        );
        shows(
            &dom,
            &format!("b{i}-limit"),
            b["limit_usd"].as_f64().unwrap(),
        );
        shows(
            &dom,
            &format!("b{i}-remaining"),
            b["remaining_usd"].as_f64().unwrap(),
        );
        shows(
            &dom,
            &format!("b{i}-projected"),
            b["projected_usd"].as_f64().unwrap(),
        );
    }
    assert!(dom.contains("search-backend") && dom.contains("warned") && dom.contains("capped"));
    assert!(!dom.contains(PROVIDER_SECRET));

    // The month picker writes ?month= into the address; the page reads it back.
    let dom = chromium(admin.url("/?month=2026-10"), vec!["--dump-dom".into()]).await;
    let (_, text) = element(&dom, "errors");
    assert!(text.is_empty(), "page errors: {text}");
    assert!(dom.contains("data-month=\"2026-10\""));
    let october = api(&admin, "/api/v1/spend?by=tier&month=2026-10").await;
    close(&october["total"]["cost_usd"], 0.004);
    shows(&dom, "total-spend", 0.004);
    assert!(dom.contains("value=\"2026-10\"") || dom.contains("2026-10"));

    let dir = screenshot_dir();
    for (name, size) in [
        ("dashboard-1366x768.png", "1366,768"),
        ("dashboard-full.png", "1366,2600"),
        ("dashboard-phone.png", "390,2400"),
    ] {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        chromium(
            admin.url("/"),
            vec![
                format!("--screenshot={}", path.display()),
                format!("--window-size={size}"),
            ],
        )
        .await;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{} is {len} bytes", path.display());
    }
}
