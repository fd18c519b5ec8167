//! One attempt over TLS and against the clock: the server name is the URL's host (checked by
//! the certificate, though the connection goes to the pinned address), only trusted roots are
//! accepted, and an answer that never comes is a timeout.

use std::future::Future;
use std::pin::Pin;

use super::*;
use crate::webhooks::signature::Headers;

/// Resolves every name to one address.
struct Fixed(std::net::SocketAddr);

impl Resolver for Fixed {
    fn lookup<'a>(&'a self, _: &'a str, _: u16) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<std::net::SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(vec![self.0]) })
    }
}

fn tls_config(roots: Option<&rcgen::Certificate>) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    if let Some(c) = roots {
        store.add(c.der().clone()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

fn headers() -> Headers {
    Headers { id: "msg_1".into(), timestamp: "1".into(), signature: "v1,x".into() }
}

/// A TLS receiver for `hooks.test` answering 204; keeps the server name each client sent.
async fn tls_receiver() -> (std::net::SocketAddr, rcgen::Certificate, Arc<std::sync::Mutex<Vec<Option<String>>>>) {
    let cert = rcgen::generate_simple_self_signed(vec!["hooks.test".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let names = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = names.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, kept) = (acceptor.clone(), kept.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                kept.lock().unwrap().push(tls.get_ref().1.server_name().map(str::to_owned));
                let svc = hyper::service::service_fn(|_req| async {
                    let mut r = hyper::Response::new(http_body_util::Full::new(Bytes::from_static(b"")));
                    *r.status_mut() = hyper::StatusCode::NO_CONTENT;
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tls), svc).await;
            });
        }
    });
    (addr, cert.cert, names)
}

#[tokio::test]
async fn https_connects_to_the_checked_address_with_the_hosts_name_and_trusted_roots_only() {
    let (addr, cert, names) = tls_receiver().await;
    let policy = Policy::new(false, &["127.0.0.1/32".to_string()]).unwrap();
    let transport = |roots| Transport {
        policy: policy.clone(),
        tls: tls_config(roots),
        resolver: Arc::new(Fixed(addr)),
        timeout: Duration::from_secs(5),
    };
    let url = format!("https://hooks.test:{}/in", addr.port());
    let sent = http::send(&transport(Some(&cert)), &url, &headers(), Bytes::from_static(b"{}")).await;
    assert_eq!(sent, Sent::Answered { status: 204, retry_after: None, excerpt: String::new() });
    assert_eq!(names.lock().unwrap().as_slice(), [Some("hooks.test".to_string())], "SNI is the URL's host");

    let untrusted = http::send(&transport(None), &url, &headers(), Bytes::from_static(b"{}")).await;
    assert!(matches!(&untrusted, Sent::NotConnected(why) if why.starts_with("TLS")), "{untrusted:?}");
    // The address itself is not a name the certificate holds.
    let by_ip = http::send(&transport(Some(&cert)), &format!("https://127.0.0.1:{}/in", addr.port()), &headers(), Bytes::new()).await;
    assert!(matches!(&by_ip, Sent::NotConnected(why) if why.starts_with("TLS")), "{by_ip:?}");
    let plain = http::send(&transport(Some(&cert)), &format!("http://hooks.test:{}/in", addr.port()), &headers(), Bytes::new()).await;
    assert!(matches!(&plain, Sent::NotConnected(why) if why.contains("allow_http")), "http refused without allow_http: {plain:?}");
}

#[tokio::test]
async fn an_answer_that_never_comes_is_a_timeout_and_is_tried_again() {
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    let rx = Receiver::with_hold(LOCAL, Some(hold.clone())).await;
    let transport = Transport { timeout: Duration::from_millis(200), ..Transport::new(policy(), Duration::from_secs(1)).unwrap() };
    assert_eq!(http::send(&transport, &rx.url(), &headers(), Bytes::new()).await, Sent::TimedOut);
    let mut h = Harness::build(|_| {}, policy(), None);
    h.worker.transport =
        Arc::new(Transport { timeout: Duration::from_millis(200), ..Transport::new(policy(), Duration::from_secs(1)).unwrap() });
    let ep = h.endpoint(&rx.url(), &all_types(), None).await;
    h.event(EventType::CommissionCreated, None);
    h.round().await;
    let d = &h.deliveries(&ep)[0];
    assert_eq!((d.status.as_str(), d.attempt_log[0].error.as_deref(), d.attempt_log[0].http_status), ("pending", Some("timeout"), None));
    hold.add_permits(10);
}

#[test]
fn an_excerpt_drops_nul_and_keeps_at_most_a_kib() {
    assert_eq!(super::super::http::excerpt(b"ok\0\0 done\xff"), "ok done\u{fffd}");
    assert_eq!(super::super::http::excerpt(&[b'a'; 5000]).len(), super::super::http::EXCERPT_BYTES_MAX);
}
