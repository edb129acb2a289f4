//! `check` must say exactly what is wrong and where: each case below is one kind of mistake,
//! with the exact `line:column` and message it must produce.

use super::*;

const VALID: &str = "\
version: 1
providers:
  local:
    kind: openai
    base_url: http://127.0.0.1:11434/v1
models:
  small:
    provider: local
    model: llama3.1:8b
    tier: open
    price: { input: 0.1, output: 0.2 }
routes:
  - name: default
    use: [small]
";

fn env(name: &str) -> Option<String> {
    (name == "SET_KEY").then(|| "sk-test".to_owned())
}

/// `VALID` with line `n` (1-based) replaced by `with`.
fn with_line(n: usize, with: &str) -> String {
    VALID
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == n { with } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

fn errors(text: &str) -> Vec<String> {
    match Policy::from_yaml("p.yaml", text, &env) {
        Ok(_) => vec![],
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    }
}

fn assert_error(text: &str, expected: &str) {
    let got = errors(text);
    assert!(
        got.iter().any(|e| e == expected),
        "expected {expected:?}\n     got {got:#?}"
    );
}

#[test]
fn the_valid_policy_is_valid() {
    assert_eq!(errors(VALID), Vec::<String>::new());
}

#[test]
fn yaml_syntax_error() {
    assert_error(
        &with_line(11, "    price: { input: 0.1, output: 0.2"),
        "p.yaml:12:7: invalid YAML: did not find expected ',' or '}'",
    );
}

#[test]
fn unknown_top_level_field_with_hint() {
    assert_error(
        &format!("{VALID}routs: []\n"),
        "p.yaml:15:1: unknown field `routs` (at `routs`)\n  hint: did you mean `routes`?",
    );
}

#[test]
fn unknown_field_in_a_route_with_hint() {
    assert_error(
        &with_line(14, "    usee: [small]"),
        "p.yaml:14:5: unknown field `usee` (at `routes[0].usee`)\n  hint: did you mean `use`?",
    );
}

#[test]
fn unknown_provider_kind() {
    assert_error(
        &with_line(4, "    kind: openia"),
        "p.yaml:4:11: unknown value `openia` (at `providers.local.kind`)\n  hint: did you mean `openai`?",
    );
}

#[test]
fn missing_environment_variable_is_named() {
    assert_error(
        &VALID.replace("kind: openai", "kind: openai\n    api_key: ${MISSING_KEY}"),
        "p.yaml:5:14: environment variable `MISSING_KEY` is not set (at `providers.local.api_key`)\n  hint: export MISSING_KEY=… before starting switchyard",
    );
    let ok = VALID.replace("kind: openai", "kind: openai\n    api_key: ${SET_KEY}");
    assert_eq!(errors(&ok), Vec::<String>::new());
}

#[test]
fn unknown_provider_reference_with_hint() {
    assert_error(
        &with_line(8, "    provider: lcal"),
        "p.yaml:8:15: unknown provider `lcal` (at `models.small.provider`)\n  hint: did you mean `local`?",
    );
}

#[test]
fn price_out_of_range() {
    assert_error(
        &with_line(11, "    price: { input: -0.1, output: 0.2 }"),
        "p.yaml:11:21: -0.1 is outside 0..=1000 USD per million tokens (at `models.small.price.input`)",
    );
}

#[test]
fn missing_required_field() {
    assert_error(
        &with_line(10, "    # no tier"),
        "p.yaml:7:3: missing field `tier` (at `models.small`)\n  hint: add `tier:` here",
    );
}

#[test]
fn wrong_type() {
    assert_error(
        &with_line(1, "version: one"),
        "p.yaml:1:10: invalid type: string \"one\", expected u32 (at `version`)",
    );
}

#[test]
fn unknown_model_in_route_with_hint() {
    assert_error(
        &with_line(14, "    use: [smal]"),
        "p.yaml:14:11: unknown model `smal` (at `routes[0].use[0]`)\n  hint: did you mean `small`?",
    );
}

#[test]
fn a_route_whose_models_are_all_invalid_is_not_a_catch_all() {
    // The embedding model is invalid (its provider's URL is not set), so the route of it,
    // though it has no `when`, must not make the chat route after it "unreachable": the one
    // mistake is reported once.
    let text = format!(
        "{}  embed:\n    provider: local\n    model: nomic\n    tier: open\n    kind: embedding\n    price: {{ input: 0.1, output: 0 }}\nroutes:\n  - name: embeddings\n    use: [embed]\n  - name: default\n    use: [small]\n",
        VALID
            .replace("http://127.0.0.1:11434/v1", "${UNSET_URL}")
            .replace("routes:\n  - name: default\n    use: [small]\n", "")
    );
    let got = errors(&text);
    assert!(
        got.iter().any(|e| e.contains("`UNSET_URL` is not set")),
        "{got:#?}"
    );
    assert!(!got.iter().any(|e| e.contains("unreachable")), "{got:#?}");
}

#[test]
fn unreachable_route_after_a_catch_all() {
    assert_error(
        &format!("{VALID}  - name: later\n    use: [small]\n"),
        "p.yaml:15:5: route `later` is unreachable: route `default` before it matches every request (at `routes[1]`)\n  hint: move the catch-all route last, or give it a `when`",
    );
}

#[test]
fn duplicate_route_name() {
    let text = VALID.replace(
        "  - name: default\n",
        "  - name: default\n    when: { model: x }\n    use: [small]\n  - name: default\n",
    );
    assert_error(
        &text,
        "p.yaml:16:11: route name `default` is used twice (at `routes[1].name`)",
    );
}

#[test]
fn invalid_regex_in_rule() {
    assert_error(
        &format!(
            "{VALID}rules:\n  - {{ name: r, if: {{ regex: \"(unclosed\" }}, then: {{ task: code }} }}\n"
        ),
        "p.yaml:16:29: invalid regex: error: unclosed group (at `rules[0].if.regex`)",
    );
}

#[test]
fn thresholds_out_of_order() {
    assert_error(
        &format!("{VALID}difficulty: {{ medium: 0.9, hard: 0.5 }}\n"),
        "p.yaml:15:23: `medium` is above `hard` (at `difficulty.medium`)\n  hint: thresholds must satisfy medium <= hard",
    );
}

#[test]
fn base_url_without_scheme() {
    assert_error(
        &with_line(5, "    base_url: 127.0.0.1:11434/v1"),
        "p.yaml:5:15: `127.0.0.1:11434/v1` is not an http:// or https:// URL (at `providers.local.base_url`)",
    );
}

#[test]
fn unknown_task_in_a_route() {
    assert_error(
        &with_line(13, "  - name: default\n    when: { task: sumarization }"),
        "p.yaml:14:19: unknown value `sumarization` (at `routes[0].when.task`)\n  hint: did you mean `summarization`?",
    );
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let text = VALID
        .replace("kind: openai", "kind: openia")
        .replace("tier: open", "tier: middle")
        .replace("use: [small]", "usee: [small]");
    let got = errors(&text);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got[0].starts_with("p.yaml:4:"));
    assert!(got[1].starts_with("p.yaml:10:"));
    assert!(got[2].starts_with("p.yaml:14:"));
}

#[test]
fn a_yaml_bomb_is_refused_not_expanded() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    let got = errors(&text);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].contains("invalid YAML"), "{got:#?}");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let text = VALID.replace("kind: openai", "kind: openai\n    api_key: ${SET_KEY}");
    let policy = Policy::from_yaml("p.yaml", &text, &env).unwrap();
    let debug = format!("{policy:?}");
    assert!(!debug.contains("sk-test"));
    assert!(debug.contains("[redacted]"));
}

#[test]
fn display_currency_is_read_and_checked_where_it_is_written() {
    let ok = Policy::from_yaml(
        "p.yaml",
        &format!("{VALID}display_currency: {{ code: MYR, per_usd: 4.45 }}\n"),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        ok.display_currency,
        Some(DisplayCurrency {
            code: "MYR".into(),
            per_usd: 4.45
        })
    );
    assert_error(
        &format!("{VALID}display_currency:\n  code: ringgit\n  per_usd: 4.45\n"),
        "p.yaml:16:9: `ringgit` is not a currency code (three upper-case letters, e.g. `MYR`) (at `display_currency.code`)",
    );
    assert_error(
        &format!("{VALID}display_currency:\n  code: MYR\n  per_usd: 0\n"),
        "p.yaml:17:12: 0 is outside 0 < per_usd <= 1000000 (at `display_currency.per_usd`)",
    );
}
