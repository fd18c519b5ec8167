//! The pages, built from the JSON API's answers: every figure shown is a field of one of them,
//! and carries it raw in a `data-figure` attribute (`data-figure="balance.USD.pending_minor"`)
//! beside its formatted text, so a test reads the page's figures and the API's side by side.

use std::fmt::Write as _;

use serde_json::Value;

use super::chart;
use super::html::{escape, money, percent, shell};

/// The API's answers a partner's page is made of.
pub struct Partner {
    /// `GET /v1/partners/{id}`.
    pub who: Value,
    /// `GET /v1/reports/partners/{id}` over the period.
    pub report: Value,
    /// `GET /v1/partners/{id}/balance`.
    pub balance: Value,
    /// `GET /v1/payouts?partner={id}`.
    pub payouts: Value,
    /// `GET /v1/links?partner={id}`.
    pub links: Value,
}

/// A `<td>` with a figure's formatted text and its raw value.
fn cell(out: &mut String, figure: &str, raw: &Value, text: &str) {
    let raw = match raw {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    let _ = write!(out, "<td data-figure=\"{}\" data-value=\"{}\">{}</td>", escape(figure), escape(&raw), escape(text));
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// The sign-in page, with `problem` said above the form; `token` is its form token.
pub fn login(problem: Option<&str>, token: &str) -> String {
    let mut body = String::new();
    if let Some(p) = problem {
        let _ = write!(body, "<p class=\"problem\" role=\"alert\">{}</p>", escape(p));
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/dashboard/login\" class=\"login\"><input type=\"hidden\" name=\"login_token\" value=\"{}\">",
        escape(token)
    );
    body.push_str(
        "<label for=\"key\">Your API key</label>\
         <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required placeholder=\"cgk_…\">\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"note\">Paste the key your program's admin gave you. It stays on this server for the session only.</p>",
    );
    shell("Sign in", None, &body)
}

/// A page that only says something.
pub fn message(title: &str, text: &str) -> String {
    shell(title, None, &format!("<p class=\"problem\">{}</p><p><a href=\"/dashboard\">Back to the dashboard</a></p>", escape(text)))
}

fn period_form(out: &mut String, report: &Value) {
    let _ = write!(
        out,
        "<form method=\"get\" class=\"period\"><label>From <input type=\"date\" name=\"from\" value=\"{}\"></label> \
         <label>to <input type=\"date\" name=\"to\" value=\"{}\"></label> <button type=\"submit\">Show</button></form>",
        escape(str_of(report, "from")),
        escape(str_of(report, "to"))
    );
}

/// A report's totals: clicks by verdict, conversions, conversion rate, EPC, revenue and
/// commissions by status.
fn totals(out: &mut String, report: &Value) {
    let t = &report["totals"];
    let by = &t["clicks"]["by_verdict"];
    out.push_str(
        "<table class=\"figures\"><tr><th>Clicks</th><th>Valid</th><th>Flagged</th><th>Conversions</th><th>Conversion rate</th></tr><tr>",
    );
    cell(out, "clicks.total", &t["clicks"]["total"], &t["clicks"]["total"].to_string());
    cell(out, "clicks.valid", &by["valid"], &by["valid"].as_u64().unwrap_or(0).to_string());
    cell(out, "clicks.flagged", &by["flagged"], &by["flagged"].as_u64().unwrap_or(0).to_string());
    cell(out, "conversions", &t["conversions"], &t["conversions"].to_string());
    cell(out, "conversion_rate", &t["conversion_rate"], &percent(t["conversion_rate"].as_f64()));
    out.push_str("</tr></table>");
    out.push_str("<h3>Earnings per valid click</h3><table><tr><th>Currency</th><th>EPC</th><th>Earnings</th></tr>");
    let epc = t["epc"].as_array().cloned().unwrap_or_default();
    if epc.is_empty() {
        out.push_str("<tr><td colspan=\"3\">No valid clicks in this period.</td></tr>");
    }
    for e in &epc {
        let c = str_of(e, "currency");
        let _ = write!(out, "<tr><td>{}</td>", escape(c));
        let minor = e["epc_minor"].as_f64().unwrap_or(0.0);
        cell(out, &format!("epc.{c}"), &e["epc_minor"], &format!("{:.2} minor units", minor));
        cell(out, &format!("earnings.{c}"), &e["earnings_minor"], &money(e["earnings_minor"].as_i64().unwrap_or(0), c));
        out.push_str("</tr>");
    }
    out.push_str("</table><h3>Earnings by status</h3><table><tr><th>Currency</th><th>Status</th><th>Commissions</th><th>Created at</th><th>Standing</th></tr>");
    let rows = t["commissions"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"5\">No commissions in this period.</td></tr>");
    }
    for c in &rows {
        let (cur, status) = (str_of(c, "currency"), str_of(c, "status"));
        let _ = write!(out, "<tr><td>{}</td><td>{}</td>", escape(cur), escape(status));
        let f = format!("commissions.{cur}.{status}");
        cell(out, &format!("{f}.count"), &c["count"], &c["count"].to_string());
        cell(out, &format!("{f}.amount_minor"), &c["amount_minor"], &money(c["amount_minor"].as_i64().unwrap_or(0), cur));
        cell(out, &format!("{f}.remaining_minor"), &c["remaining_minor"], &money(c["remaining_minor"].as_i64().unwrap_or(0), cur));
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn balance(out: &mut String, balance: &Value) {
    out.push_str(
        "<h2>Balance</h2><table id=\"balance\"><tr><th>Currency</th><th>Pending</th><th>Payable</th><th>In transit</th><th>Paid</th></tr>",
    );
    let rows = balance["balances"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"5\">Nothing earned yet.</td></tr>");
    }
    for b in &rows {
        let c = str_of(b, "currency");
        let _ = write!(out, "<tr><td>{}</td>", escape(c));
        for k in ["pending_minor", "approved_minor", "in_transit_minor", "paid_minor"] {
            cell(out, &format!("balance.{c}.{k}"), &b[k], &money(b[k].as_i64().unwrap_or(0), c));
        }
        out.push_str("</tr>");
        if b["approved_minor"].as_i64().unwrap_or(0) < 0 {
            out.push_str(
                "<tr><td colspan=\"5\" class=\"negative\">The payable balance is negative: a paid commission was clawed \
                 back, and is taken from your next earnings.</td></tr>",
            );
        }
    }
    out.push_str("</table>");
}

fn payouts(out: &mut String, payouts: &Value) {
    out.push_str(
        "<h2>Payouts</h2><table id=\"payouts\"><tr><th>Payout</th><th>Amount</th><th>Method</th><th>State</th><th>Reference</th></tr>",
    );
    let rows = payouts["payouts"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"5\">No payouts yet.</td></tr>");
    }
    for p in &rows {
        let id = str_of(p, "id");
        let _ = write!(out, "<tr><td>{}</td>", escape(id));
        cell(
            out,
            &format!("payout.{id}.amount_minor"),
            &p["amount_minor"],
            &money(p["amount_minor"].as_i64().unwrap_or(0), str_of(p, "currency")),
        );
        let _ = write!(out, "<td>{}</td>", escape(str_of(p, "method")));
        cell(out, &format!("payout.{id}.status"), &p["status"], str_of(p, "status"));
        let _ = write!(out, "<td>{}</td></tr>", escape(str_of(p, "reference")));
    }
    out.push_str("</table>");
}

fn links(out: &mut String, links: &Value, edge_base: &str) {
    out.push_str("<h2>Links</h2><div class=\"links\">");
    let rows = links["links"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("<p>No links yet.</p>");
    }
    for l in &rows {
        let code = str_of(l, "code");
        let path = form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>();
        let url = format!("{edge_base}/r/{path}");
        let _ = write!(
            out,
            "<div class=\"link\" data-code=\"{c}\"><h3>{c} <small>{status}</small></h3><p>to {dest}</p>\
             <input class=\"copy-source\" id=\"url-{c}\" readonly value=\"{url}\" aria-label=\"Link for {c}\">\
             <button type=\"button\" class=\"copy\" data-copy=\"url-{c}\">Copy</button>\
             <img class=\"qr\" src=\"/dashboard/links/{path}/qr.svg\" alt=\"QR code of {c}\" width=\"128\" height=\"128\"></div>",
            c = escape(code),
            status = escape(str_of(l, "status")),
            dest = escape(str_of(l, "destination")),
            url = escape(&url),
        );
    }
    out.push_str("</div>");
}

/// A partner's page. `admin` adds the way back to every partner.
pub fn partner(p: &Partner, edge_base: &str, admin: bool, csrf: &str) -> String {
    let mut out = String::with_capacity(16 * 1_024);
    if admin {
        out.push_str("<p><a href=\"/dashboard\">All partners</a></p>");
    }
    period_form(&mut out, &p.report);
    let _ =
        write!(out, "<h2>Clicks by day <small>{} to {}</small></h2>", escape(str_of(&p.report, "from")), escape(str_of(&p.report, "to")));
    out.push_str(&chart::svg(&chart::bars(&p.report)));
    totals(&mut out, &p.report);
    balance(&mut out, &p.balance);
    payouts(&mut out, &p.payouts);
    links(&mut out, &p.links, edge_base);
    let name = p.who["name"].as_str().or(p.who["id"].as_str()).unwrap_or("Partner");
    shell(name, Some(csrf), &out)
}

/// An admin's overview: every partner, and each program's totals over the period.
pub fn overview(partners: &Value, programs: &[(Value, Value)], period: &str, csrf: &str) -> String {
    let mut out = String::with_capacity(8 * 1_024);
    if let Some((_, report)) = programs.first() {
        period_form(&mut out, report);
    }
    out.push_str(
        "<h2>Programs</h2><table id=\"programs\"><tr><th>Program</th><th>Clicks</th><th>Valid</th><th>Flagged</th>\
                  <th>Conversions</th><th>Conversion rate</th><th>Revenue</th><th>Commissions standing</th></tr>",
    );
    for (program, report) in programs {
        let id = str_of(program, "id");
        let t = &report["totals"];
        let _ = write!(out, "<tr><td>{}</td>", escape(str_of(program, "name")));
        cell(&mut out, &format!("program.{id}.clicks"), &t["clicks"]["total"], &t["clicks"]["total"].to_string());
        for v in ["valid", "flagged"] {
            let n = &t["clicks"]["by_verdict"][v];
            cell(&mut out, &format!("program.{id}.{v}"), n, &n.as_u64().unwrap_or(0).to_string());
        }
        cell(&mut out, &format!("program.{id}.conversions"), &t["conversions"], &t["conversions"].to_string());
        cell(&mut out, &format!("program.{id}.conversion_rate"), &t["conversion_rate"], &percent(t["conversion_rate"].as_f64()));
        let revenue: Vec<String> = t["revenue"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| money(r["revenue_minor"].as_i64().unwrap_or(0), str_of(r, "currency")))
            .collect();
        let _ = write!(out, "<td>{}</td>", escape(&revenue.join(", ")));
        let standing: Vec<String> = t["commissions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| !matches!(str_of(c, "status"), "voided" | "reversed"))
            .map(|c| format!("{} {}", str_of(c, "status"), money(c["remaining_minor"].as_i64().unwrap_or(0), str_of(c, "currency"))))
            .collect();
        let _ = write!(out, "<td>{}</td></tr>", escape(&standing.join(", ")));
    }
    out.push_str("</table><h2>Partners</h2><table id=\"partners\"><tr><th>Partner</th><th>Id</th><th>Status</th></tr>");
    let q = if period.is_empty() { String::new() } else { format!("?{period}") };
    for p in partners["partners"].as_array().into_iter().flatten() {
        let id = str_of(p, "id");
        let href = format!("/dashboard/partners/{}{q}", form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
        let _ = write!(
            out,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
            escape(&href),
            escape(str_of(p, "name")),
            escape(id),
            escape(str_of(p, "status"))
        );
    }
    if partners.get("next_cursor").is_some() {
        out.push_str("<tr><td colspan=\"3\">The first 1000 partners are shown.</td></tr>");
    }
    out.push_str("</table>");
    shell("All partners", Some(csrf), &out)
}
