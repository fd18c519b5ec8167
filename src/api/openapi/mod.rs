//! The API's OpenAPI 3.1 document, served at `GET /openapi.json` without a key.
//!
//! Request bodies and the answers that are Rust structs take their schemas from
//! `#[derive(utoipa::ToSchema)]` on those structs (the catalog's `New*` and `*Patch`,
//! `ConversionBody`, the report's days, ...); the answers the handlers build as JSON by hand
//! (`json!`) have theirs written here, field by field as the handler writes them. `ROUTES` is
//! every operation, and a unit test holds it to the router's own table both ways, so a route
//! cannot be added to one without the other.

use std::sync::LazyLock;

use bytes::Bytes;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, RefOr, Required, ResponseBuilder,
};
use utoipa::ToSchema;

use super::commissions::LIST_LIMIT_MAX;

/// The security scheme's name: `Authorization: Bearer <key>`.
const BEARER: &str = "bearer";

/// The document as served: built once.
pub static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(document().to_json().expect("the OpenAPI document serialises")));

/// What a request body is.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// A JSON object of this schema, required.
    Json(&'static str),
    /// A JSON object of this schema, or an empty body (which reads as `{}`).
    OptionalJson(&'static str),
    /// CSV text.
    Csv,
}

/// What a successful answer is.
#[derive(Clone, Copy)]
enum Answer {
    /// A JSON value of this schema.
    Json(u16, &'static str),
    /// A report: JSON of this schema, or CSV when asked.
    JsonOrCsv(&'static str),
    Image(&'static str),
}

/// One operation of the API: what the router answers, as the document describes it.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    id: &'static str,
    summary: &'static str,
    /// Served without a key.
    public: bool,
    query: &'static [&'static str],
    body: Body,
    ok: &'static [Answer],
    /// The error statuses it can give.
    errors: &'static [u16],
}

/// Statuses every keyed route can give: no key, too many calls, the key store failed.
const KEYED: [u16; 3] = [401, 429, 500];

macro_rules! route {
    ($method:literal $path:literal, $id:literal, $summary:literal, query: [$($q:literal),*], body: $body:expr, ok: [$($ok:expr),+], errors: [$($e:literal),*] $(, $public:ident)?) => {
        Route {
            method: $method,
            path: $path,
            id: $id,
            summary: $summary,
            public: route!(@public $($public)?),
            query: &[$($q),*],
            body: $body,
            ok: &[$($ok),+],
            errors: &[$($e),*],
        }
    };
    (@public public) => { true };
    (@public) => { false };
}

use Answer::{Image, Json, JsonOrCsv};
use Body::{Csv, None as NoBody, OptionalJson};

/// Every operation the router answers.
pub const ROUTES: &[Route] = &[
    route!("GET" "/healthz", "health", "Liveness: the API listener answers.", query: [], body: NoBody, ok: [Json(200, "Health")], errors: [], public),
    route!("GET" "/openapi.json", "openapi", "This document.", query: [], body: NoBody, ok: [Json(200, "OpenApiDocument")], errors: [], public),
    route!("GET" "/v1/postback", "postback", "Records a conversion from a signed postback URL (HMAC-SHA256 `sig` over the other parameters, `ts` in Unix seconds) instead of a key.",
        query: ["program", "order_id", "amount_minor", "currency", "occurred_at", "click_id", "visitor_id", "coupon_code", "customer_ref", "ts", "sig"],
        body: NoBody, ok: [Json(201, "Conversion")], errors: [400, 401, 404, 409, 422, 500, 503], public),
    route!("POST" "/v1/conversions", "createConversion", "Records a conversion; a retry with the same `Idempotency-Key` gets the first answer.",
        query: [], body: Body::Json("ConversionBody"), ok: [Json(201, "Conversion")], errors: [400, 403, 409, 413, 422, 503]),
    route!("POST" "/v1/conversions/import", "importConversions", "Records conversions from CSV, one a row; `program` is the default of rows without one.",
        query: ["program"], body: Csv, ok: [Json(200, "ImportSummary")], errors: [400, 403, 413]),
    route!("GET" "/v1/conversions/{id}", "getConversion", "A conversion, its attribution, events and commissions (a partner key sees its own share).",
        query: [], body: NoBody, ok: [Json(200, "Conversion")], errors: [404]),
    route!("POST" "/v1/conversions/{id}/confirm", "confirmConversion", "Confirms a pending conversion.",
        query: [], body: OptionalJson("EmptyObject"), ok: [Json(200, "Conversion")], errors: [400, 403, 404, 409, 413, 422, 503]),
    route!("POST" "/v1/conversions/{id}/cancel", "cancelConversion", "Cancels a conversion and voids its commissions.",
        query: [], body: OptionalJson("EmptyObject"), ok: [Json(200, "Conversion")], errors: [400, 403, 404, 409, 413, 422, 503]),
    route!("POST" "/v1/conversions/{id}/refund", "refundConversion", "Refunds a conversion in whole or in part; needs an `Idempotency-Key`.",
        query: [], body: OptionalJson("RefundBody"), ok: [Json(200, "Conversion")], errors: [400, 403, 404, 409, 413, 422, 503]),
    route!("GET" "/v1/clicks/{click_id}", "getClick", "A click by its signed click id (`cgid`).", query: [], body: NoBody, ok: [Json(200, "Click")], errors: [404, 422]),
    route!("GET" "/v1/reports/partners/{id}", "partnerReport", "A partner's report per UTC day, as JSON or CSV (`Accept: text/csv` or `format=csv`).",
        query: ["from", "to", "format"], body: NoBody, ok: [JsonOrCsv("Report")], errors: [400, 404, 422]),
    route!("GET" "/v1/reports/programs/{id}", "programReport", "A program's report per UTC day, as JSON or CSV (`Accept: text/csv` or `format=csv`).",
        query: ["from", "to", "format"], body: NoBody, ok: [JsonOrCsv("Report")], errors: [400, 403, 404, 422]),
    route!("GET" "/v1/reports/links/{code}", "linkReport", "A link's clicks and the conversions credited through it, per UTC day, as JSON or CSV.",
        query: ["from", "to", "format"], body: NoBody, ok: [JsonOrCsv("Report")], errors: [400, 404, 422]),
    route!("GET" "/v1/reports/channels/{channel}", "channelReport", "A channel's clicks and the conversions credited through its links, per UTC day, as JSON or CSV: every program's, one program's or one partner's.",
        query: ["from", "to", "format", "program", "partner"], body: NoBody, ok: [JsonOrCsv("Report")], errors: [400, 404, 422]),
    route!("GET" "/v1/commissions", "listCommissions", "Commissions, newest first, a page at a time.",
        query: ["partner", "program", "status", "period", "conversion_id", "payout_id", "cursor", "limit"], body: NoBody,
        ok: [Json(200, "CommissionList")], errors: [400, 404, 422]),
    route!("POST" "/v1/commissions/approve", "approveCommissions", "Approves every pending commission past its lock.",
        query: [], body: OptionalJson("EmptyObject"), ok: [Json(200, "Approval")], errors: [400, 403, 413, 503]),
    route!("GET" "/v1/commissions/{id}", "getCommission", "A commission and its steps.", query: [], body: NoBody, ok: [Json(200, "Commission")], errors: [404]),
    route!("GET" "/v1/partners/{id}/balance", "partnerBalance", "A partner's balances per currency.", query: [], body: NoBody, ok: [Json(200, "Balance")], errors: [404]),
    route!("POST" "/v1/partners/{id}/payouts", "settlePartner", "Settles a partner's payable balance in one currency by hand, with the operator's reference.",
        query: [], body: Body::Json("Settle"), ok: [Json(201, "Settlement"), Json(200, "Settlement")], errors: [400, 403, 404, 409, 413, 422]),
    route!("GET" "/v1/programs/{id}/commission", "getCommissionRules", "A program's commission rules and their versions.",
        query: [], body: NoBody, ok: [Json(200, "CommissionRules")], errors: [403, 404]),
    route!("PUT" "/v1/programs/{id}/commission", "putCommissionRules", "Replaces a program's commission rules.",
        query: [], body: Body::Json("ProgramRules"), ok: [Json(200, "CommissionRules")], errors: [400, 403, 404, 413, 422]),
    route!("GET" "/v1/commission-rules/{version}", "getRuleVersion", "The rule set recorded under a version.",
        query: [], body: NoBody, ok: [Json(200, "RuleVersion")], errors: [403, 404, 422]),
    route!("GET" "/v1/ledger/entries", "ledgerEntries", "The ledger's transfers in order, a page at a time.",
        query: ["after_seq", "limit", "account", "commission_id", "cause_prefix"], body: NoBody, ok: [Json(200, "LedgerPage")], errors: [400, 403, 422]),
    route!("POST" "/v1/payout-runs", "createPayoutRun", "Runs a payout run now (`201`), or plans one (`dry_run`, `200`).",
        query: [], body: OptionalJson("NewRun"), ok: [Json(201, "PayoutRunReport"), Json(200, "PayoutRunReport")], errors: [400, 403, 404, 409, 413, 422]),
    route!("GET" "/v1/payout-runs", "listPayoutRuns", "Payout runs, newest first, a page at a time.",
        query: ["cursor", "limit"], body: NoBody, ok: [Json(200, "PayoutRunList")], errors: [400, 403, 404, 422]),
    route!("GET" "/v1/payout-runs/{id}", "getPayoutRun", "A payout run, its totals and its first payouts.",
        query: [], body: NoBody, ok: [Json(200, "PayoutRunDetail")], errors: [403, 404]),
    route!("POST" "/v1/payout-runs/{id}/confirm", "confirmPayoutRun", "Marks a run's sent file and manual payouts paid, but those listed failed.",
        query: [], body: OptionalJson("Confirm"), ok: [Json(200, "PayoutConfirmation")], errors: [400, 403, 404, 409, 413, 422]),
    route!("GET" "/v1/payouts", "listPayouts", "Payouts, a page at a time.",
        query: ["partner", "status", "run", "cursor", "limit"], body: NoBody, ok: [Json(200, "PayoutList")], errors: [400, 404, 422]),
    route!("POST" "/v1/privacy/erase", "privacyErase", "Erases a visitor's clicks (anonymised in the click log and the index) and visitor id on conversions, or a customer reference on conversions, and the stored answers carrying either; amounts, commissions and the ledger stay. Admin only.",
        query: [], body: Body::Json("ErasureRequest"), ok: [Json(200, "ErasureReport")], errors: [400, 403, 413, 422]),
    route!("POST" "/v1/webhook-endpoints", "createWebhookEndpoint", "Registers a webhook endpoint; its signing secret is shown once.",
        query: [], body: Body::Json("Registration"), ok: [Json(201, "WebhookEndpointWithSecret")], errors: [400, 404, 413, 422]),
    route!("GET" "/v1/webhook-endpoints", "listWebhookEndpoints", "Webhook endpoints.", query: [], body: NoBody, ok: [Json(200, "WebhookEndpointList")], errors: []),
    route!("GET" "/v1/webhook-endpoints/{id}", "getWebhookEndpoint", "A webhook endpoint.", query: [], body: NoBody, ok: [Json(200, "WebhookEndpoint")], errors: [404]),
    route!("DELETE" "/v1/webhook-endpoints/{id}", "deleteWebhookEndpoint", "Removes a webhook endpoint.", query: [], body: NoBody, ok: [Json(200, "Deleted")], errors: [404]),
    route!("POST" "/v1/webhook-endpoints/{id}/rotate-secret", "rotateWebhookSecret", "A new signing secret; the old one keeps signing for a while.",
        query: [], body: NoBody, ok: [Json(200, "WebhookEndpointWithSecret")], errors: [404]),
    route!("POST" "/v1/webhook-endpoints/{id}/enable", "enableWebhookEndpoint", "Enables a disabled webhook endpoint.",
        query: [], body: NoBody, ok: [Json(200, "WebhookEndpoint")], errors: [404]),
    route!("GET" "/v1/webhook-events", "listWebhookEvents", "Webhook deliveries, newest first, a page at a time.",
        query: ["endpoint", "status", "cursor", "limit"], body: NoBody, ok: [Json(200, "WebhookDeliveryPage")], errors: [400, 422]),
    route!("POST" "/v1/webhook-events/{id}/replay", "replayWebhookEvent", "Delivers an event again to its endpoints.",
        query: [], body: NoBody, ok: [Json(202, "WebhookReplay")], errors: [404]),
    route!("POST" "/v1/api-keys", "createApiKey", "Creates an API key; its secret is shown once.",
        query: [], body: Body::Json("NewApiKey"), ok: [Json(201, "ApiKeyWithSecret")], errors: [400, 403, 413, 422]),
    route!("GET" "/v1/api-keys", "listApiKeys", "API keys (never their secrets).", query: [], body: NoBody, ok: [Json(200, "ApiKeyList")], errors: [403]),
    route!("GET" "/v1/api-keys/{id}", "getApiKey", "An API key.", query: [], body: NoBody, ok: [Json(200, "ApiKey")], errors: [403, 404]),
    route!("DELETE" "/v1/api-keys/{id}", "revokeApiKey", "Revokes an API key.", query: [], body: NoBody, ok: [Json(200, "ApiKey")], errors: [403, 404]),
    route!("POST" "/v1/programs", "createProgram", "Creates a program.", query: [], body: Body::Json("NewProgram"), ok: [Json(201, "Program")], errors: [400, 403, 409, 413, 422]),
    route!("GET" "/v1/programs", "listPrograms", "Programs in id order, a page at a time.",
        query: ["status", "cursor", "limit"], body: NoBody, ok: [Json(200, "ProgramList")], errors: [400, 403, 422]),
    route!("GET" "/v1/programs/{id}", "getProgram", "A program.", query: [], body: NoBody, ok: [Json(200, "Program")], errors: [403, 404]),
    route!("PATCH" "/v1/programs/{id}", "editProgram", "Changes a program's editable fields.",
        query: [], body: Body::Json("ProgramPatch"), ok: [Json(200, "Program")], errors: [400, 403, 404, 413, 422]),
    route!("POST" "/v1/programs/{id}/pause", "pauseProgram", "Pauses a program.", query: [], body: NoBody, ok: [Json(200, "Program")], errors: [403, 404, 422]),
    route!("POST" "/v1/programs/{id}/resume", "resumeProgram", "Resumes a program.", query: [], body: NoBody, ok: [Json(200, "Program")], errors: [403, 404, 422]),
    route!("POST" "/v1/programs/{id}/expire", "expireProgram", "Expires a program.", query: [], body: NoBody, ok: [Json(200, "Program")], errors: [403, 404, 422]),
    route!("POST" "/v1/partners", "createPartner", "Creates a partner.", query: [], body: Body::Json("NewPartner"), ok: [Json(201, "Partner")], errors: [400, 403, 409, 413, 422]),
    route!("GET" "/v1/partners", "listPartners", "Partners in id order, a page at a time (a partner key sees itself).",
        query: ["partner", "status", "cursor", "limit"], body: NoBody, ok: [Json(200, "PartnerList")], errors: [400, 404, 422]),
    route!("GET" "/v1/partners/{id}", "getPartner", "A partner.", query: [], body: NoBody, ok: [Json(200, "Partner")], errors: [404]),
    route!("PATCH" "/v1/partners/{id}", "editPartner", "Changes a partner's name, email and payout details.",
        query: [], body: Body::Json("PartnerPatch"), ok: [Json(200, "Partner")], errors: [400, 403, 404, 413, 422]),
    route!("POST" "/v1/partners/{id}/pause", "pausePartner", "Pauses a partner.", query: [], body: NoBody, ok: [Json(200, "Partner")], errors: [403, 404, 422]),
    route!("POST" "/v1/partners/{id}/resume", "resumePartner", "Resumes a partner.", query: [], body: NoBody, ok: [Json(200, "Partner")], errors: [403, 404, 422]),
    route!("POST" "/v1/partners/{id}/expire", "expirePartner", "Expires a partner.", query: [], body: NoBody, ok: [Json(200, "Partner")], errors: [403, 404, 422]),
    route!("POST" "/v1/links", "createLink", "Creates a link (a partner key: its own, where the program lets partners create links).",
        query: [], body: Body::Json("NewLink"), ok: [Json(201, "Link")], errors: [400, 403, 404, 409, 413, 422]),
    route!("GET" "/v1/links", "listLinks", "Links in code order, a page at a time (a partner key sees its own).",
        query: ["program", "partner", "status", "cursor", "limit"], body: NoBody, ok: [Json(200, "LinkList")], errors: [400, 404, 422]),
    route!("GET" "/v1/links/{code}", "getLink", "A link.", query: [], body: NoBody, ok: [Json(200, "Link")], errors: [404]),
    route!("PATCH" "/v1/links/{code}", "editLink", "Changes a link's destination, channel, UTM tags or expiry.",
        query: [], body: Body::Json("LinkPatch"), ok: [Json(200, "Link")], errors: [400, 403, 404, 413, 422]),
    route!("POST" "/v1/links/{code}/pause", "pauseLink", "Pauses a link.", query: [], body: NoBody, ok: [Json(200, "Link")], errors: [403, 404, 422]),
    route!("POST" "/v1/links/{code}/resume", "resumeLink", "Resumes a link.", query: [], body: NoBody, ok: [Json(200, "Link")], errors: [403, 404, 422]),
    route!("POST" "/v1/links/{code}/expire", "expireLink", "Expires a link.", query: [], body: NoBody, ok: [Json(200, "Link")], errors: [403, 404, 422]),
    route!("GET" "/v1/links/{code}/qr.svg", "linkQrSvg", "The link's QR code (its `/q/{code}` URL) as SVG.",
        query: [], body: NoBody, ok: [Image("image/svg+xml")], errors: [400, 404, 422]),
    route!("GET" "/v1/links/{code}/qr.png", "linkQrPng", "The link's QR code (its `/q/{code}` URL) as a PNG of `size` pixels a side.",
        query: ["size"], body: NoBody, ok: [Image("image/png")], errors: [400, 404, 422]),
    route!("POST" "/v1/coupons", "createCoupon", "Creates a coupon code.", query: [], body: Body::Json("NewCoupon"), ok: [Json(201, "Coupon")], errors: [400, 403, 404, 409, 413, 422]),
    route!("GET" "/v1/coupons", "listCoupons", "Coupons, a page at a time (a partner key sees its own).",
        query: ["program", "partner", "status", "cursor", "limit"], body: NoBody, ok: [Json(200, "CouponList")], errors: [400, 404, 422]),
    route!("GET" "/v1/coupons/{program}/{code}", "getCoupon", "A coupon.", query: [], body: NoBody, ok: [Json(200, "Coupon")], errors: [404]),
    route!("POST" "/v1/coupons/{program}/{code}/pause", "pauseCoupon", "Pauses a coupon: its code credits no one.",
        query: [], body: NoBody, ok: [Json(200, "Coupon")], errors: [403, 404, 422]),
    route!("POST" "/v1/coupons/{program}/{code}/resume", "resumeCoupon", "Resumes a coupon.", query: [], body: NoBody, ok: [Json(200, "Coupon")], errors: [403, 404, 422]),
    route!("POST" "/v1/coupons/{program}/{code}/expire", "expireCoupon", "Expires a coupon.", query: [], body: NoBody, ok: [Json(200, "Coupon")], errors: [403, 404, 422]),
    route!("GET" "/v1/audit", "listAudit", "The audit log of writes through the API and the CLI, oldest first, a page at a time.",
        query: ["object", "key", "since", "cursor", "limit"], body: NoBody, ok: [Json(200, "AuditPage")], errors: [400, 403, 422]),
];

mod schemas;

use schemas::*;

/// A query parameter's schema and meaning.
fn query_param(name: &str) -> (Schema, &'static str) {
    let slug = || -> Schema { ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[A-Za-z0-9_-]{1,64}$")).build().into() };
    let cursor = || -> (Schema, &'static str) { (string(), "The `next_cursor` of the previous page.") };
    let date = || -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(utoipa::openapi::schema::KnownFormat::Date)))
            .build()
            .into()
    };
    let one_of =
        |values: &[&str]| -> Schema { ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.to_vec())).build().into() };
    match name {
        "limit" => (
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(LIST_LIMIT_MAX as u32)).build().into(),
            "The page's size (100 when absent).",
        ),
        "cursor" => cursor(),
        "program" => (slug(), "Only this program's."),
        "partner" => (slug(), "Only this partner's (a partner key: its own; another partner is not found)."),
        "status" => (string(), "Only those in this status."),
        "period" => (string(), "A period label: `2026-11`, `2026-W47` or `2026-11-22`."),
        "conversion_id" => (string(), "Only this conversion's (`cv_` and 24 hex digits)."),
        "payout_id" | "run" => (slug(), "Only this payout's or run's."),
        "from" => (date(), "The first UTC day (default: 29 days before `to`)."),
        "to" => (date(), "The last UTC day (default: today); at most 366 days after `from`."),
        "format" => (one_of(&["json", "csv"]), "`csv` for CSV; wins over `Accept`."),
        "after_seq" => (ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).build().into(), "Entries after this seq."),
        "account" => (string(), "Only this account's transfers, e.g. `partner_payable:alice:USD`."),
        "commission_id" => (string(), "Only this commission's (`cm_` and 24 hex digits)."),
        "cause_prefix" => (string(), "Only transfers whose cause starts with this."),
        "endpoint" => (string(), "Only this endpoint's deliveries (`we_` and 24 hex digits)."),
        "size" => (
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(super::catalog::PNG_SIZE_MIN))
                .maximum(Some(super::catalog::PNG_SIZE_MAX))
                .build()
                .into(),
            "The PNG's side in pixels (256 when absent).",
        ),
        "object" => (
            string(),
            "Only entries about objects of this type (`partner`), or this object (`partner:alice`; a coupon: `coupon:<program>:<CODE>`).",
        ),
        "key" => (
            ObjectBuilder::new().schema_type(Type::String).pattern(Some("^(admin|cli|ak_[0-9a-f]{24})$")).build().into(),
            "Only writes by this actor: a stored key's id, `admin` (the configured key) or `cli`.",
        ),
        "since" => (
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(utoipa::openapi::schema::KnownFormat::DateTime)))
                .build()
                .into(),
            "Only entries made at or after this RFC 3339 time.",
        ),
        "sig" => (string(), "HMAC-SHA256 of the other parameters, sorted, as 64 hex digits."),
        "ts" => (string(), "Unix seconds; within `api.postback_max_age_s` of now."),
        _ => (string(), "As the field of `POST /v1/conversions`."),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "The request cannot be read: bad JSON, unknown fields or parameters, wrong types.",
        401 => "No valid key (or a postback's signature does not match).",
        403 => "A partner key on a route it may not call.",
        404 => "Not found (another partner's id is not found either).",
        409 => "Conflicts with what is stored (an existing id, a retry with another body, a state that does not allow it).",
        413 => "The body is larger than `api.body_bytes_max`.",
        422 => "Reads, but breaks a rule; `field` names it.",
        429 => "Too many calls; retry after `Retry-After` seconds.",
        500 => "The server failed; retry later.",
        503 => "The server is shutting down.",
        _ => "An error.",
    }
}

fn operation(route: &Route) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new().operation_id(Some(route.id)).summary(Some(route.summary));
    for name in route.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
        op = op
            .parameter(ParameterBuilder::new().name(name).parameter_in(ParameterIn::Path).required(Required::True).schema(Some(string())));
    }
    for name in route.query {
        let (schema, description) = query_param(name);
        let required = if route.path == "/v1/postback" && !matches!(*name, "click_id" | "visitor_id" | "coupon_code" | "customer_ref") {
            Required::True
        } else {
            Required::False
        };
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(required)
                .description(Some(description))
                .schema(Some(schema)),
        );
    }
    if route.path.starts_with("/v1/conversions") && route.method == "POST" && route.path != "/v1/conversions/import" {
        op = op.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1..=255 printable ASCII characters: a retry with the same key gets the first answer (required for refunds).",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[!-~]{1,255}$")).build())),
        );
    }
    let json_content = |schema: RefOr<Schema>| ContentBuilder::new().schema(Some(schema)).build();
    match route.body {
        Body::None => {}
        Body::Json(name) | Body::OptionalJson(name) => {
            let required = if matches!(route.body, Body::Json(_)) { Required::True } else { Required::False };
            op = op.request_body(Some(
                RequestBodyBuilder::new().content("application/json", json_content(r(name))).required(Some(required)).build(),
            ));
        }
        Body::Csv => {
            let csv = ContentBuilder::new().schema(Some(string())).build();
            op = op.request_body(Some(RequestBodyBuilder::new().content("text/csv", csv).required(Some(Required::True)).build()));
        }
    }
    for answer in route.ok {
        let (status, response) = match *answer {
            Answer::Json(status, name) => {
                (status, ResponseBuilder::new().description("OK").content("application/json", json_content(r(name))).build())
            }
            Answer::JsonOrCsv(name) => (
                200,
                ResponseBuilder::new()
                    .description("The report")
                    .content("application/json", json_content(r(name)))
                    .content("text/csv", ContentBuilder::new().schema(Some(string())).build())
                    .build(),
            ),
            Answer::Image(kind) => {
                let schema: Schema = if kind == "image/png" {
                    ObjectBuilder::new().schema_type(Type::String).content_media_type("image/png").build().into()
                } else {
                    string()
                };
                (
                    200,
                    ResponseBuilder::new()
                        .description("The image")
                        .content(kind, ContentBuilder::new().schema(Some(schema)).build())
                        .build(),
                )
            }
        };
        op = op.response(status.to_string(), response);
    }
    let keyed: &[u16] = if route.public { &[] } else { &KEYED };
    let mut errors: Vec<u16> = route.errors.iter().chain(keyed).copied().collect();
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let mut response = ResponseBuilder::new().description(reason(status)).content("application/json", json_content(r("Error")));
        if status == 401 {
            response = response.header("WWW-Authenticate", HeaderBuilder::new().schema(string()).description(Some("`Bearer`")).build());
        }
        if status == 429 {
            response = response.header("Retry-After", HeaderBuilder::new().schema(int()).description(Some("Seconds to wait.")).build());
        }
        op = op.response(status.to_string(), response.build());
    }
    if route.public {
        op = op.securities(Some(Vec::<SecurityRequirement>::new()));
    }
    op.build()
}

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        other => unreachable!("ROUTES has no {other} route"),
    }
}

/// Adds `T`'s schema and the schemas it refers to.
fn derived<T: ToSchema>(into: &mut Vec<(String, RefOr<Schema>)>) {
    into.push((T::name().into_owned(), T::schema()));
    T::schemas(into);
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        paths = paths.path(route.path, PathItem::new(method(route.method), operation(route)));
    }
    let mut schemas = Vec::new();
    derived::<super::conversions::ConversionBody>(&mut schemas);
    derived::<super::conversions::RefundBody>(&mut schemas);
    derived::<super::import::ImportSummary>(&mut schemas);
    derived::<super::keys::Create>(&mut schemas);
    derived::<super::payouts::NewRun>(&mut schemas);
    derived::<super::payouts::Settle>(&mut schemas);
    derived::<super::payouts::Confirm>(&mut schemas);
    derived::<super::reports::Day>(&mut schemas);
    derived::<super::reports::Clicks>(&mut schemas);
    derived::<super::reports::Revenue>(&mut schemas);
    derived::<super::reports::Commissions>(&mut schemas);
    derived::<super::reports::Epc>(&mut schemas);
    derived::<crate::conversions::view::StatusTotals>(&mut schemas);
    derived::<crate::webhooks::Registration>(&mut schemas);
    derived::<crate::catalog::NewProgram>(&mut schemas);
    derived::<crate::catalog::NewPartner>(&mut schemas);
    derived::<crate::catalog::NewLink>(&mut schemas);
    derived::<crate::catalog::NewCoupon>(&mut schemas);
    derived::<crate::catalog::ProgramPatch>(&mut schemas);
    derived::<crate::catalog::PartnerPatch>(&mut schemas);
    derived::<crate::catalog::LinkPatch>(&mut schemas);
    derived::<crate::model::Status>(&mut schemas);
    derived::<crate::model::Channel>(&mut schemas);
    derived::<crate::payouts::PayoutMethod>(&mut schemas);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .schemas_from_iter(answers())
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`cgk_...`) or the configured admin key, as `Authorization: Bearer <key>`."))
                    .build(),
            ),
        )
        .build();
    let info = InfoBuilder::new()
        .title("clickgate API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Errors are `{\"error\":{\"code\",\"field\",\"message\"}}`. Lists answer a page at a time: pass `next_cursor` as `cursor` \
             for the next one. A partner key reaches only its own objects; another partner's are not found (`404`).",
        ))
        .build();
    OpenApiBuilder::new()
        .info(info)
        .paths(paths.build())
        .components(Some(components))
        .security(Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]))
        .build()
}

#[cfg(test)]
mod tests;
