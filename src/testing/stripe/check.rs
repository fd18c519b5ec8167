//! The local Stripe's checks of a transfer request, and the JSON of its answers, in the shape
//! of Stripe's API reference (the error object, the transfer object).

use std::collections::BTreeMap;

use super::{SeenRequest, Transfer};

/// A refusal: its status and Stripe's error object.
pub(super) struct Refusal {
    pub status: u16,
    pub body: String,
}

fn invalid(code: &str, param: &str, message: String) -> Refusal {
    Refusal { status: 400, body: error("invalid_request_error", Some(code), Some(param), &message) }
}

/// Stripe's error object: `{"error": {"type", "code"?, "param"?, "message"}}`.
pub(super) fn error(kind: &str, code: Option<&str>, param: Option<&str>, message: &str) -> String {
    let mut e = serde_json::json!({ "type": kind, "message": message });
    if let Some(code) = code {
        e["code"] = code.into();
        e["doc_url"] = format!("https://docs.stripe.com/error-codes/{}", code.replace('_', "-")).into();
    }
    if let Some(param) = param {
        e["param"] = param.into();
    }
    serde_json::json!({ "error": e }).to_string()
}

/// The route, the key, and the headers Stripe's docs ask for.
pub(super) fn request(key: &str, seen: &SeenRequest) -> Result<(), Refusal> {
    if seen.method != "POST" || seen.path != "/v1/transfers" {
        let message = format!("Unrecognized request URL ({}: {}).", seen.method, seen.path);
        return Err(Refusal { status: 404, body: error("invalid_request_error", None, None, &message) });
    }
    let unauthorized = |message: String| Refusal { status: 401, body: error("invalid_request_error", None, None, &message) };
    match seen.header("authorization").map(|a| a.strip_prefix("Bearer ")) {
        None => {
            return Err(unauthorized(
                "You did not provide an API key. You need to provide your API key in the Authorization header, \
                 using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
                    .into(),
            ))
        }
        Some(Some(given)) if given == key => {}
        Some(given) => {
            let given = given.unwrap_or_default();
            let head: String = given.chars().take(8).collect();
            let tail: String = given.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(unauthorized(format!("Invalid API Key provided: {head}****{tail}")));
        }
    }
    match seen.header("stripe-version") {
        None => return Err(invalid("parameter_missing", "Stripe-Version", "This server wants a pinned Stripe-Version header.".into())),
        Some(v) if !version_ok(v) => {
            return Err(invalid("parameter_invalid", "Stripe-Version", format!("Invalid Stripe API version: {v}")))
        }
        Some(_) => {}
    }
    match seen.header("idempotency-key") {
        None | Some("") => {
            return Err(invalid(
                "parameter_missing",
                "Idempotency-Key",
                "This server wants an Idempotency-Key header on every transfer.".into(),
            ))
        }
        Some(k) if k.len() > 255 => {
            return Err(invalid("parameter_invalid", "Idempotency-Key", "Idempotency-Key is longer than 255 characters.".into()))
        }
        Some(_) => {}
    }
    let content_type = seen.header("content-type").unwrap_or_default();
    if content_type.split(';').next().map(str::trim) != Some("application/x-www-form-urlencoded") {
        return Err(invalid(
            "parameter_invalid",
            "Content-Type",
            format!("Invalid request: the body must be application/x-www-form-urlencoded, not {content_type:?}."),
        ));
    }
    Ok(())
}

/// `YYYY-MM-DD`, optionally followed by `.name` (Stripe's newer release names).
fn version_ok(v: &str) -> bool {
    let date = v.split('.').next().unwrap_or_default();
    let b = date.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
        && v.split('.').nth(1).is_none_or(|name| !name.is_empty() && name.bytes().all(|c| c.is_ascii_lowercase()))
}

const KNOWN: [&str; 6] = ["amount", "currency", "destination", "transfer_group", "metadata[payout_id]", "metadata[partner]"];

/// The form's parameters: each known one once, every one our client sends present and
/// well-formed. Answers a transfer without its id and key.
pub(super) fn form(pairs: &[(String, String)]) -> Result<Transfer, Refusal> {
    for (name, _) in pairs {
        if !KNOWN.contains(&name.as_str()) {
            return Err(invalid("parameter_unknown", name, format!("Received unknown parameter: {name}")));
        }
        if pairs.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(invalid("parameter_invalid", name, format!("Invalid {name}: given more than once")));
        }
    }
    let get = |name: &str| -> Result<String, Refusal> {
        match pairs.iter().find(|(n, _)| n == name) {
            Some((_, v)) if !v.is_empty() => Ok(v.clone()),
            _ => Err(invalid("parameter_missing", name, format!("Missing required param: {name}."))),
        }
    };
    let amount_text = get("amount")?;
    let amount: i64 = amount_text
        .parse()
        .ok()
        .filter(|_| amount_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| invalid("parameter_invalid_integer", "amount", format!("Invalid integer: {amount_text}")))?;
    if amount <= 0 {
        return Err(invalid("parameter_invalid_integer", "amount", "This value must be greater than or equal to 1.".into()));
    }
    let currency = get("currency")?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(invalid(
            "parameter_invalid",
            "currency",
            format!("Invalid currency: {currency}. Stripe's currencies are lower-case ISO codes."),
        ));
    }
    let destination = get("destination")?;
    let account_ok = destination.strip_prefix("acct_").is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !account_ok {
        return Err(invalid("resource_missing", "destination", format!("No such destination: '{destination}'")));
    }
    let transfer_group = get("transfer_group")?;
    let mut metadata = BTreeMap::new();
    for key in ["payout_id", "partner"] {
        let value = get(&format!("metadata[{key}]"))?;
        if value.chars().count() > 500 {
            return Err(invalid("parameter_invalid", &format!("metadata[{key}]"), "Metadata values can have up to 500 characters.".into()));
        }
        metadata.insert(key.to_string(), value);
    }
    let (id, idempotency_key) = (String::new(), String::new());
    Ok(Transfer { id, amount, currency, destination, transfer_group, metadata, idempotency_key })
}

/// Stripe's transfer object for a created transfer.
pub(super) fn transfer_json(t: &Transfer, n: u64) -> String {
    serde_json::json!({
        "id": t.id,
        "object": "transfer",
        "amount": t.amount,
        "amount_reversed": 0,
        "balance_transaction": format!("txn_test{n:017}"),
        "created": 1_718_841_600 + n,
        "currency": t.currency,
        "description": null,
        "destination": t.destination,
        "destination_payment": format!("py_test{n:017}"),
        "livemode": false,
        "metadata": t.metadata,
        "reversals": { "object": "list", "data": [], "has_more": false, "total_count": 0, "url": format!("/v1/transfers/{}/reversals", t.id) },
        "reversed": false,
        "source_transaction": null,
        "source_type": "card",
        "transfer_group": t.transfer_group,
    })
    .to_string()
}
