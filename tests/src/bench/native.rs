//! The native-Envoy equivalent of the Meshguard chain, the reference an
//! operator would pick instead: jwt_authn with the same HS256 key (claims to
//! the same identity headers), local_ratelimit with a bucket that never
//! empties, and header_mutation setting one flag-like header. A second
//! reference also writes every other header the single-module build writes
//! for the benchmark's request, so that the two differ only in how the work
//! is done, not in how many headers Envoy adds.

use serde_json::Value;

/// The headers the single-module build writes for the benchmark's request
/// beyond the native set's three (`x-auth-sub`, `x-auth-tier` and
/// `x-feature-ml-v2`), with values of the same length: trace's
/// `traceparent`, flags' other seven headers and summary (the seed flags of
/// `envoy/local/flags.json`).
pub const SINGLE_MODULE_REQUEST_HEADERS: [(&str, &str); 9] = [
    (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
    ("x-feature-fraud-detection-v3", "on"),
    ("x-feature-nlp-batch-processing", "on"),
    ("x-feature-advanced-analytics", "off"),
    ("x-feature-blockchain-mev-detection", "off"),
    ("x-feature-rate-limiting-v2", "on"),
    ("x-feature-gdpr-strict-mode", "on"),
    ("x-feature-distributed-tracing", "off"),
    (
        "x-meshguard-flags",
        "FEATURE_ML_V2=off,FEATURE_FRAUD_DETECTION_V3=on,FEATURE_NLP_BATCH_PROCESSING=on,\
         FEATURE_ADVANCED_ANALYTICS=off,FEATURE_BLOCKCHAIN_MEV_DETECTION=off,\
         FEATURE_RATE_LIMITING_V2=on,FEATURE_GDPR_STRICT_MODE=on,FEATURE_DISTRIBUTED_TRACING=off",
    ),
];

/// The response headers the single-module build adds (the rate limiter's).
pub const SINGLE_MODULE_RESPONSE_HEADERS: [(&str, &str); 2] = [
    (
        "ratelimit-policy",
        "\"minute\";q=60000000;w=60, \"hour\";q=3600000000;w=3600",
    ),
    (
        "ratelimit",
        "\"minute\";r=59999999;t=1, \"hour\";r=3599999999;t=1",
    ),
];

/// `EnvoySpec::native_filters` items: the issue's native equivalent.
pub fn filters(jwks: &Value, issuer: &str) -> Vec<String> {
    filters_writing(jwks, issuer, &[], &[])
}

/// The native equivalent writing the single-module build's other headers too.
pub fn filters_writing_single_module_headers(jwks: &Value, issuer: &str) -> Vec<String> {
    filters_writing(
        jwks,
        issuer,
        &SINGLE_MODULE_REQUEST_HEADERS,
        &SINGLE_MODULE_RESPONSE_HEADERS,
    )
}

fn mutation(header: &str, value: &str) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "\n      - append:\n          header: {{ key: {}, value: {} }}\n          \
         append_action: OVERWRITE_IF_EXISTS_OR_ADD",
        quoted(header),
        quoted(value)
    )
}

fn filters_writing(
    jwks: &Value,
    issuer: &str,
    request: &[(&str, &str)],
    response: &[(&str, &str)],
) -> Vec<String> {
    let jwks = serde_json::to_string(&jwks.to_string()).unwrap_or_default();
    let issuer = serde_json::to_string(issuer).unwrap_or_default();
    vec![
        format!(
            r#"- name: envoy.filters.http.jwt_authn
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
    providers:
      meshguard:
        issuer: {issuer}
        local_jwks: {{ inline_string: {jwks} }}
        forward: true
        claim_to_headers:
        - {{ header_name: x-auth-sub, claim_name: sub }}
        - {{ header_name: x-auth-tier, claim_name: tier }}
    rules:
    - match: {{ prefix: "/" }}
      requires: {{ provider_name: meshguard }}"#
        ),
        r#"- name: envoy.filters.http.local_ratelimit
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
    stat_prefix: bench
    token_bucket: { max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s }
    filter_enabled:
      runtime_key: bench_enabled
      default_value: { numerator: 100, denominator: HUNDRED }
    filter_enforced:
      runtime_key: bench_enforced
      default_value: { numerator: 100, denominator: HUNDRED }"#
            .to_string(),
        header_mutation(request, response),
    ]
}

fn header_mutation(request: &[(&str, &str)], response: &[(&str, &str)]) -> String {
    let mut out = r#"- name: envoy.filters.http.header_mutation
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
    mutations:
      request_mutations:"#
        .to_string();
    out.push_str(&mutation("x-feature-ml-v2", "on"));
    for (name, value) in request {
        out.push_str(&mutation(name, value));
    }
    if !response.is_empty() {
        out.push_str("\n      response_mutations:");
        for (name, value) in response {
            out.push_str(&mutation(name, value));
        }
    }
    out
}
