use super::*;

#[test]
fn a_cursor_round_trips_and_anything_else_is_refused() {
    for key in ["spring", "demo:BOB10", "a-b_c"] {
        assert_eq!(decode_cursor(&encode_cursor(key)).as_deref(), Some(key));
    }
    for bad in ["", "!!", "%%%", &encode_cursor(""), &encode_cursor(&"x".repeat(131))] {
        assert_eq!(decode_cursor(bad), None, "{bad:?}");
    }
}

#[test]
fn a_list_takes_only_its_filters_and_a_bounded_limit() {
    let (f, limit) = filter("program=demo&status=paused&limit=2", &["program", "status"]).unwrap();
    assert_eq!((f.program.as_deref(), f.status, limit, f.limit), (Some("demo"), Some(Status::Paused), 2, 3));
    let field = |q: &str| {
        let e = filter(q, &["program", "status"]).unwrap_err();
        (e.status.as_u16(), e.field.unwrap_or_default())
    };
    assert_eq!(field("status=gone"), (422, "status".into()));
    assert_eq!(field("limit=0"), (422, "limit".into()));
    assert_eq!(field("limit=1001"), (422, "limit".into()));
    assert_eq!(field("cursor=%21"), (422, "cursor".into()));
    assert_eq!(field("program=a%20b"), (422, "program".into()));
    assert_eq!(filter("partner=bob", &["program"]).unwrap_err().status.as_u16(), 400);
}

#[test]
fn a_page_says_whether_another_follows() {
    let body = |rows: Vec<&str>, limit| {
        let r = page("links", rows, limit, |s| Value::String(s.to_string()), |s| s.to_string()).unwrap();
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(http_body_util::BodyExt::collect(r.into_body()))
            .unwrap()
            .to_bytes();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let more = body(vec!["a", "b", "c"], 2);
    assert_eq!(more["links"], serde_json::json!(["a", "b"]));
    assert_eq!(decode_cursor(more["next_cursor"].as_str().unwrap()).as_deref(), Some("b"));
    let last = body(vec!["a", "b"], 2);
    assert!(last.get("next_cursor").is_none(), "{last}");
}
