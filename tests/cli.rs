//! The command line: `check`, `explain`, `classify`, the shipped policies and the demo.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn run(args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .env("SWITCHYARD_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn check_reports_every_error_with_file_line_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "version: 1\nproviders:\n  local: { kind: openai, base_url: \"http://127.0.0.1:1/v1\" }\nmodels:\n  small: { provider: local, model: s, tier: open, price: { input: 0.1, output: 0.2 } }\nroutes:\n  - { name: main, usee: [small] }\n  - { name: other, use: [smal] }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["check", path.to_str().unwrap()], "", &[]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let p = path.display();
    assert!(
        stderr.contains(&format!(
            "{p}:7:19: unknown field `usee` (at `routes[0].usee`)\n  hint: did you mean `use`?"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{p}:8:26: unknown model `smal` (at `routes[1].use[0]`)\n  hint: did you mean `small`?"
        )),
        "{stderr}"
    );
}

#[test]
fn check_accepts_a_valid_policy() {
    let (code, stdout, stderr) = run(
        &["check", "policies/demo.yaml"],
        "",
        &[
            ("SWITCHYARD_DEMO_OPEN_URL", "http://127.0.0.1:1/v1"),
            ("SWITCHYARD_DEMO_FRONTIER_URL", "http://127.0.0.1:2/v1"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("policies/demo.yaml: ok"), "{stdout}");
}

#[test]
fn every_shipped_policy_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir("policies").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Every ${VAR} resolves to a placeholder URL-shaped value.
        let result = switchyard::Policy::from_yaml(&path.display().to_string(), &text, &|_| {
            Some("http://127.0.0.1:1/v1".to_owned())
        });
        if let Err(diags) = result {
            panic!(
                "{}",
                diags
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} policies found");
}

#[test]
fn explain_shows_the_route_candidates_and_costs_without_calling_anything() {
    let (code, stdout, stderr) = run(
        &[
            "explain",
            "--policy",
            "policies/demo.yaml",
            "Summarize this email thread about the Q3 offsite in two bullet points.",
        ],
        "",
        &[
            ("SWITCHYARD_DEMO_OPEN_URL", "http://127.0.0.1:1/v1"),
            ("SWITCHYARD_DEMO_FRONTIER_URL", "http://127.0.0.1:2/v1"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["classification"]["task"], "summarization");
    assert_eq!(v["route"], "routine");
    assert_eq!(v["candidates"][0]["model"], "llama-3.1-8b");
    assert!(v["candidates"][0]["worst_case_cost_usd"].as_f64().unwrap() > 0.0);
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "route `routine` matched")
    );
}

#[test]
fn classify_writes_one_line_per_input_line_and_goes_on_after_a_bad_one() {
    let input = concat!(
        r#"{"id": "a", "messages": [{"role": "user", "content": "Write a Python function that parses ISO dates and add unit tests."}]}"#,
        "\n",
        "this line is not json\n",
        r#"{"id": "c", "model": "gpt-4o", "messages": [{"role": "user", "content": "Translate into German: the invoice is attached."}], "temperature": 0}"#,
        "\n",
        r#"{"id": "d"}"#,
        "\n",
    );
    let (code, stdout, stderr) = run(&["classify"], input, &[]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["task"], "code");
    assert!(lines[0]["difficulty_score"].as_f64().unwrap() >= 0.0);
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("line 2: invalid JSON")
    );
    assert_eq!(lines[2]["id"], "c");
    assert_eq!(lines[2]["task"], "translation");
    assert_eq!(
        lines[3],
        serde_json::json!({"id": "d", "error": "line 4: no `messages` array"})
    );
}

#[tokio::test]
async fn the_demo_runs_offline_over_all_eleven_tasks_and_saves_money() {
    let opts = switchyard::demo::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        metrics: None,
        once: true,
    };
    let summary = switchyard::demo::run(opts, std::future::pending())
        .await
        .unwrap();
    assert!(summary.replay.sent >= 100);
    assert_eq!(summary.replay.failed, 0);
    assert_eq!(summary.replay.tasks, 11);
    assert!(summary.replay.streamed > 0);
    assert!(summary.cost < summary.baseline_cost, "{summary:?}");
    assert!(summary.routes.len() >= 3, "{summary:?}");
}

#[test]
fn an_unreachable_store_says_where_and_why_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "version: 1\nproviders:\n  p: { kind: openai, base_url: \"http://127.0.0.1:1/v1\" }\nmodels:\n  m: { provider: p, model: up, tier: open, price: { input: 1, output: 1 } }\nroutes:\n  - { name: main, use: [m] }\n").unwrap();
    // Port 1: nothing listens there, so the connection is refused at once.
    let url = "postgres://switchyard:hunter2-secret@127.0.0.1:1/ledger";
    let (code, _, stderr) = run(
        &[
            "serve",
            "--policy",
            policy.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        "",
        &[("SWITCHYARD_STORE_URL", url), ("SWITCHYARD_LOG", "trace")],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:1/ledger") && stderr.contains("Connection refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    let (code, _, stderr) = run(&["report", "--store", "mysql://x:hunter2@h/db"], "", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("expected postgres://"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

#[test]
fn busy_polling_with_several_worker_threads_is_refused_with_a_clear_error() {
    let (code, _, stderr) = run(
        &[
            "serve",
            "--policy",
            "policies/demo.yaml",
            "--threads",
            "2",
            "--busy-poll-us",
            "500",
        ],
        "",
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--busy-poll-us needs the single-threaded runtime")
            && stderr.contains("--threads 1"),
        "{stderr}"
    );
}
