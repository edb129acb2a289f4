//! Request translation in both directions, and client-fault errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;

// ---------------------------------------------------------------------------------------------
// Requests: OpenAI → Anthropic
// ---------------------------------------------------------------------------------------------

#[test]
fn chat_request_maps_system_turns_params_and_drops_the_rest() {
    let out = chat_request_to_messages(
        include_bytes!("../fixtures/openai_request_basic.json"),
        "claude-sonnet-4-5",
    )
    .unwrap();
    assert_json_eq(
        &out,
        include_str!("../fixtures/anthropic_request_basic.json"),
    );
}

#[test]
fn chat_request_maps_tools_tool_calls_and_merges_tool_results_into_user_turn() {
    let out = chat_request_to_messages(
        include_bytes!("../fixtures/openai_request_tools.json"),
        "claude-sonnet-4-5",
    )
    .unwrap();
    assert_json_eq(
        &out,
        include_str!("../fixtures/anthropic_request_tools.json"),
    );
}

#[test]
fn chat_request_maps_https_and_data_url_images() {
    let out = chat_request_to_messages(
        include_bytes!("../fixtures/openai_request_images.json"),
        "claude-sonnet-4-5",
    )
    .unwrap();
    assert_json_eq(
        &out,
        include_str!("../fixtures/anthropic_request_images.json"),
    );
}

fn chat_with_tools(extra: &str) -> Vec<u8> {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],
            "tools":[{{"type":"function","function":{{"name":"f","parameters":{{"type":"object"}}}}}}]{extra}}}"#
    )
    .into_bytes()
}

fn tool_choice_of(body: &[u8]) -> Value {
    json(&chat_request_to_messages(body, "claude").unwrap())["tool_choice"].clone()
}

#[test]
fn chat_tool_choice_modes_map_to_anthropic_tool_choice() {
    let cases = [
        (r#","tool_choice":"auto""#, r#"{"type":"auto"}"#),
        (r#","tool_choice":"none""#, r#"{"type":"none"}"#),
        (r#","tool_choice":"required""#, r#"{"type":"any"}"#),
        (
            r#","tool_choice":{"type":"function","function":{"name":"f"}}"#,
            r#"{"type":"tool","name":"f"}"#,
        ),
        (
            r#","tool_choice":"required","parallel_tool_calls":false"#,
            r#"{"type":"any","disable_parallel_tool_use":true}"#,
        ),
        (
            r#","parallel_tool_calls":false"#,
            r#"{"type":"auto","disable_parallel_tool_use":true}"#,
        ),
        (
            r#","tool_choice":"none","parallel_tool_calls":false"#,
            r#"{"type":"none"}"#,
        ),
        (r#","parallel_tool_calls":true"#, "null"),
        ("", "null"),
    ];
    for (extra, expected) in cases {
        assert_eq!(
            tool_choice_of(&chat_with_tools(extra)),
            json(expected.as_bytes()),
            "case {extra}"
        );
    }
}

#[test]
fn chat_tool_choice_without_tools_is_not_sent() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"required","parallel_tool_calls":false}"#;
    let out = json(&chat_request_to_messages(body, "claude").unwrap());
    assert!(
        out.get("tool_choice").is_none() && out.get("tools").is_none(),
        "{out}"
    );
}

#[test]
fn chat_request_defaults_max_tokens_and_clamps_temperature() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":-0.5}"#;
    let out = json(&chat_request_to_messages(body, "claude").unwrap());
    assert_eq!(out["max_tokens"], u64::from(DEFAULT_MAX_TOKENS));
    assert_eq!(out["temperature"], 0.0);
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":77,"temperature":0.3,"stop":["a","b"]}"#;
    let out = json(&chat_request_to_messages(body, "claude").unwrap());
    assert_eq!(out["max_tokens"], 77);
    assert_eq!(out["temperature"], 0.3);
    assert_eq!(out["stop_sequences"], json(br#"["a","b"]"#));
    assert_eq!(out["model"], "claude");
}

#[test]
fn chat_request_merges_consecutive_assistant_messages_and_skips_empty_text() {
    let body = br#"{"model":"m","messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":"one"},
        {"role":"assistant","content":"","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":""}}]},
        {"role":"tool","tool_call_id":"c","content":"ok"}]}"#;
    let out = json(&chat_request_to_messages(body, "claude").unwrap());
    let expected = json(
        br#"[{"role":"user","content":[{"type":"text","text":"hi"}]},
            {"role":"assistant","content":[{"type":"text","text":"one"},{"type":"tool_use","id":"c","name":"f","input":{}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":"ok"}]}]"#,
    );
    assert_eq!(out["messages"], expected);
}

#[test]
fn chat_request_errors_name_the_field_path() {
    let cases: [(&[u8], &str); 14] = [
        (b"{not json", "body: not valid JSON"),
        (b"[]", "body: expected an object, got an array"),
        (br#"{"model":"m"}"#, "messages: missing required field"),
        (br#"{"messages":[{"role":"system","content":"s"}]}"#, "messages: at least one user or assistant message is required"),
        (br#"{"messages":[{"role":"user","content":42}]}"#, "messages[0].content: expected a string or an array of parts, got a number"),
        (
            br#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}"#,
            "messages[2].content[0]: unsupported part type `input_audio`",
        ),
        (br#"{"messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#, "temperature: expected a number, got a string"),
        (br#"{"messages":[{"role":"user","content":"hi"}],"n":2}"#, "n: only n=1 is supported"),
        (br#"{"messages":[{"role":"user","content":"hi"}],"functions":[]}"#, "functions: the deprecated functions API"),
        (br#"{"messages":[{"role":"function","name":"f","content":"x"}]}"#, "messages[0].role: the deprecated `function` role"),
        (br#"{"messages":[{"role":"tool","content":"x"}]}"#, "messages[0].tool_call_id: missing required field"),
        (
            br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}"#,
            "messages[0].content[0].image_url.url: expected an https URL or a base64 data URL",
        ),
        (
            br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,AAAA"}}]}]}"#,
            "messages[0].content[0].image_url.url: unsupported image media type `image/bmp`",
        ),
        (br#"{"messages":[{"role":"user","content":"hi"}],"stop":["a",1]}"#, "stop[1]: expected a string, got a number"),
    ];
    for (body, expected) in cases {
        let message = request_error(chat_request_to_messages(body, "claude"));
        assert!(
            message.starts_with(expected),
            "got `{message}`, expected `{expected}…`"
        );
    }
}

#[test]
fn chat_request_errors_never_echo_prompt_text() {
    let body = br#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[
        {"id":"c","type":"function","function":{"name":"f","arguments":"{SECRET-PROMPT"}}]}]}"#;
    let message = request_error(chat_request_to_messages(body, "claude"));
    assert_eq!(
        message,
        "messages[1].tool_calls[0].function.arguments: not valid JSON"
    );
    // Schema words (roles, part types) are echoed only when they look like schema words.
    let body = br#"{"messages":[{"role":"please summarise my secret plan"}]}"#;
    assert_eq!(
        request_error(chat_request_to_messages(body, "claude")),
        "messages[0].role: unsupported role `<not shown>`"
    );
}

#[test]
fn chat_request_rejects_unsupported_tool_types() {
    let body = br#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"x"}}]}"#;
    assert_eq!(
        request_error(chat_request_to_messages(body, "claude")),
        "tools[0].type: unsupported tool type `custom`"
    );
    let body = br#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],
        "tool_choice":{"type":"allowed_tools","allowed_tools":{}}}"#;
    assert_eq!(
        request_error(chat_request_to_messages(body, "claude")),
        "tool_choice.type: unsupported tool_choice type `allowed_tools`"
    );
}

// ---------------------------------------------------------------------------------------------
// Requests: Anthropic → OpenAI
// ---------------------------------------------------------------------------------------------

#[test]
fn messages_request_maps_system_turns_params_and_asks_for_stream_usage() {
    let out = messages_request_to_chat(
        include_bytes!("../fixtures/ingress_messages_basic.json"),
        "llama-3.1-70b",
    )
    .unwrap();
    assert_json_eq(&out, include_str!("../fixtures/upstream_chat_basic.json"));
}

#[test]
fn messages_request_maps_tools_images_tool_use_and_tool_results() {
    let out = messages_request_to_chat(
        include_bytes!("../fixtures/ingress_messages_tools.json"),
        "llama-3.1-70b",
    )
    .unwrap();
    assert_json_eq(&out, include_str!("../fixtures/upstream_chat_tools.json"));
}

#[test]
fn messages_tool_choice_maps_to_openai_tool_choice() {
    let cases = [
        (r#"{"type":"auto"}"#, r#""auto""#, "null"),
        (r#"{"type":"none"}"#, r#""none""#, "null"),
        (r#"{"type":"any"}"#, r#""required""#, "null"),
        (
            r#"{"type":"tool","name":"f"}"#,
            r#"{"type":"function","function":{"name":"f"}}"#,
            "null",
        ),
        (
            r#"{"type":"auto","disable_parallel_tool_use":true}"#,
            r#""auto""#,
            "false",
        ),
        (
            r#"{"type":"auto","disable_parallel_tool_use":false}"#,
            r#""auto""#,
            "null",
        ),
    ];
    for (choice, expected_choice, expected_parallel) in cases {
        let body = format!(
            r#"{{"model":"c","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],
                "tools":[{{"name":"f","input_schema":{{"type":"object"}}}}],"tool_choice":{choice}}}"#
        );
        let out = json(&messages_request_to_chat(body.as_bytes(), "m").unwrap());
        assert_eq!(
            out["tool_choice"],
            json(expected_choice.as_bytes()),
            "case {choice}"
        );
        assert_eq!(
            out["parallel_tool_calls"],
            json(expected_parallel.as_bytes()),
            "case {choice}"
        );
    }
}

#[test]
fn messages_request_without_stream_sends_no_stream_options() {
    let body = br#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"stream":false}"#;
    let out = json(&messages_request_to_chat(body, "m").unwrap());
    assert_eq!(out["stream"], false);
    assert!(out.get("stream_options").is_none());
}

#[test]
fn messages_request_errors_name_the_field_path() {
    let cases: [(&[u8], &str); 8] = [
        (b"", "body: not valid JSON"),
        (br#"{"max_tokens":5}"#, "messages: missing required field"),
        (br#"{"messages":[{"role":"system","content":"x"}]}"#, "messages[0].role: unsupported role `system`"),
        (
            br#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}}]}]}"#,
            "messages[0].content[1].type: unsupported block type `document`",
        ),
        (
            br#"{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#,
            "tools[0].type: server tool `web_search_20250305` is not supported",
        ),
        (
            br#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#,
            "messages[0].content[0].source.type: unsupported image source type `file`",
        ),
        (
            br#"{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{}}]}]}]}"#,
            "messages[0].content[0].content[0].type: unsupported tool_result block type `image`",
        ),
        (br#"{"messages":[{"role":"user","content":"a"}],"max_tokens":-1}"#, "max_tokens: expected a non-negative integer, got a number"),
    ];
    for (body, expected) in cases {
        let message = request_error(messages_request_to_chat(body, "m"));
        assert!(
            message.starts_with(expected),
            "got `{message}`, expected `{expected}…`"
        );
    }
}
