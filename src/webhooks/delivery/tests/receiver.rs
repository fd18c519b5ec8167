//! A scripted HTTP receiver on a real socket: answers each request with the next scripted
//! status (200 when the script is empty), keeps every request, and can hold its answers until
//! the test releases them (a slow endpoint).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

/// One scripted answer.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub location: Option<String>,
}

pub fn reply(status: u16) -> Reply {
    Reply { status, ..Reply::default() }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Got {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    got: Mutex<Vec<Got>>,
    connections: AtomicUsize,
    hold: Option<Arc<Semaphore>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Receiver {
    pub async fn start(ip: IpAddr) -> Receiver {
        Receiver::with_hold(ip, None).await
    }

    /// A receiver that answers only as `hold` hands out permits.
    pub async fn with_hold(ip: IpAddr, hold: Option<Arc<Semaphore>>) -> Receiver {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State { hold, ..State::default() });
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let state = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let headers =
                                req.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
                            let body = req.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
                            let r = state.script.lock().unwrap().pop_front().unwrap_or(reply(200));
                            state.got.lock().unwrap().push(Got { headers, body });
                            if let Some(hold) = &state.hold {
                                hold.acquire().await.unwrap().forget();
                            }
                            let mut resp = hyper::Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
                            *resp.status_mut() = hyper::StatusCode::from_u16(r.status).unwrap();
                            if let Some(ra) = r.retry_after {
                                resp.headers_mut().insert("retry-after", ra.parse().unwrap());
                            }
                            if let Some(to) = &r.location {
                                resp.headers_mut().insert("location", to.parse().unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        Receiver { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook?x=1", self.addr)
    }

    pub fn script(&self, replies: &[Reply]) {
        self.state.script.lock().unwrap().extend(replies.iter().cloned());
    }

    pub fn got(&self) -> Vec<Got> {
        self.state.got.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}
