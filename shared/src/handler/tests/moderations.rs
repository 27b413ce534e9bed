//! `/v1/moderations` over a classifier: OpenAI's shape, the model's activation, benign labels that never flag.

use super::{FakeDeployment, TAGS, post};

#[test]
fn moderations_flag_each_label_at_its_threshold_in_openais_shape() {
    // Every logit is 0 for single texts: softmax gives 0.5 to each label, at the default threshold.
    let classifier = FakeDeployment::with_labels(&["m"], &["neutral", "toxic"]);
    let (status, body) = post(
        &classifier,
        "/v1/moderations",
        r#"{"input": ["a", "b c"], "rid": "r1"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "modr-r1");
    assert_eq!(body["model"], "m");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let first = &results[0];
    assert_eq!(first["flagged"], true, "{body}");
    assert_eq!(
        first["categories"],
        serde_json::json!({"neutral": false, "toxic": true})
    );
    assert_eq!(
        first["category_scores"],
        serde_json::json!({"neutral": 0.5, "toxic": 0.5})
    );
    assert_eq!(first["category_applied_input_types"]["toxic"][0], "text");
    let (status, body) = post(&classifier, "/v1/moderations", r#"{"input": "a"}"#);
    assert_eq!(
        (status, body["results"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let tagger = FakeDeployment::tagger(&TAGS);
    let (status, body) = post(&tagger, "/v1/moderations", r#"{"input": "a"}"#);
    assert_eq!(
        (status, body["param"].as_str()),
        (400, Some("model")),
        "{body}"
    );
    let (status, body) = post(&classifier, "/v1/moderations", r#"{"input": []}"#);
    assert_eq!(
        (status, body["param"].as_str()),
        (400, Some("input")),
        "{body}"
    );
}
