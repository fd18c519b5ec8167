use super::consume::consumer_config;
use super::*;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, IntoConsumerConfig};

fn config() -> Cluster {
    Cluster {
        stream: "CLICKS".into(),
        subject: "clicks.in".into(),
        durable: "core".into(),
        duplicate_window_ms: 90_000,
        ack_wait_ms: 7_000,
        ..Cluster::default()
    }
}

/// The JSON keys of a serialized config.
fn keys(value: serde_json::Value) -> Vec<String> {
    value.as_object().expect("an object").keys().cloned().collect()
}

#[test]
fn the_stream_is_file_backed_with_interest_retention_and_the_duplicate_window() {
    let s = stream_config(&config());
    assert_eq!(s.name, "CLICKS");
    assert_eq!(s.subjects, ["clicks.in"]);
    assert_eq!(s.storage, StorageType::File);
    // Interest: every core has a consumer of its own and ingests every click.
    assert_eq!(s.retention, RetentionPolicy::Interest);
    assert_eq!(s.duplicate_window, Duration::from_secs(90));
}

#[test]
fn the_consumer_is_durable_with_explicit_acks_from_the_start() {
    let c = consumer_config(&config());
    assert_eq!(c.durable_name.as_deref(), Some("core"));
    assert_eq!(c.ack_policy, AckPolicy::Explicit);
    assert_eq!(c.ack_wait, Duration::from_secs(7));
    assert!(matches!(c.deliver_policy, DeliverPolicy::All));
}

// Keys nats-server 2.9 knows (server/stream.go StreamConfig, server/consumer.go ConsumerConfig
// at v2.9.10). A key from a newer server would be ignored there, or refused.
const STREAM_KEYS_2_9: &[&str] = &[
    "name",
    "description",
    "subjects",
    "retention",
    "max_consumers",
    "max_msgs",
    "max_bytes",
    "max_age",
    "max_msgs_per_subject",
    "max_msg_size",
    "discard",
    "discard_new_per_subject",
    "storage",
    "num_replicas",
    "no_ack",
    "template_owner",
    "duplicate_window",
    "placement",
    "mirror",
    "sources",
    "sealed",
    "deny_delete",
    "deny_purge",
    "allow_rollup_hdrs",
    "allow_direct",
    "mirror_direct",
    "republish",
];

const CONSUMER_KEYS_2_9: &[&str] = &[
    "durable_name",
    "name",
    "description",
    "deliver_policy",
    "opt_start_seq",
    "opt_start_time",
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "backoff",
    "filter_subject",
    "replay_policy",
    "rate_limit_bps",
    "sample_freq",
    "max_waiting",
    "max_ack_pending",
    "flow_control",
    "idle_heartbeat",
    "headers_only",
    "max_batch",
    "max_expires",
    "max_bytes",
    "inactive_threshold",
    "num_replicas",
    "mem_storage",
    "deliver_subject",
    "deliver_group",
];

#[test]
fn only_keys_nats_server_2_9_knows_are_sent() {
    let stream = keys(serde_json::to_value(stream_config(&config())).unwrap());
    let unknown: Vec<&String> = stream.iter().filter(|k| !STREAM_KEYS_2_9.contains(&k.as_str())).collect();
    assert!(unknown.is_empty(), "stream config sends {unknown:?}");
    let consumer = keys(serde_json::to_value(consumer_config(&config()).into_consumer_config()).unwrap());
    let unknown: Vec<&String> = consumer.iter().filter(|k| !CONSUMER_KEYS_2_9.contains(&k.as_str())).collect();
    assert!(unknown.is_empty(), "consumer config sends {unknown:?}");
}

#[test]
fn server_lists_split_on_commas() {
    assert_eq!(server_list("nats://a:4222"), ["nats://a:4222"]);
    assert_eq!(server_list(" nats://a:4222 , nats://b:4222,"), ["nats://a:4222", "nats://b:4222"]);
    assert!(server_list("").is_empty());
}
