//! The partner dashboard at `/dashboard` on the API listener: HTML rendered here, charts as
//! inline SVG, no script but a same-origin copy button, a strict Content-Security-Policy.
//!
//! - `GET /dashboard/login`, `POST /dashboard/login` (`key=`, `login_token=`): sign-in with an API key (a
//!   stored `cgk_…` key or the configured admin key), checked by `keys::authenticate`, whose
//!   limiter on failed authentications per address answers `429` here too;
//! - `POST /dashboard/logout` (`csrf=`): sign-out;
//! - `GET /dashboard`: an admin's overview (every partner, the programs' totals); a partner is
//!   sent on to its own page;
//! - `GET /dashboard/partners/{id}?from=&to=`: a partner's clicks, conversions, earnings,
//!   balance, payouts and links;
//! - `GET /dashboard/links/{code}/qr.svg`: a link's QR code under the session's cookie, since an
//!   `<img>` cannot send a bearer key;
//! - `GET /dashboard/style.css`, `/dashboard/app.js`: the page's own stylesheet and script.
//!
//! Every figure is read in-process through the JSON API's own handlers, after
//! `scope::authorize` (`api_get`), so the page and the API cannot disagree, and another
//! partner's page is `404` exactly where the API's would be. These routes answer HTML, not the
//! JSON API, so the OpenAPI document leaves them out.

mod chart;
mod html;
mod pages;
mod session;

pub use session::Sessions;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::scope::{self, Caller};
use super::{ApiError, ApiResult, ApiState};
use session::Session;

/// The policy of every dashboard answer: only this origin's stylesheet, script and images (and
/// `data:` images), forms posting here alone, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");

/// Routes one request under `/dashboard`.
pub async fn route(state: &Arc<ApiState>, peer: Option<std::net::IpAddr>, req: Request<Incoming>) -> ApiResult {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.split('/').skip(2).collect();
    let method = req.method().clone();
    let answer = match (&method, segments.as_slice()) {
        (&Method::GET, ["style.css"]) => asset("text/css; charset=utf-8", STYLE),
        (&Method::GET, ["app.js"]) => asset("text/javascript; charset=utf-8", SCRIPT),
        (&Method::GET, ["login"]) => login_page(state, StatusCode::OK, None),
        (&Method::POST, ["login"]) => sign_in(state, peer, req).await,
        (&Method::POST, ["logout"]) => sign_out(state, req).await,
        (&Method::GET, rest) => match signed_in(state, peer, &req).await {
            Ok((caller, session)) => match rest {
                [] => overview(state, &caller, &session, &query).await,
                ["partners", id] => partner(state, &caller, &session, id, &query).await,
                ["links", code, "qr.svg"] => qr(state, &caller, code).await,
                _ => not_found(),
            },
            Err(answer) => answer,
        },
        _ => not_found(),
    };
    Ok(secured(answer))
}

/// Adds the headers every dashboard answer carries.
fn secured(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn page(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond(status, "text/html; charset=utf-8", body)
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, content_type, body)
}

fn not_found() -> Response<Full<Bytes>> {
    page(StatusCode::NOT_FOUND, pages::message("Not found", "There is no such page, or it is not yours to see."))
}

fn see_other(to: &str) -> Response<Full<Bytes>> {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn with_cookie(mut r: Response<Full<Bytes>>, cookie: &str) -> Response<Full<Bytes>> {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

/// An API error as a page: its status and message (a `429` with its `Retry-After`).
fn error_page(e: &ApiError) -> Response<Full<Bytes>> {
    let title = match e.status {
        StatusCode::NOT_FOUND => return not_found(),
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "The server failed",
        _ => "Refused",
    };
    let mut r = page(e.status, pages::message(title, &e.message));
    if let Some(s) = e.retry_after_s {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// Whether a POST names another origin: its `Origin` (or, without one, its `Referer`) is not
/// this host. Under `Referrer-Policy: no-referrer` a browser sends `Origin: null` and no
/// `Referer`, so the forms' tokens are what decides; this only refuses the plainly foreign.
fn foreign(state: &ApiState, req: &Request<Incoming>) -> bool {
    let h = req.headers();
    let Some(host) = h.get(hyper::header::HOST).and_then(|v| v.to_str().ok()) else { return true };
    let scheme = if state.dashboard.secure { "https" } else { "http" };
    let origin = format!("{scheme}://{host}");
    match (h.get(hyper::header::ORIGIN), h.get(hyper::header::REFERER)) {
        (Some(o), _) => o.as_bytes() != b"null" && o.as_bytes() != origin.as_bytes(),
        (None, Some(r)) => !r.to_str().is_ok_and(|r| r.strip_prefix(origin.as_str()).is_some_and(|rest| rest.starts_with('/'))),
        (None, None) => false,
    }
}

/// The sign-in page with a fresh form token, also handed over in the `cg_login` cookie: a
/// sign-in must send both (a cross-site form cannot send the `SameSite=Strict` cookie).
fn login_page(state: &ApiState, status: StatusCode, problem: Option<&str>) -> Response<Full<Bytes>> {
    match session::random_hex() {
        Ok(token) => with_cookie(page(status, pages::login(problem, &token)), &state.dashboard.login_cookie(&token)),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard sign-in token could not be made");
            error_page(&ApiError::internal("the sign-in form could not be made; retry"))
        }
    }
}

fn cross_site() -> Response<Full<Bytes>> {
    page(StatusCode::FORBIDDEN, pages::message("Not allowed", "This form was not sent from this dashboard."))
}

/// The form's fields.
async fn form(state: &ApiState, req: Request<Incoming>) -> Result<Vec<(String, String)>, Response<Full<Bytes>>> {
    let body = super::read_body(state, req).await.map_err(|e| error_page(&e))?;
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

async fn sign_in(state: &Arc<ApiState>, peer: Option<std::net::IpAddr>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let login_cookie = cookie_value(&req, session::LOGIN_COOKIE);
    if foreign(state, &req) {
        return cross_site();
    }
    let fields = match form(state, req).await {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    let sent = field(&fields, "login_token");
    if sent.is_empty() || !login_cookie.is_some_and(|c| crate::model::ct_eq(c.as_bytes(), sent.as_bytes())) {
        return cross_site();
    }
    let key = field(&fields, "key").trim().to_string();
    let bearer = format!("Bearer {key}");
    match super::keys::authenticate(state, peer, Some(bearer.as_str())).await {
        Ok(_) => match state.dashboard.start(&key, (state.now_ms)()) {
            Ok((token, _)) => with_cookie(see_other("/dashboard"), &state.dashboard.cookie(&token)),
            Err(e) => {
                tracing::error!(error = %e, "a dashboard session could not be started");
                error_page(&ApiError::internal("the session could not be started; retry"))
            }
        },
        Err(e) if e.status == StatusCode::UNAUTHORIZED => login_page(state, StatusCode::UNAUTHORIZED, Some("That key is not valid.")),
        Err(e) => error_page(&e),
    }
}

async fn sign_out(state: &Arc<ApiState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if foreign(state, &req) {
        return cross_site();
    }
    let token = cookie_token(&req);
    let fields = match form(state, req).await {
        Ok(f) => f,
        Err(answer) => return answer,
    };
    if let Some(token) = token {
        match state.dashboard.get(&token, (state.now_ms)()) {
            Some(s) if crate::model::ct_eq(s.csrf.as_bytes(), field(&fields, "csrf").as_bytes()) => state.dashboard.end(&token),
            Some(_) => return cross_site(),
            None => {}
        }
    }
    with_cookie(see_other("/dashboard/login"), &state.dashboard.clear_cookie())
}

fn cookie_token(req: &Request<Incoming>) -> Option<String> {
    cookie_value(req, session::COOKIE)
}

/// The value of cookie `name` when it is a token (64 hex digits).
fn cookie_value(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|h| session::token_of(h, name)).map(str::to_string)
}

/// The caller of a request's session, its key checked again by `keys::authenticate` (and so
/// rate-limited as the key is on the API); without a live session, the sign-in page.
async fn signed_in(
    state: &Arc<ApiState>,
    peer: Option<std::net::IpAddr>,
    req: &Request<Incoming>,
) -> Result<(Caller, Session), Response<Full<Bytes>>> {
    let token = cookie_token(req).ok_or_else(|| see_other("/dashboard/login"))?;
    let session = state.dashboard.get(&token, (state.now_ms)()).ok_or_else(|| see_other("/dashboard/login"))?;
    let bearer = format!("Bearer {}", session.key);
    match super::keys::authenticate(state, peer, Some(bearer.as_str())).await {
        Ok(caller) => Ok((caller, session)),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            state.dashboard.end(&token);
            let again = login_page(state, StatusCode::UNAUTHORIZED, Some("Your key is no longer valid (revoked?); sign in with another."));
            Err(with_cookie(again, &state.dashboard.clear_cookie()))
        }
        Err(e) => Err(error_page(&e)),
    }
}

/// `GET path?query` of the JSON API as `caller`, in-process: `scope::authorize` first, as on
/// the API, then the route's own handler. The answer's body as JSON, or the API's error.
async fn api_get(state: &Arc<ApiState>, caller: &Caller, path: &str, query: &str) -> Result<Value, ApiError> {
    let bytes = api_get_raw(state, caller, path, query).await?.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(format!("the API's answer to {path} is not JSON: {e}")))
}

async fn api_get_raw(state: &Arc<ApiState>, caller: &Caller, path: &str, query: &str) -> ApiResult {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    scope::authorize(state, caller, &Method::GET, &segments, query).await?;
    match segments.as_slice() {
        ["v1", "reports", kind @ ("partners" | "programs"), id] => super::reports::handle(state, kind, id, query, false).await,
        ["v1", "partners", id, "balance"] => super::commissions::balance(state, id).await,
        ["v1", "payouts"] => super::payouts::list_payouts(state, query).await,
        ["v1", "programs" | "partners" | "links", ..] => super::catalog::route(state, &Method::GET, &segments, query, caller, None).await,
        _ => Err(ApiError::not_found(format!("no dashboard read of {path}"))),
    }
}

/// The period's query for the API: `from` and `to` as given, when they are dates.
fn period(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if (k == "from" || k == "to") && v.len() == 10 && v.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

async fn overview(state: &Arc<ApiState>, caller: &Caller, session: &Session, query: &str) -> Response<Full<Bytes>> {
    if let Some(me) = caller.partner() {
        return see_other(&format!("/dashboard/partners/{me}"));
    }
    let period = period(query);
    let read = async {
        let partners = api_get(state, caller, "/v1/partners", "limit=1000").await?;
        let programs = api_get(state, caller, "/v1/programs", "limit=1000").await?;
        let mut totals = Vec::new();
        for p in programs["programs"].as_array().into_iter().flatten() {
            let id = p["id"].as_str().unwrap_or_default();
            totals.push((p.clone(), api_get(state, caller, &format!("/v1/reports/programs/{id}"), &period).await?));
        }
        Ok::<_, ApiError>((partners, totals))
    };
    match read.await {
        Ok((partners, totals)) => page(StatusCode::OK, pages::overview(&partners, &totals, &period, &session.csrf)),
        Err(e) => error_page(&e),
    }
}

async fn partner(state: &Arc<ApiState>, caller: &Caller, session: &Session, id: &str, query: &str) -> Response<Full<Bytes>> {
    let period = period(query);
    let read = async {
        let report = api_get(state, caller, &format!("/v1/reports/partners/{id}"), &period).await?;
        let balance = api_get(state, caller, &format!("/v1/partners/{id}/balance"), "").await?;
        let who = api_get(state, caller, &format!("/v1/partners/{id}"), "").await?;
        let own = format!("partner={}", urlencode(id));
        let payouts = api_get(state, caller, "/v1/payouts", &format!("{own}&limit=100")).await?;
        let links = api_get(state, caller, "/v1/links", &format!("{own}&limit=1000")).await?;
        Ok::<_, ApiError>(pages::Partner { who, report, balance, payouts, links })
    };
    match read.await {
        Ok(p) => {
            let base = state.config.edge_public_url.trim_end_matches('/');
            page(StatusCode::OK, pages::partner(&p, base, caller.partner().is_none(), &session.csrf))
        }
        Err(e) => error_page(&e),
    }
}

async fn qr(state: &Arc<ApiState>, caller: &Caller, code: &str) -> Response<Full<Bytes>> {
    match api_get_raw(state, caller, &format!("/v1/links/{code}/qr.svg"), "").await {
        Ok(r) => r,
        Err(e) => error_page(&e),
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests;
