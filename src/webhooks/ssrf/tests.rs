use super::*;

/// One payload through `check_url`: `"ok"`, or the refusal's `reason()` label.
fn check_with(policy: &Policy, input: &str, want: &str) {
    let got = match check_url(input, policy) {
        Ok(_) => "ok",
        Err(e) => e.reason(),
    };
    assert_eq!(got, want, "{input:?}: {:?}", check_url(input, policy));
}

fn check(input: &str, want: &str) {
    check_with(&Policy::default(), input, want);
}

#[test]
fn url_payloads_are_refused_or_admitted() {
    // Public hosts, names and addresses.
    check("https://example.com/hooks", "ok");
    check("https://hooks.example.com:8443/in?x=1", "ok");
    check("HTTPS://Example.COM/", "ok");
    check("https://example.com:443/", "ok");
    check("https://my_hooks.example.com/", "ok");
    check("https://8.8.8.8/", "ok");
    check("https://172.32.0.1/", "ok");
    check("https://100.128.0.1/", "ok");
    check("https://[2606:4700:4700::1111]/", "ok");
    check("https://[::ffff:8.8.8.8]/", "ok");
    check("https://[64:ff9b::808:808]/", "ok");
    // A name passes here; its addresses are checked at every resolution.
    check("https://localhost/", "ok");
    // Schemes.
    check("http://example.com/", "http_not_allowed");
    check("ftp://example.com/", "scheme");
    check("gopher://127.0.0.1:6379/_", "scheme");
    check("file:///etc/passwd", "scheme");
    check("example.com/hook", "scheme");
    check("//example.com/", "scheme");
    // IPv4 literals.
    check("https://127.0.0.1/", "loopback");
    check("https://127.0.0.2:8443/", "loopback");
    check("https://127.255.255.254/", "loopback");
    check("https://10.0.0.1/", "private");
    check("https://172.16.0.1/", "private");
    check("https://172.31.255.255/", "private");
    check("https://192.168.1.1/", "private");
    check("https://100.64.0.1/", "shared_address_space");
    check("https://100.127.255.255/", "shared_address_space");
    check("https://169.254.169.254/latest/meta-data/", "cloud_metadata");
    check("https://100.100.100.200/", "cloud_metadata");
    check("https://169.254.1.1/", "link_local");
    check("https://0.0.0.0/", "unspecified");
    check("https://0.1.2.3/", "this_network");
    check("https://224.0.0.1/", "multicast");
    check("https://239.255.255.250/", "multicast");
    check("https://255.255.255.255/", "broadcast");
    check("https://240.0.0.1/", "reserved");
    check("https://192.0.0.8/", "reserved");
    check("https://192.0.2.1/", "documentation");
    check("https://198.51.100.7/", "documentation");
    check("https://203.0.113.9/", "documentation");
    check("https://198.18.0.1/", "benchmarking");
    // Odd IPv4 forms, refused whatever they denote.
    check("https://2130706433/", "non_canonical_ipv4");
    check("https://0x7f000001/", "non_canonical_ipv4");
    check("https://0X7F000001/", "non_canonical_ipv4");
    check("https://0177.0.0.1/", "non_canonical_ipv4");
    check("https://127.1/", "non_canonical_ipv4");
    check("https://0x7f.1/", "non_canonical_ipv4");
    check("https://0x7f.0.0.1/", "non_canonical_ipv4");
    check("https://0177.0x0.1/", "non_canonical_ipv4");
    check("https://127.0.0.1./", "non_canonical_ipv4");
    check("https://017700000001/", "non_canonical_ipv4");
    check("https://127.000.000.001/", "non_canonical_ipv4");
    check("https://0/", "non_canonical_ipv4");
    check("https://0x/", "non_canonical_ipv4");
    check("https://0x08080808/", "non_canonical_ipv4");
    check("https://1.2.3.4.5/", "non_canonical_ipv4");
    check("https://1.2.3.09/", "non_canonical_ipv4");
    check("https://example.0x1/", "non_canonical_ipv4");
    // IPv6 literals, and IPv4 carried in IPv6.
    check("https://[::1]/", "loopback");
    check("https://[0:0:0:0:0:0:0:1]:8443/", "loopback");
    check("https://[::]/", "unspecified");
    check("https://[::ffff:127.0.0.1]/", "loopback");
    check("https://[::ffff:7f00:1]:443/", "loopback");
    check("https://[::ffff:169.254.169.254]/", "cloud_metadata");
    check("https://[::ffff:0:10.0.0.1]/", "private");
    check("https://[::127.0.0.1]/", "loopback");
    check("https://[64:ff9b::127.0.0.1]/", "loopback");
    check("https://[64:ff9b::a9fe:a9fe]/", "cloud_metadata");
    check("https://[64:ff9b:1::1]/", "reserved");
    check("https://[2002:7f00:1::]/", "loopback");
    check("https://[2002:c0a8:101::1]/", "private");
    check("https://[fc00::1]/", "unique_local");
    check("https://[fd12:3456::1]/", "unique_local");
    check("https://[fd00:ec2::254]/", "cloud_metadata");
    check("https://[fe80::1]/", "link_local");
    check("https://[febf::1]/", "link_local");
    check("https://[fec0::1]/", "site_local");
    check("https://[ff02::1]/", "multicast");
    check("https://[2001:db8::1]/", "documentation");
    check("https://[3fff::1]/", "documentation");
    check("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "tunnel");
    check("https://[2001:2::1]/", "benchmarking");
    check("https://[2001:10::1]/", "reserved");
    check("https://[100::1]/", "reserved");
    check("https://[fe80::1%25eth0]/", "zone_id");
    check("https://[::ffff:127.0.0.1%25lo]/", "zone_id");
    check("https://[::1/", "bad_host");
    check("https://[::1]x/", "bad_port");
    check("https://[127.0.0.1]/", "bad_host");
    check("https://::1/", "bad_host");
    // Userinfo, fragments and characters parsers read differently.
    check("https://user:pass@example.com/", "userinfo");
    check("https://example.com@127.0.0.1/", "userinfo");
    check("https://@example.com/", "userinfo");
    check("https://127.0.0.1#@example.com/", "fragment");
    check("https://example.com/#x", "fragment");
    check("https://example.com\\@127.0.0.1/", "backslash");
    check("https://exa mple.com/", "control_or_space");
    check("https://example.com/\n", "control_or_space");
    check(" https://example.com/", "control_or_space");
    check("https://exämple.com/", "non_ascii");
    check("https://%31%32%37.0.0.1/", "bad_host");
    check("https://-bad.example.com/", "bad_host");
    check("https://bad..example.com/", "bad_host");
    check("https://example.com./", "bad_host");
    check(&format!("https://{}.com/", "a".repeat(64)), "bad_host");
    check(&format!("https://example.com/{}", "a".repeat(URL_BYTES_MAX)), "too_long");
    // Hosts and ports.
    check("https:///path", "no_host");
    check("https://:443/", "no_host");
    check("https://example.com:0/", "bad_port");
    check("https://example.com:65536/", "bad_port");
    check("https://example.com:/", "bad_port");
    check("https://example.com:443abc/", "bad_port");
    check("https://example.com:+443/", "bad_port");
}

#[test]
fn a_policy_admits_http_and_listed_networks_but_never_metadata() {
    let policy = Policy::new(true, &["127.0.0.0/8".into(), "fd00::/8".into()]).unwrap();
    let check = |input: &str, want: &str| check_with(&policy, input, want);
    check("http://127.0.0.2:8080/hook", "ok");
    check("https://127.0.0.1/", "ok");
    check("http://[::ffff:127.0.0.2]/", "ok");
    check("http://[fd12::1]/", "ok");
    check("http://[fc00::1]/", "unique_local");
    check("http://[::1]/", "loopback");
    check("http://10.0.0.1/", "private");
    check("http://2130706433/", "non_canonical_ipv4");
    check("http://example.com/", "ok");
    check("ws://example.com/", "scheme");
    let everything = Policy::new(false, &["0.0.0.0/0".into(), "::/0".into()]).unwrap();
    check_with(&everything, "https://10.1.2.3/", "ok");
    check_with(&everything, "https://169.254.169.254/", "cloud_metadata");
    check_with(&everything, "https://[fd00:ec2::254]/", "cloud_metadata");
    check_with(&everything, "http://10.1.2.3/", "http_not_allowed");
    assert_eq!(Policy::new(false, &["10.0.0.0/8".into(), "10.0.0.0".into()]), Err(SsrfError::BadCidr("10.0.0.0".into())));
    assert_eq!(Policy::new(false, &["127.0.0.1/8".into()]).unwrap().allow_private_cidrs[0].to_string(), "127.0.0.0/8");
}

#[test]
fn odd_ipv4_forms_name_the_address_they_denote() {
    let check = |host: &str, want: Option<[u8; 4]>| {
        let denotes = want.map(Ipv4Addr::from);
        assert_eq!(inet_aton(host), denotes, "{host}");
        assert_eq!(parse_host(host), Err(SsrfError::NonCanonicalIpv4 { host: host.into(), denotes }), "{host}");
        // The `url` crate (the WHATWG parser browsers use) reads the same address, or none.
        let url_reads = url::Url::parse(&format!("https://{host}/")).ok().and_then(|u| match u.host() {
            Some(url::Host::Ipv4(ip)) => Some(ip),
            _ => None,
        });
        assert_eq!(url_reads, denotes, "{host} per the url crate");
    };
    check("2130706433", Some([127, 0, 0, 1]));
    check("0x7f000001", Some([127, 0, 0, 1]));
    check("0177.0.0.1", Some([127, 0, 0, 1]));
    check("127.1", Some([127, 0, 0, 1]));
    check("0x7f.1", Some([127, 0, 0, 1]));
    check("0x7F.0.0.0x1", Some([127, 0, 0, 1]));
    check("127.0.1", Some([127, 0, 0, 1]));
    check("127.0.0.1.", Some([127, 0, 0, 1]));
    check("017700000001", Some([127, 0, 0, 1]));
    check("127.000.000.001", Some([127, 0, 0, 1]));
    check("169.254.43518", Some([169, 254, 169, 254]));
    check("0xa9fea9fe", Some([169, 254, 169, 254]));
    check("0", Some([0, 0, 0, 0]));
    check("0x", Some([0, 0, 0, 0]));
    check("4294967295", Some([255, 255, 255, 255]));
    check("4294967296", None);
    check("0x100000000", None);
    check("256.0.0.1", None);
    check("1.2.3.4.5", None);
    check("1.2.3.09", None);
    check("1.2.65536", None);
}

#[test]
fn addresses_classify_by_range() {
    let check = |ip: &str, want: Option<Refusal>| assert_eq!(refusal(ip.parse().unwrap()), want, "{ip}");
    check("1.1.1.1", None);
    check("9.255.255.255", None);
    check("11.0.0.0", None);
    check("100.63.255.255", None);
    check("172.15.255.255", None);
    check("192.167.255.255", None);
    check("198.20.0.0", None);
    check("223.255.255.255", None);
    check("2a00:1450:4001:80b::200e", None);
    check("2001:4860:4860::8888", None);
    check("2002:808:808::1", None);
    check("::8.8.8.8", None);
    check("10.255.255.255", Some(Refusal::Private));
    check("169.254.169.253", Some(Refusal::LinkLocal));
    check("192.88.99.1", Some(Refusal::Reserved));
    check("198.19.255.255", Some(Refusal::Benchmarking));
    check("::2", Some(Refusal::ThisNetwork));
    check("::ffff:0.0.0.0", Some(Refusal::Unspecified));
    check("::ffff:255.255.255.255", Some(Refusal::Broadcast));
    check("::ffff:100.64.0.1", Some(Refusal::SharedAddressSpace));
    check("2002:a00:1::", Some(Refusal::Private));
    check("2002:e000:1::", Some(Refusal::Multicast));
    check("5f00::1", Some(Refusal::Reserved));
    check("4000::1", Some(Refusal::Reserved));
    check("ff0e::1", Some(Refusal::Multicast));
    assert_eq!(embedded_v4("2002:c000:0204::1".parse().unwrap()), Some(Ipv4Addr::new(192, 0, 2, 4)));
    assert_eq!(embedded_v4("2003::1".parse().unwrap()), None);
}

#[test]
fn an_admitted_url_keeps_what_the_request_needs() {
    let u = check_url("https://Hooks.Example.com:8443/in/coming?a=1&b=2", &Policy::default()).unwrap();
    assert_eq!(u.host(), &Host::Name("hooks.example.com".into()));
    assert_eq!((u.port(), u.is_https()), (8443, true));
    assert_eq!(u.path_and_query(), "/in/coming?a=1&b=2");
    assert_eq!(u.authority(), "hooks.example.com:8443");
    let v6 = check_url("https://[2606:4700::1111]", &Policy::default()).unwrap();
    assert_eq!((v6.host(), v6.port(), v6.path_and_query()), (&Host::Ip("2606:4700::1111".parse().unwrap()), 443, "/"));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_name_resolving_to_loopback_is_refused_unless_listed() {
    let rt = rt();
    let resolve = |policy: &Policy| rt.block_on(resolve_and_check("localhost", 8443, policy));
    match resolve(&Policy::default()) {
        Err(SsrfError::NameRefused { host, reason: Refusal::Loopback, .. }) => assert_eq!(host, "localhost"),
        other => panic!("localhost must be refused: {other:?}"),
    }
    assert!(matches!(resolve(&Policy::new(false, &["10.0.0.0/8".into()]).unwrap()), Err(SsrfError::NameRefused { .. })));

    let both = Policy::new(false, &["127.0.0.0/8".into(), "::1/128".into()]).unwrap();
    let addrs = resolve(&both).unwrap();
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8443), "{addrs:?}");
    // Where `localhost` also resolves to ::1, admitting 127.0.0.0/8 alone still refuses it:
    // one refused address refuses the name.
    match resolve(&Policy::new(false, &["127.0.0.0/8".into()]).unwrap()) {
        Ok(addrs) => assert!(addrs.iter().all(|a| matches!(a.ip(), IpAddr::V4(v4) if v4.octets()[0] == 127)), "{addrs:?}"),
        Err(e) => assert!(matches!(e, SsrfError::NameRefused { addr, .. } if addr == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)), "{e}"),
    }
}

#[test]
fn literal_hosts_are_checked_without_a_lookup() {
    let rt = rt();
    let listed = Policy::new(false, &["127.0.0.0/8".into()]).unwrap();
    let check = |host: &str, policy: &Policy, want: &str| {
        let got = rt.block_on(resolve_and_check(host, 443, policy));
        assert_eq!(got.as_ref().map(|_| "ok").unwrap_or_else(|e| e.reason()), want, "{host}: {got:?}");
    };
    check("127.0.0.2", &Policy::default(), "loopback");
    check("127.0.0.2", &listed, "ok");
    check("[::1]", &listed, "loopback");
    check("::1", &listed, "loopback");
    check("::ffff:127.0.0.2", &listed, "ok");
    check("2606:4700::1111", &Policy::default(), "ok");
    check("fe80::1%eth0", &listed, "bad_host");
    check("[::ffff:127.0.0.2]", &listed, "ok");
    check("[fe80::1%eth0]", &listed, "zone_id");
    check("2130706433", &listed, "non_canonical_ipv4");
    check("0x7f.1", &listed, "non_canonical_ipv4");
    check("", &listed, "no_host");
    check("8.8.8.8", &Policy::default(), "ok");
    assert_eq!(rt.block_on(resolve_and_check("127.0.0.2", 8443, &listed)), Ok(vec!["127.0.0.2:8443".parse().unwrap()]));
    assert_eq!(rt.block_on(resolve_and_check("8.8.8.8", 0, &listed)), Err(SsrfError::BadPort));
    let u = check_url("https://127.0.0.3:9000/x", &listed).unwrap();
    assert_eq!(rt.block_on(u.resolve(&listed)), Ok(vec!["127.0.0.3:9000".parse().unwrap()]));
    assert_eq!(rt.block_on(u.resolve(&Policy::default())).map_err(|e| e.reason()), Err("loopback"));
}
