//! Vertex envelopes and paths over arbitrary input: no panics, round trips keep every member,
//! built paths parse back to what built them.

use proptest::prelude::*;
use tollgate_wire::vertex::{
    VertexAction, messages_to_vertex_body, parse_vertex_path, vertex_body_to_messages,
    vertex_count_tokens_path, vertex_path,
};

#[test]
fn a_claude_code_body_round_trips_byte_for_byte() {
    let body = concat!(
        r#"{"model":"claude-opus-4-1@20250805","messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>…</system-reminder>"},"#,
        r#"{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]},{"role":"system","content":[{"type":"text","text":"env"}],"output_config":{"effort":"medium"}}],"#,
        r#""system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.332.abc; cc_entrypoint=sdk-cli;"}],"#,
        r#""tools":[{"name":"Bash","input_schema":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}}],"#,
        r#""metadata":{"user_id":"{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"s\"}"},"max_tokens":128000,"#,
        r#""thinking":{"type":"adaptive","display":"omitted"},"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},"#,
        r#""output_config":{"effort":"medium"},"stream":true}"#
    );
    let r = messages_to_vertex_body(body.as_bytes()).unwrap();
    assert_eq!(r.model, "claude-opus-4-1@20250805");
    assert!(r.stream);
    let text = std::str::from_utf8(&r.body).unwrap();
    assert!(text.ends_with(r#""stream":true,"anthropic_version":"vertex-2023-10-16"}"#));
    assert!(!text.contains("claude-opus-4-1@20250805"));
    let back = vertex_body_to_messages(&r.body, &r.model, r.stream).unwrap();
    assert_eq!(std::str::from_utf8(&back).unwrap(), body);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn nothing_panics_on_arbitrary_input(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        text in any::<String>(),
        stream in any::<bool>(),
    ) {
        let _ = messages_to_vertex_body(&bytes);
        let _ = vertex_body_to_messages(&bytes, &text, stream);
        let _ = parse_vertex_path(&text);
        let _ = parse_vertex_path(&format!(
            "/v1/projects/{text}/locations/{text}/publishers/anthropic/models/{text}:rawPredict"
        ));
    }

    #[test]
    fn built_paths_parse_back(
        project in any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        region in "[a-z0-9-]{1,20}",
        model in any::<String>().prop_filter("not the count-tokens name", |s| !s.is_empty() && s != "count-tokens"),
        stream in any::<bool>(),
    ) {
        let p = parse_vertex_path(&vertex_path(&project, &region, &model, stream)).unwrap();
        prop_assert_eq!(p.stream(), stream);
        prop_assert_eq!(&p.project, &project);
        prop_assert_eq!(&p.location, &region);
        prop_assert_eq!(p.model, Some(model));
        let c = parse_vertex_path(&vertex_count_tokens_path(&project, &region)).unwrap();
        prop_assert_eq!(c.action, VertexAction::CountTokens);
    }
}
