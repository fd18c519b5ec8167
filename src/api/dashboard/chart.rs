//! Clicks by day as an inline SVG: one stacked bar a day, valid clicks below and flagged ones
//! above, every day of the period drawn (a day without clicks is an empty slot). Each bar's
//! figures are also in its `<title>` (a tooltip and a screen reader's text) and its `data-`
//! attributes, so a reader or a test can take them off the page. Colours are attributes, not
//! `style`, so the page's CSP needs no inline styles.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::html::escape;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 200;
/// Room on the left for the scale's figure and below for the dates.
const LEFT: u32 = 40;
const BOTTOM: u32 = 20;
const VALID: &str = "#2f6fb0";
const FLAGGED: &str = "#e0a030";
/// Days a chart draws at most; a longer period shows its last days.
const DAYS_MAX: usize = 400;

/// One day's bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub date: String,
    pub valid: u64,
    pub flagged: u64,
}

/// Every day of a report's period (`from`..=`to`), with the clicks of the days it lists.
pub fn bars(report: &Value) -> Vec<Bar> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    let parse = |k: &str| report[k].as_str().and_then(|s| time::Date::parse(s, &f).ok());
    let mut listed: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for d in report["days"].as_array().into_iter().flatten() {
        let by = &d["clicks"]["by_verdict"];
        listed.insert(d["date"].as_str().unwrap_or(""), (by["valid"].as_u64().unwrap_or(0), by["flagged"].as_u64().unwrap_or(0)));
    }
    let (Some(from), Some(to)) = (parse("from"), parse("to")) else { return vec![] };
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        let date = day.format(&f).unwrap_or_default();
        let (valid, flagged) = listed.get(date.as_str()).copied().unwrap_or((0, 0));
        out.push(Bar { date, valid, flagged });
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    let skip = out.len().saturating_sub(DAYS_MAX);
    out.drain(..skip);
    out
}

/// The chart of `bars`.
pub fn svg(bars: &[Bar]) -> String {
    let top = bars.iter().map(|b| b.valid + b.flagged).max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let slot = f64::from(plot_w) / bars.len().max(1) as f64;
    let bar_w = (slot * 0.8).max(1.0);
    let scale = |n: u64| n as f64 / top as f64 * f64::from(plot_h);
    let mut out = String::with_capacity(256 + bars.len() * 320);
    let _ = write!(
        out,
        "<svg id=\"clicks-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"clicks-chart-title\" data-max=\"{top}\"><title id=\"clicks-chart-title\">Clicks by day: valid and flagged</title>\
         <line x1=\"{LEFT}\" y1=\"{plot_h}\" x2=\"{WIDTH}\" y2=\"{plot_h}\" stroke=\"#888\" stroke-width=\"1\"/>\
         <text x=\"{x}\" y=\"12\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">{top}</text>",
        x = LEFT - 4
    );
    for (i, b) in bars.iter().enumerate() {
        let x = f64::from(LEFT) + i as f64 * slot + (slot - bar_w) / 2.0;
        let (hv, hf) = (scale(b.valid), scale(b.flagged));
        let yv = f64::from(plot_h) - hv;
        let yf = yv - hf;
        let date = escape(&b.date);
        let _ = write!(
            out,
            "<g class=\"day\" data-date=\"{date}\" data-valid=\"{v}\" data-flagged=\"{fl}\"><title>{date}: {v} valid, {fl} flagged</title>\
             <rect x=\"{x:.1}\" y=\"{yv:.1}\" width=\"{bar_w:.1}\" height=\"{hv:.1}\" fill=\"{VALID}\"/>\
             <rect x=\"{x:.1}\" y=\"{yf:.1}\" width=\"{bar_w:.1}\" height=\"{hf:.1}\" fill=\"{FLAGGED}\"/></g>",
            v = b.valid,
            fl = b.flagged,
        );
    }
    if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
        let _ = write!(
            out,
            "<text x=\"{LEFT}\" y=\"{y}\" font-size=\"11\" fill=\"#444\">{}</text>\
             <text x=\"{WIDTH}\" y=\"{y}\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            escape(&first.date),
            escape(&last.date),
            y = HEIGHT - 4
        );
    }
    out.push_str("</svg><p class=\"legend\"><span class=\"swatch valid\"></span>valid <span class=\"swatch flagged\"></span>flagged</p>");
    out
}
