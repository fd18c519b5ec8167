//! TLS on the edge: HTTP/2 and HTTP/1.1 negotiated by ALPN, over a real socket.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use common::*;

fn client(alpn: &[u8], ca: &rcgen::Certificate) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![alpn.to_vec()];
    c
}

#[test]
fn serves_http1_and_negotiates_h2_over_tls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let s =
        Server::start(&fixture_config(&format!("[tls]\ncert_path = \"{}\"\nkey_path = \"{}\"\n", cert_path.display(), key_path.display())));

    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(client(b"http/1.1", &cert.cert)), name.clone()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(s.edge).unwrap());
    tls.write_all(format!("GET /r/demo HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {CHROME}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    assert!(header(&out, "set-cookie").unwrap().contains("; Secure"), "cookies are Secure over TLS");

    let conn = rustls::ClientConnection::new(Arc::new(client(b"h2", &cert.cert)), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(s.edge).unwrap());
    // The HTTP/2 preface and an empty SETTINGS frame; the server answers with its SETTINGS.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").unwrap();
    let mut frame = [0u8; 9];
    tls.read_exact(&mut frame).unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(frame[3], 0x04, "first server frame is SETTINGS");
}
