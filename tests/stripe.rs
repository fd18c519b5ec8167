//! The Stripe Connect client against the local Stripe (`clickgate::testing::stripe`), over real
//! sockets: every documented header and field, retries under one idempotency key, replays,
//! `balance_insufficient`, refusals, timeouts and TLS. The last tests check that the local
//! server itself refuses what Stripe refuses.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clickgate::model::Currency;
use clickgate::payouts::provider::{Destination, Email, PayoutRequest, PayoutResult, StripeAccount};
use clickgate::payouts::stripe::{Sleep, StripeClient, StripeConfig, STRIPE_VERSION};
use clickgate::payouts::SecretKey;
use clickgate::testing::stripe::StripeServer;

const KEY: &str = "sk_test_51PayoutsLocalKey0000";

/// Records each wait and returns at once, so retries cost no time.
#[derive(Clone, Default)]
struct Waits(Arc<Mutex<Vec<Duration>>>);

impl Sleep for Waits {
    fn sleep(&self, delay: Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        self.0.lock().unwrap().push(delay);
        Box::pin(async {})
    }
}

impl Waits {
    fn taken(&self) -> Vec<Duration> {
        self.0.lock().unwrap().clone()
    }
}

fn config(base: String) -> StripeConfig {
    StripeConfig { api_base: base, request_timeout_ms: 5_000, ..StripeConfig::default() }
}

fn client_for(server: &StripeServer) -> (StripeClient, Waits) {
    client_with(config(server.base()), KEY)
}

fn client_with(config: StripeConfig, key: &str) -> (StripeClient, Waits) {
    let waits = Waits::default();
    let client = StripeClient::new(config, SecretKey::new(key).unwrap()).unwrap().with_sleep(Arc::new(waits.clone()));
    (client, waits)
}

fn payout(id: &str, account: &str, amount_minor: i64) -> PayoutRequest {
    let dest = Destination::Stripe(StripeAccount::parse(account).unwrap());
    PayoutRequest::new(id, "run_20261101", "bob", Currency::parse("USD").unwrap(), amount_minor, dest).unwrap()
}

fn paid(result: &PayoutResult) -> &str {
    match result {
        PayoutResult::Paid { transfer_id } => transfer_id,
        other => panic!("expected Paid, got {other:?}"),
    }
}

#[tokio::test]
async fn a_transfer_carries_every_documented_header_and_field() {
    let server = StripeServer::start(KEY).unwrap();
    let (client, waits) = client_for(&server);
    let result = client.transfer(&payout("po_run_20261101_bob_USD", "acct_1BobConnected", 5000)).await;
    let id = paid(&result);

    let transfers = server.transfers();
    assert_eq!(transfers.len(), 1);
    let t = &transfers[0];
    assert_eq!(t.id, id);
    assert!(id.starts_with("tr_"), "{id}");
    assert_eq!((t.amount, t.currency.as_str(), t.destination.as_str()), (5000, "usd", "acct_1BobConnected"));
    assert_eq!(t.transfer_group, "run_20261101");
    assert_eq!(t.metadata["payout_id"], "po_run_20261101_bob_USD");
    assert_eq!(t.metadata["partner"], "bob");

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!((r.method.as_str(), r.path.as_str(), r.status), ("POST", "/v1/transfers", 200));
    assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(r.header("idempotency-key"), Some("po_run_20261101_bob_USD"));
    assert_eq!(r.header("stripe-version"), Some(STRIPE_VERSION));
    assert_eq!(r.header("host"), Some(server.addr().to_string().as_str()));
    let form: Vec<(&str, &str)> = r.form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        form,
        [
            ("amount", "5000"),
            ("currency", "usd"),
            ("destination", "acct_1BobConnected"),
            ("transfer_group", "run_20261101"),
            ("metadata[payout_id]", "po_run_20261101_bob_USD"),
            ("metadata[partner]", "bob"),
        ]
    );
    assert!(waits.taken().is_empty());
}

#[tokio::test]
async fn lost_answers_are_retried_under_the_same_key_and_pay_once() {
    let server = StripeServer::start(KEY).unwrap();
    server.lose_next(2);
    let (client, waits) = client_for(&server);
    let result = client.transfer(&payout("po_lost", "acct_1Bob", 1234)).await;
    let id = paid(&result).to_string();

    assert_eq!(server.transfer_count(), 1, "one transfer however often the client asked");
    assert_eq!(server.transfers()[0].id, id);
    let seen = server.requests();
    assert_eq!(seen.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 500, 200]);
    assert!(seen.iter().all(|r| r.header("idempotency-key") == Some("po_lost")));
    // Two waits, the second drawn from a longer window than the first.
    let taken = waits.taken();
    assert_eq!(taken.len(), 2);
    let c = StripeConfig::default();
    assert!(taken[0] >= Duration::from_millis(c.backoff_base_ms / 2) && taken[0] <= Duration::from_millis(c.backoff_base_ms));
    assert!(taken[1] >= Duration::from_millis(c.backoff_base_ms) && taken[1] <= Duration::from_millis(2 * c.backoff_base_ms));
}

#[tokio::test]
async fn failures_before_execution_are_retried_then_paid() {
    let server = StripeServer::start(KEY).unwrap();
    for status in [500, 429, 409, 503] {
        server.fail_next(1, status);
    }
    let (client, waits) = client_for(&server);
    paid(&client.transfer(&payout("po_busy", "acct_1Bob", 700)).await);
    assert_eq!(server.requests().iter().map(|r| r.status).collect::<Vec<_>>(), [500, 429, 409, 503, 200]);
    assert_eq!(server.transfer_count(), 1);
    assert_eq!(waits.taken().len(), 4);
}

#[tokio::test]
async fn attempts_run_out_as_retryable() {
    let server = StripeServer::start(KEY).unwrap();
    server.fail_next(10, 500);
    let (client, waits) = client_with(StripeConfig { attempts_max: 3, ..config(server.base()) }, KEY);
    let result = client.transfer(&payout("po_down", "acct_1Bob", 700)).await;
    match result {
        PayoutResult::Retryable { why, insufficient_balance: false } => {
            assert!(why.contains("3 attempts failed") && why.contains("500") && why.contains("partner bob"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((server.requests().len(), server.transfer_count(), waits.taken().len()), (3, 0, 2));
}

#[tokio::test]
async fn a_repeated_key_replays_the_same_transfer() {
    let server = StripeServer::start(KEY).unwrap();
    let (client, _) = client_for(&server);
    let request = payout("po_twice", "acct_1Bob", 999);
    let first = paid(&client.transfer(&request).await).to_string();
    let second = paid(&client.transfer(&request).await).to_string();
    assert_eq!(first, second);
    assert_eq!((server.transfer_count(), server.requests().len()), (1, 2));

    // The same key with another amount is Stripe's idempotency_error, and creates nothing.
    match client.transfer(&payout("po_twice", "acct_1Bob", 1000)).await {
        PayoutResult::Failed { why } => assert!(why.contains("Keys for idempotent requests") && why.contains("partner bob"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.transfer_count(), 1);
}

#[tokio::test]
async fn balance_insufficient_is_retryable_and_a_later_payout_pays() {
    let server = StripeServer::start(KEY).unwrap();
    server.set_insufficient("acct_1Poor", true);
    let (client, waits) = client_for(&server);
    let result = client.transfer(&payout("po_run1_bob", "acct_1Poor", 5000)).await;
    match &result {
        PayoutResult::Retryable { why, insufficient_balance: true } => assert!(why.contains("insufficient available funds"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.transfer_count(), 0);
    assert!(waits.taken().is_empty(), "balance_insufficient is not retried on the spot");

    // Stripe stores the answer under the key, so the same payout replays it even once the
    // balance is topped up; the next run's payout, under its own key, is paid.
    server.set_insufficient("acct_1Poor", false);
    assert_eq!(client.transfer(&payout("po_run1_bob", "acct_1Poor", 5000)).await, result);
    paid(&client.transfer(&payout("po_run2_bob", "acct_1Poor", 5000)).await);
    assert_eq!(server.transfer_count(), 1);
}

#[tokio::test]
async fn a_bad_destination_fails_with_stripes_message() {
    let server = StripeServer::start(KEY).unwrap();
    server.set_missing("acct_1Gone");
    let (client, waits) = client_for(&server);
    match client.transfer(&payout("po_gone", "acct_1Gone", 5000)).await {
        PayoutResult::Failed { why } => {
            assert_eq!(
                why,
                "Stripe refused the transfer to partner bob (acct_1Gone): 400 resource_missing: No such destination: 'acct_1Gone'"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((server.transfer_count(), server.requests().len(), waits.taken().len()), (0, 1, 0));
}

#[tokio::test]
async fn a_wrong_key_fails_without_showing_it() {
    let server = StripeServer::start(KEY).unwrap();
    let (client, _) = client_with(config(server.base()), "sk_test_WrongKeyValue9999");
    match client.transfer(&payout("po_key", "acct_1Bob", 5000)).await {
        PayoutResult::Failed { why } => {
            assert!(why.contains("401") && why.contains("Invalid API Key provided"), "{why}");
            assert!(!why.contains("WrongKeyValue"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(format!("{:?}", SecretKey::new(KEY).unwrap()), "SecretKey(redacted)");
}

#[tokio::test]
async fn connection_errors_and_timeouts_are_retried() {
    // Nothing listens on a port whose listener was just dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (client, waits) = client_with(StripeConfig { attempts_max: 2, ..config(format!("http://{closed}")) }, KEY);
    match client.transfer(&payout("po_refused", "acct_1Bob", 5000)).await {
        PayoutResult::Retryable { why, insufficient_balance: false } => assert!(why.contains("connecting to"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(waits.taken().len(), 1);

    let server = StripeServer::start(KEY).unwrap();
    server.stall_next(1);
    let (client, _) = client_with(StripeConfig { request_timeout_ms: 300, ..config(server.base()) }, KEY);
    paid(&client.transfer(&payout("po_slow", "acct_1Bob", 5000)).await);
    assert_eq!(server.requests().iter().map(|r| r.status).collect::<Vec<_>>(), [0, 200], "a stalled request, then the retry");
    assert_eq!(server.transfer_count(), 1);
}

#[tokio::test]
async fn https_goes_through_rustls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server_tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let server = StripeServer::start_tls(KEY, Arc::new(server_tls)).unwrap();
    assert!(server.base().starts_with("https://localhost:"));

    // The default client trusts only the public roots, so the test certificate is refused.
    let (public_roots, _) = client_with(StripeConfig { attempts_max: 1, ..config(server.base()) }, KEY);
    match public_roots.transfer(&payout("po_tls0", "acct_1Bob", 5000)).await {
        PayoutResult::Retryable { why, .. } => assert!(why.contains("TLS"), "{why}"),
        other => panic!("{other:?}"),
    }

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = StripeClient::with_tls(config(server.base()), SecretKey::new(KEY).unwrap(), Arc::new(client_tls)).unwrap();
    paid(&client.transfer(&payout("po_tls", "acct_1Bob", 5000)).await);
    assert_eq!(server.transfer_count(), 1);
}

#[tokio::test]
async fn other_methods_are_refused_without_a_request() {
    let server = StripeServer::start(KEY).unwrap();
    let (client, _) = client_for(&server);
    let paypal = Destination::Paypal(Email::parse("paypal_email", "bob@example.com").unwrap());
    let req = PayoutRequest::new("po_pp", "run", "bob", Currency::parse("USD").unwrap(), 1, paypal).unwrap();
    assert_eq!(client.transfer(&req).await, PayoutResult::Failed { why: "partner bob's payout goes by paypal, not stripe".into() });
    assert!(server.requests().is_empty());
}

/// One raw HTTP/1.1 request; answers the status and the JSON body.
fn raw(server: &StripeServer, head: &str, body: &str) -> (u16, serde_json::Value) {
    let mut tcp = std::net::TcpStream::connect(server.addr()).unwrap();
    let request = format!("{head}\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", server.addr(), body.len());
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let json = answer.split_once("\r\n\r\n").map(|(_, b)| serde_json::from_str(b).unwrap()).unwrap();
    (status, json)
}

const GOOD: &str = "amount=5000&currency=usd&destination=acct_1Bob&transfer_group=run&metadata%5Bpayout_id%5D=po&metadata%5Bpartner%5D=bob";

#[test]
fn the_local_server_refuses_what_stripe_refuses() {
    let server = StripeServer::start(KEY).unwrap();
    let headers = |skip: &str| {
        [
            ("Authorization", format!("Bearer {KEY}")),
            ("Stripe-Version", STRIPE_VERSION.to_string()),
            ("Idempotency-Key", "k1".to_string()),
            ("Content-Type", "application/x-www-form-urlencoded".to_string()),
        ]
        .iter()
        .filter(|(n, _)| *n != skip)
        .map(|(n, v)| format!("\r\n{n}: {v}"))
        .collect::<String>()
    };
    let post = |skip: &str, body: &str| raw(&server, &format!("POST /v1/transfers HTTP/1.1{}", headers(skip)), body);
    let check = |(status, json): (u16, serde_json::Value), want_status: u16, want: &str| {
        assert_eq!(status, want_status, "{json}");
        let e = &json["error"];
        let text = format!("{} {} {}", e["code"], e["param"], e["message"]);
        assert!(text.contains(want), "{text}");
    };

    check(raw(&server, "GET /v1/transfers HTTP/1.1", ""), 404, "Unrecognized request URL (GET: /v1/transfers)");
    check(post("Authorization", GOOD), 401, "You did not provide an API key");
    check(raw(&server, &format!("POST /v1/transfers HTTP/1.1{}", headers("").replace(KEY, "sk_test_other")), GOOD), 401, "Invalid API Key");
    check(post("Stripe-Version", GOOD), 400, "Stripe-Version");
    check(
        raw(&server, &format!("POST /v1/transfers HTTP/1.1{}", headers("").replace(STRIPE_VERSION, "latest")), GOOD),
        400,
        "Invalid Stripe API version: latest",
    );
    check(post("Idempotency-Key", GOOD), 400, "Idempotency-Key");
    check(post("Content-Type", GOOD), 400, "application/x-www-form-urlencoded");
    let without = |field: &str| GOOD.split('&').filter(|p| !p.starts_with(field)).collect::<Vec<_>>().join("&");
    for field in ["amount", "currency", "destination", "transfer_group", "metadata%5Bpayout_id%5D", "metadata%5Bpartner%5D"] {
        let name = field.replace("%5B", "[").replace("%5D", "]");
        check(post("", &without(field)), 400, &format!("Missing required param: {name}."));
    }
    check(post("", &GOOD.replace("amount=5000", "amount=-5")), 400, "Invalid integer: -5");
    check(post("", &GOOD.replace("amount=5000", "amount=50.00")), 400, "Invalid integer: 50.00");
    check(post("", &GOOD.replace("amount=5000", "amount=0")), 400, "greater than or equal to 1");
    check(post("", &GOOD.replace("currency=usd", "currency=USD")), 400, "Invalid currency: USD");
    check(post("", &GOOD.replace("destination=acct_1Bob", "destination=bob")), 400, "No such destination: 'bob'");
    check(post("", &format!("{GOOD}&description=x")), 400, "Received unknown parameter: description");
    check(post("", &format!("{GOOD}&amount=1")), 400, "given more than once");
    assert_eq!(server.transfer_count(), 0, "no refused request created a transfer");

    // Validation failures are not stored: the same key then succeeds, and replays.
    let (status, first) = post("", GOOD);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["object"], "transfer");
    assert_eq!(post("", GOOD).1["id"], first["id"]);
    check(post("", &GOOD.replace("amount=5000", "amount=5001")), 400, "Keys for idempotent requests");
    assert_eq!(server.transfer_count(), 1);
}
