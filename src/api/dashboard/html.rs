//! HTML building blocks: the one `escape` every text and attribute passes through, money and
//! rate formatting, and the page's shell.

use std::fmt::Write as _;

/// `s` safe inside an element's text or a double- or single-quoted attribute: `&`, `<`, `>`,
/// `"` and `'` become entities, and nothing else changes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An amount in minor units as its currency writes it: `-12.34 USD`, `500 JPY`. An unknown
/// code gets two decimals.
pub fn money(minor: i64, currency: &str) -> String {
    let digits = crate::model::currency::minor_units(currency).unwrap_or(2) as u32;
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs} {}", escape(currency));
    }
    let unit = 10u64.pow(digits);
    format!("{sign}{}.{:0width$} {}", abs / unit, abs % unit, escape(currency), width = digits as usize)
}

/// A ratio as a percentage with two decimals; a dash when there is none.
pub fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".to_string(), |r| format!("{:.2} %", r * 100.0))
}

/// A whole page: the title, the signed-in bar (with its sign-out form) when `csrf` is given,
/// and the body.
pub fn shell(title: &str, csrf: Option<&str>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1_024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · clickgate</title><link rel=\"stylesheet\" href=\"/dashboard/style.css\">\
         <script src=\"/dashboard/app.js\" defer></script></head><body>\
         <header><a class=\"brand\" href=\"/dashboard\">clickgate</a>",
        escape(title)
    );
    if let Some(csrf) = csrf {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/dashboard/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" id=\"sign-out\">Sign out</button></form>",
            escape(csrf)
        );
    }
    let _ = write!(out, "</header><main><h1>{}</h1>{body}</main></body></html>", escape(title));
    out
}
