//! The native-Envoy equivalent of the Meshguard chain, the reference an
//! operator would pick instead: jwt_authn with the same HS256 key (claims to
//! the same identity headers), local_ratelimit with a bucket that never
//! empties, and header_mutation setting one flag-like header.

use serde_json::Value;

/// `EnvoySpec::native_filters` items.
pub fn filters(jwks: &Value, issuer: &str) -> Vec<String> {
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
        r#"- name: envoy.filters.http.header_mutation
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
    mutations:
      request_mutations:
      - append:
          header: { key: x-feature-ml-v2, value: "on" }
          append_action: OVERWRITE_IF_EXISTS_OR_ADD"#
            .to_string(),
    ]
}
