//! The SSRF guard end to end in the worker: URL forms and names that reach the machine, its
//! networks or a metadata service are refused at registration (the URL check and one
//! resolution) and at every attempt, and a canary listening on 127.0.0.1 and ::1 never sees a
//! connection. The policy is the end-to-end test's: http allowed, and only 127.0.0.2 admitted.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::webhooks::check_url;
use crate::webhooks::endpoint::new_id;

/// Names as a hostile DNS would answer them; anything else goes to the system's resolver.
struct HostileDns {
    names: HashMap<&'static str, Vec<IpAddr>>,
    rebind_lookups: AtomicUsize,
}

impl Resolver for HostileDns {
    fn lookup<'a>(&'a self, host: &'a str, port: u16) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move {
            if host == "rebind.test" {
                // Public at the first lookup (registration), loopback from then on.
                let first = self.rebind_lookups.fetch_add(1, Ordering::SeqCst) == 0;
                let ip: IpAddr = if first { "93.184.216.34".parse().unwrap() } else { "127.0.0.1".parse().unwrap() };
                return Ok(vec![SocketAddr::new(ip, port)]);
            }
            match self.names.get(host) {
                Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
                None => SystemResolver.lookup(host, port).await,
            }
        })
    }
}

fn hostile_dns() -> HostileDns {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let names = HashMap::from([
        ("internal.test", vec![ip("127.0.0.1")]),
        ("mixed.test", vec![ip("93.184.216.34"), ip("127.0.0.1")]),
        ("v6.test", vec![ip("::1")]),
        ("mapped.test", vec![ip("::ffff:127.0.0.1")]),
        ("nat64.test", vec![ip("64:ff9b::7f00:1")]),
        ("metadata.test", vec![ip("169.254.169.254")]),
        ("private.test", vec![ip("10.1.2.3")]),
        ("cgnat.test", vec![ip("100.64.1.1")]),
        ("ula.test", vec![ip("fd12::1")]),
        ("linklocal6.test", vec![ip("fe80::1")]),
        ("zero.test", vec![ip("0.0.0.0")]),
        ("ip6-localhost", vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]),
        ("ip6-loopback", vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]),
    ]);
    HostileDns { names, rebind_lookups: AtomicUsize::new(0) }
}

/// Every payload, aimed at the canaries' ports (`P` on 127.0.0.1, `Q` on ::1).
fn payloads(p: u16, q: u16) -> Vec<String> {
    let forms = [
        // IPv4 in every spelling a resolver or a browser accepts.
        "http://127.0.0.1:P/",
        "http://2130706433:P/",
        "http://0x7f000001:P/",
        "http://0X7F000001:P/",
        "http://0177.0.0.1:P/",
        "http://0177.0000.0000.0001:P/",
        "http://017700000001:P/",
        "http://127.1:P/",
        "http://127.0.1:P/",
        "http://0x7f.0.0.1:P/",
        "http://0x7f.1:P/",
        "http://127.0.0.1.:P/",
        "http://127.000.000.001:P/",
        "http://0:P/",
        "http://0.0.0.0:P/",
        "http://%31%32%37.0.0.1:P/",
        "HTTP://127.0.0.1:P/",
        // IPv6 loopback and IPv6 forms that carry an IPv4 address.
        "http://[::1]:Q/",
        "http://[0:0:0:0:0:0:0:1]:Q/",
        "http://[::]:Q/",
        "http://[::ffff:127.0.0.1]:P/",
        "http://[::ffff:7f00:1]:P/",
        "http://[::ffff:0:127.0.0.1]:P/",
        "http://[64:ff9b::127.0.0.1]:P/",
        "http://[::127.0.0.1]:P/",
        "http://[2002:7f00:1::]:P/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:10.0.0.1]:P/",
        // Every refused range.
        "http://10.0.0.1:P/",
        "http://172.16.0.1:P/",
        "http://172.31.255.254:P/",
        "http://192.168.1.1:P/",
        "http://100.64.0.1:P/",
        "http://100.127.255.254:P/",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.0.1:P/",
        "http://224.0.0.1:P/",
        "http://239.255.255.250:P/",
        "http://255.255.255.255:P/",
        "http://0.1.2.3:P/",
        "http://[fc00::1]:P/",
        "http://[fd00::1]:P/",
        "http://[fe80::1]:P/",
        "http://[fe80::1%25lo]:Q/",
        "http://[ff02::1]:P/",
        "http://[fd00:ec2::254]/",
        // Userinfo, backslashes and fragments that disguise the host.
        "http://user@127.0.0.1:P/",
        "http://evil.com@127.0.0.1:P/",
        "http://127.0.0.1:P@evil.com/",
        "http://evil.com\\@127.0.0.1:P/",
        "http://127.0.0.1:P\\@evil.com/",
        "http://evil.com#@127.0.0.1:P/",
        "http://127.0.0.1:P#@evil.com/",
        "http://127。0。0。1:P/",
        "http://①②⑦.0.0.1:P/",
        // Other schemes.
        "ftp://127.0.0.1:P/",
        "gopher://127.0.0.1:P/_GET",
        "file:///etc/passwd",
        // Names that resolve to refused addresses: /etc/hosts, then a hostile resolver.
        "http://localhost:P/",
        "http://LOCALHOST:P/",
        "http://localhost.:P/",
        "http://ip6-localhost:Q/",
        "http://ip6-loopback:Q/",
        "http://internal.test:P/",
        "http://mixed.test:P/",
        "http://v6.test:Q/",
        "http://mapped.test:P/",
        "http://nat64.test:P/",
        "http://metadata.test/",
        "http://private.test:P/",
        "http://cgnat.test:P/",
        "http://ula.test:P/",
        "http://linklocal6.test:P/",
        "http://zero.test:P/",
        // Public at registration, loopback at the attempt (DNS rebinding).
        "http://rebind.test:P/",
    ];
    forms.iter().map(|f| f.replace(":P", &format!(":{p}")).replace(":Q", &format!(":{q}"))).collect()
}

#[tokio::test]
async fn no_payload_is_registered_or_delivered_to_the_canaries() {
    let canary4 = Receiver::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let canary6 = Receiver::start(IpAddr::V6(Ipv6Addr::LOCALHOST)).await;
    let policy = Policy::new(true, &["127.0.0.2/32".to_string()]).unwrap();
    let dns: Arc<dyn Resolver> = Arc::new(hostile_dns());
    let mut h = Harness::build(|_| {}, policy.clone(), Some(dns.clone()));
    let transport = Transport {
        policy: policy.clone(),
        tls: Transport::new(policy, Duration::from_secs(1)).unwrap().tls,
        resolver: dns,
        timeout: Duration::from_secs(1),
    };
    let payloads = payloads(canary4.addr.port(), canary6.addr.port());
    assert!(payloads.len() >= 50, "{} payloads", payloads.len());

    // Registration: the URL check, then one resolution; every payload but the rebinding name
    // fails one of them, and that one fails at every attempt below.
    let mut registered = Vec::new();
    for p in &payloads {
        let refused = match check_url(p, &transport.policy) {
            Err(_) => true,
            Ok(url) => http::resolve(&transport, &url).await.is_err(),
        };
        if !refused {
            registered.push(p.clone());
        }
    }
    assert_eq!(registered, vec![format!("http://rebind.test:{}/", canary4.addr.port())], "registered despite the guard");

    // Delivery: each payload stored as if it had passed registration; every attempt is refused.
    for p in &payloads {
        let e = Endpoint {
            id: new_id().unwrap(),
            url: p.clone(),
            event_types: all_types(),
            partner: None,
            secret: Secret::generate().unwrap(),
            previous: None,
            status: Status::Enabled,
            status_ms: T0,
            created_ms: T0,
            failing_since_ms: None,
        };
        h.store.insert_endpoint(&e, &crate::audit::Stamp::new(crate::audit::Actor::Cli, 0)).unwrap();
    }
    h.event(EventType::CommissionCreated, None);
    h.round().await;
    h.set(T0 + 60_000);
    h.round().await;
    let endpoints = h.store.endpoints().unwrap();
    assert_eq!(endpoints.len(), payloads.len());
    for e in &endpoints {
        let d = h.deliveries(e);
        assert_eq!(d.len(), 1, "{}", e.url);
        assert_eq!(d[0].attempts, 2, "{}: two attempts, each refused", e.url);
        assert!(d[0].attempt_log.iter().all(|a| a.error.as_deref() == Some("connect")), "{}: {:?}", e.url, d[0].attempt_log);
    }
    assert_eq!((canary4.connections(), canary6.connections()), (0, 0), "a canary was reached");
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_a_failed_attempt_never_followed() {
    let canary = Receiver::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let admitted = Receiver::start(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).await;
    let to = format!("http://127.0.0.1:{}/", canary.addr.port());
    admitted.script(&[307, 308, 301, 302, 303].map(|status| Reply { status, location: Some(to.clone()), ..Reply::default() }));
    let policy = Policy::new(true, &["127.0.0.2/32".to_string()]).unwrap();
    let mut h = Harness::build(|l| l.retry_delays_ms = vec![1; 9], policy, None);
    let ep = h.endpoint(&admitted.url(), &all_types(), None).await;
    h.event(EventType::CommissionCreated, None);
    for i in 0..6 {
        h.set(T0 + i * 1_000);
        h.round().await;
    }
    let statuses: Vec<Option<u16>> = h.deliveries(&ep)[0].attempt_log.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [Some(307), Some(308), Some(301), Some(302), Some(303), Some(200)]);
    assert_eq!(canary.connections(), 0, "a redirect was followed");
}
