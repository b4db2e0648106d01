//! Unit tests, compiled only under #[cfg(test)].
use super::bucket::{pick, Input};
use super::*;
use meshguard_api::flags::FlagDefinition;
use serde_json::{json, Value};
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// flagd-testbed's fractional-v2 cases, embedded so wasm32 runs them too
/// (the native test below also reads the published file when present).
const VECTORS: &[(&str, &str, &str)] = &[
    ("fractional-flag", "jack", "hearts"),
    ("fractional-flag", "queen", "spades"),
    ("fractional-flag", "ten", "clubs"),
    ("fractional-flag", "nine", "diamonds"),
    ("fractional-flag", "3", "clubs"),
    ("fractional-flag-shorthand", "jon@company.com", "heads"),
    ("fractional-flag-shorthand", "jane@company.com", "tails"),
    (
        "fractional-single-entry-flag",
        "some-targeting-key",
        "single",
    ),
];

fn vector_flags() -> Value {
    json!({
        "fractional-flag": {
            "state": "ENABLED",
            "variants": {"clubs": "clubs", "diamonds": "diamonds", "hearts": "hearts", "spades": "spades", "wild": "wild"},
            "defaultVariant": "wild",
            "targeting": {"fractional": [
                {"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]},
                ["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]
            ]}
        },
        "fractional-flag-shorthand": {
            "state": "ENABLED",
            "variants": {"heads": "heads", "tails": "tails", "draw": "draw"},
            "defaultVariant": "draw",
            "targeting": {"fractional": [["heads"], ["tails", 1]]}
        },
        "fractional-single-entry-flag": {
            "state": "ENABLED",
            "variants": {"single": "single", "fallback": "fallback"},
            "defaultVariant": "fallback",
            "targeting": {"fractional": [["single", 1]]}
        }
    })
}

/// The vectors' context carries the user as `user.name`.
fn vector_options() -> ImportOptions {
    let mut options = ImportOptions::default();
    options.attributes.insert("user.name".into(), "sub".into());
    options
}

fn user(key: &str) -> Subject<'_> {
    Subject {
        key: Some(key),
        ..Subject::default()
    }
}

fn compiled(definitions: &[FlagDefinition]) -> FlagSet {
    let (set, rejected) = FlagSet::compile(definitions);
    assert!(rejected.is_empty(), "{rejected:?}");
    set
}

fn flag(set: &FlagSet, key: &str) -> Flag {
    set.flags()
        .iter()
        .find(|f| f.key() == key)
        .cloned()
        .unwrap_or_else(|| panic!("no flag {key}"))
}

fn check_vectors(flags: &Value, cases: &[(String, String, String)]) {
    let set = compiled(&import_flagd(&json!({ "flags": flags }), &vector_options()).unwrap());
    for (key, targeting_key, expected) in cases {
        let flag = flag(&set, key);
        let got = flag.evaluate(&user(targeting_key));
        assert_eq!(got.variant, expected, "{key} for {targeting_key}");
    }
}

#[test]
fn reproduces_the_embedded_flagd_fractional_vectors() {
    let cases: Vec<_> = VECTORS
        .iter()
        .map(|(f, k, e)| (f.to_string(), k.to_string(), e.to_string()))
        .collect();
    check_vectors(&vector_flags(), &cases);
    // And the raw bucketing, without the importer.
    let suits = [
        ("clubs", 25),
        ("diamonds", 25),
        ("hearts", 25),
        ("spades", 25),
    ];
    let jack = Input {
        salt: "fractional-flag",
        key: "jack",
    };
    let got = pick(jack, &suits);
    assert_eq!(got, Some(&"hearts"));
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn reproduces_the_published_flagd_fractional_vectors_file() {
    // Vendored with its source and version (testdata/flagd/SOURCE.md);
    // MESHGUARD_FLAGD_VECTORS points at another copy. Absent, the test fails.
    let path = std::env::var_os("MESHGUARD_FLAGD_VECTORS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/flagd/fractional-v2.json")
        });
    let raw = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the flagd vectors)", path.display()));
    let file: Value = serde_json::from_str(&raw).unwrap();
    let cases: Vec<_> = file["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("flag"), s("targetingKey"), s("expected"))
        })
        .collect();
    assert!(cases.len() >= VECTORS.len());
    check_vectors(&file["flags"], &cases);
}

fn definition(v: Value) -> FlagDefinition {
    serde_json::from_value(v).unwrap()
}

fn ab_test() -> FlagDefinition {
    definition(json!({
        "key": "checkout",
        "variants": {"a": 1, "b": 2, "c": 3, "off": 0},
        "default_variant": "off",
        "percentage": 50,
        "weights": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 30}, {"variant": "c", "weight": 20}]
    }))
}

#[test]
fn distribution_over_100000_users_is_within_half_a_point_of_each_weight() {
    let mut split = ab_test();
    split.percentage = None;
    let flag = Flag::compile(&split).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    let n = 100_000;
    for i in 0..n {
        let key = format!("user-{i}");
        *counts
            .entry(flag.evaluate(&user(&key)).variant.to_string())
            .or_insert(0u32) += 1;
    }
    for (variant, weight) in [("a", 50.0), ("b", 30.0), ("c", 20.0)] {
        let share = f64::from(counts[variant]) * 100.0 / f64::from(n);
        assert!(
            (share - weight).abs() <= 0.5,
            "{variant}: {share}% for {weight}%"
        );
    }
}

#[test]
fn rollout_is_within_half_a_point_and_independent_of_the_variant() {
    let flag = Flag::compile(&ab_test()).unwrap();
    let mut everyone = ab_test();
    everyone.percentage = None;
    let variant_of = Flag::compile(&everyone).unwrap();
    // Shares of `a` among users inside and outside the rollout.
    let (mut inside, mut inside_a, mut outside_a) = (0u32, 0u32, 0u32);
    let n = 100_000u32;
    for i in 0..n {
        let key = format!("user-{i}");
        let would_be_a = variant_of.evaluate(&user(&key)).variant == "a";
        if flag.evaluate(&user(&key)).reason == Reason::Split {
            inside += 1;
            inside_a += u32::from(would_be_a);
        } else {
            outside_a += u32::from(would_be_a);
        }
    }
    let rollout = f64::from(inside) * 100.0 / f64::from(n);
    assert!((rollout - 50.0).abs() <= 0.5, "rollout {rollout}%");
    let share_in = f64::from(inside_a) / f64::from(inside);
    let share_out = f64::from(outside_a) / f64::from(n - inside);
    assert!(
        (share_in - share_out).abs() < 0.01,
        "variant a: {share_in} inside vs {share_out} outside the rollout"
    );
}

#[test]
fn the_same_user_always_gets_the_same_answer() {
    let a = Flag::compile(&ab_test()).unwrap();
    let b = Flag::compile(&ab_test()).unwrap();
    for i in 0..1000 {
        let key = format!("u{i}");
        assert_eq!(a.evaluate(&user(&key)), b.evaluate(&user(&key)));
    }
}

#[test]
fn salt_reshuffles_and_defaults_to_the_key() {
    let base = ab_test();
    let mut salted = ab_test();
    salted.salt = Some("checkout".into());
    let (f1, f2) = (
        Flag::compile(&base).unwrap(),
        Flag::compile(&salted).unwrap(),
    );
    let mut other = ab_test();
    other.salt = Some("round-2".into());
    let f3 = Flag::compile(&other).unwrap();
    let mut differ = 0;
    for i in 0..1000 {
        let key = format!("u{i}");
        assert_eq!(f1.evaluate(&user(&key)), f2.evaluate(&user(&key)));
        differ += usize::from(f1.evaluate(&user(&key)) != f3.evaluate(&user(&key)));
    }
    assert!(differ > 300, "{differ}");
}

fn targeted() -> Flag {
    Flag::compile(&definition(json!({
        "key": "fraud-v3",
        "variants": {"on": true, "off": false, "beta": "beta"},
        "default_variant": "off",
        "percentage": 0,
        "rules": [
            {"attribute": "sub", "op": "in", "values": ["alice"], "variant": "beta"},
            {"attribute": "group", "op": "in", "values": ["testers"], "variant": "beta"},
            {"attribute": "header:x-client", "op": "starts_with", "values": ["mobile/"], "variant": "beta"},
            {"attribute": "path", "op": "starts_with", "values": ["/api/fraud/"], "variant": "on"},
            {"attribute": "tier", "op": "in", "values": ["premium", "enterprise"], "variant": "on"},
            {"attribute": "tier", "op": "not_in", "values": ["free"], "weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 1}]}
        ]
    })))
    .unwrap()
}

#[test]
fn rules_target_users_groups_headers_paths_and_tiers_in_order() {
    let flag = targeted();
    let groups = ["staff", "testers"];
    let headers = [("x-client", "mobile/3.1")];
    let cases: Vec<(Subject, &str, Reason)> = vec![
        (user("alice"), "beta", Reason::Rule(0)),
        (
            Subject {
                key: Some("bob"),
                groups: &groups,
                ..Subject::default()
            },
            "beta",
            Reason::Rule(1),
        ),
        (
            Subject {
                key: Some("bob"),
                headers: &headers,
                ..Subject::default()
            },
            "beta",
            Reason::Rule(2),
        ),
        (
            Subject {
                key: Some("bob"),
                tier: Some("free"),
                path: "/api/fraud/score",
                ..Subject::default()
            },
            "on",
            Reason::Rule(3),
        ),
        (
            Subject {
                key: Some("bob"),
                tier: Some("enterprise"),
                ..Subject::default()
            },
            "on",
            Reason::Rule(4),
        ),
        (
            Subject {
                key: Some("bob"),
                tier: Some("free"),
                ..Subject::default()
            },
            "off",
            Reason::OutOfRollout,
        ),
        (
            Subject {
                tier: Some("premium"),
                ..Subject::default()
            },
            "on",
            Reason::Rule(4),
        ),
        // Anonymous and matched by a weighted rule: no key to bucket on.
        (Subject::default(), "off", Reason::Anonymous),
    ];
    for (subject, variant, reason) in cases {
        let got = flag.evaluate(&subject);
        assert_eq!((got.variant, got.reason), (variant, reason), "{subject:?}");
    }
    assert_eq!(flag.headers_read().collect::<Vec<_>>(), ["x-client"]);
}

#[test]
fn anonymous_subjects_get_only_what_every_key_would_get() {
    let result = |def: &FlagDefinition, subject: &Subject| {
        let flag = Flag::compile(def).unwrap();
        let got = flag.evaluate(subject);
        (got.variant.to_string(), got.reason)
    };
    let anonymous = Subject::default();
    let mut full = ab_test();
    full.percentage = Some(100.0);
    full.weights.truncate(1);
    assert_eq!(result(&full, &anonymous), ("a".into(), Reason::Split));
    assert_eq!(
        result(&ab_test(), &anonymous),
        ("off".into(), Reason::Anonymous)
    );
    let mut disabled = ab_test();
    disabled.enabled = false;
    assert_eq!(
        result(&disabled, &user("x")),
        ("off".into(), Reason::Disabled)
    );
}

#[test]
fn unknown_attributes_and_repeated_keys_are_rejected_by_name() {
    let mut bad = ab_test();
    bad.key = "other".into();
    bad.rules = vec![serde_json::from_value(
        json!({"attribute": "country", "op": "in", "values": ["fr"], "variant": "a"}),
    )
    .unwrap()];
    let (set, rejected) = FlagSet::compile(&[ab_test(), bad, ab_test()]);
    assert_eq!(set.len(), 1);
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].error.field, "rules[0].attribute");
    assert!(
        rejected[1].to_string().contains("defined twice"),
        "{}",
        rejected[1]
    );
}

fn import_one(flag: Value) -> Result<FlagDefinition, ImportError> {
    import_flagd(&json!({"flags": {"f": flag}}), &ImportOptions::default()).map(|mut v| v.remove(0))
}

#[test]
fn imports_targeting_chains_and_bucket_key_forms() {
    let f = import_one(json!({
        "state": "DISABLED",
        "variants": {"on": true, "off": false},
        "defaultVariant": "off",
        "targeting": {"if": [
            {"in": [{"var": "tier"}, ["premium", "enterprise"]]}, "on",
            {"in": ["testers", {"var": "groups"}]}, {"fractional": [{"var": "targetingKey"}, ["on", 1], ["off", 1]]},
            {"==": ["alice", {"var": "targetingKey"}]}, "on",
            {"!": {"in": [{"var": "path"}, ["/admin"]]}}, null,
            {"$ref": "beta"}
        ]},
        "metadata": {"owner": "team"}
    }));
    let err = f.unwrap_err();
    assert!(err.message.contains("unknown evaluator \"beta\""), "{err}");

    let doc = json!({
        "$evaluators": {"beta": {"fractional": [{"var": "targetingKey"}, ["on", 3], ["off"]]}},
        "flags": {"f": {
            "state": "DISABLED",
            "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": {"if": [
                {"in": [{"var": "tier"}, ["premium", "enterprise"]]}, "on",
                {"in": ["testers", {"var": "groups"}]}, {"fractional": [{"var": "targetingKey"}, ["on", 1], ["off", 1]]},
                {"==": ["alice", {"var": "targetingKey"}]}, "on",
                {"!": {"in": [{"var": "path"}, ["/admin"]]}}, null,
                {"$ref": "beta"}
            ]}
        }}
    });
    let f = import_flagd(&doc, &ImportOptions::default())
        .unwrap()
        .remove(0);
    assert!(!f.enabled);
    assert_eq!(f.salt.as_deref(), Some(""));
    assert_eq!(f.rules.len(), 4);
    let rules = serde_json::to_value(&f.rules).unwrap();
    assert_eq!(
        rules,
        json!([
            {"attribute": "tier", "op": "in", "values": ["premium", "enterprise"], "variant": "on"},
            {"attribute": "group", "op": "in", "values": ["testers"], "weights": [{"variant": "on", "weight": 1}, {"variant": "off", "weight": 1}]},
            {"attribute": "sub", "op": "in", "values": ["alice"], "variant": "on"},
            {"attribute": "path", "op": "not_in", "values": ["/admin"], "variant": "off"}
        ])
    );
    assert_eq!(
        serde_json::to_value(&f.weights).unwrap(),
        json!([{"variant": "on", "weight": 3}, {"variant": "off", "weight": 1}])
    );

    // cat of literals before the targeting key becomes the salt.
    let f = import_one(json!({
        "state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
        "targeting": {"fractional": [{"cat": ["v2-", {"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, ["a", 1], ["b", 1]]}
    }))
    .unwrap();
    assert_eq!(f.salt.as_deref(), Some("v2-f"));
    // The flag key alone is the default: no salt stored.
    let f = import_one(json!({
        "state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
        "targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, ["a", 1], ["b", 1]]}
    }))
    .unwrap();
    assert_eq!(f.salt, None);
    // A plain variant as the whole targeting.
    let f = import_one(json!({
        "state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a", "targeting": {"if": [{"==": [{"var": "tier"}, "x"]}, "a", "b"]}
    }))
    .unwrap();
    assert_eq!(f.weights.len(), 1);
}

#[test]
fn unsupported_flagd_constructs_are_refused_naming_them() {
    let base = |targeting: Value| json!({"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a", "targeting": targeting});
    let cases = [
        (
            base(json!({"sem_ver": [{"var": "version"}, ">=", "1.0.0"]})),
            "flags.f.targeting",
            "\"sem_ver\"",
        ),
        (
            base(json!({"if": [{"and": [{"==": [{"var": "tier"}, "x"]}]}, "a"]})),
            "flags.f.targeting.if[0]",
            "\"and\"",
        ),
        (
            base(json!({"if": [{"==": [{"var": "email"}, "x"]}, "a"]})),
            "flags.f.targeting.if[0].==",
            "\"email\"",
        ),
        (
            base(json!({"if": [{"in": ["@corp.com", {"var": "targetingKey"}]}, "a"]})),
            "flags.f.targeting.if[0].in",
            "substring",
        ),
        (
            base(json!({"fractional": [{"var": "tier"}, ["a", 1]]})),
            "flags.f.targeting.fractional[0]",
            "\"tier\"",
        ),
        (
            base(json!({"fractional": [{"cat": [{"var": "targetingKey"}, "x"]}, ["a", 1]]})),
            "flags.f.targeting.fractional[0]",
            "end with the targeting key",
        ),
        (
            base(json!({"fractional": [["a", 1.5]]})),
            "flags.f.targeting.fractional[0]",
            "weight",
        ),
        (
            base(json!({"if": [{"==": [{"var": "tier"}, "x"]}, {"if": [true, "a"]}]})),
            "flags.f.targeting.if[1]",
            "unsupported result",
        ),
        (
            base(json!({"fractional": [["nope", 1]]})),
            "flags.f",
            "weights[0].variant",
        ),
        (
            json!({"state": "ON", "variants": {}, "defaultVariant": "a"}),
            "flags.f.state",
            "ENABLED",
        ),
        (
            json!({"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": null}),
            "flags.f.defaultVariant",
            "null default",
        ),
        (
            json!({"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "extra": 1}),
            "flags.f.extra",
            "unsupported field",
        ),
    ];
    for (flag, at, needle) in cases {
        let err = import_one(flag.clone()).expect_err(&flag.to_string());
        assert_eq!(err.at, at, "{err} for {flag}");
        assert!(err.message.contains(needle), "{err} lacks {needle}");
    }
    let err = import_flagd(
        &json!({"flags": {}, "version": 2}),
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.at, "version");
}

#[test]
fn a_split_with_one_weighted_variant_gives_it_to_every_key_as_the_hash_would() {
    let definition: FlagDefinition = serde_json::from_value(json!({
        "key": "one-weighted",
        "variants": {"on": true, "off": false, "spare": "x"},
        "default_variant": "off",
        "percentage": 100,
        "weights": [{"variant": "spare", "weight": 0}, {"variant": "on", "weight": 3}]
    }))
    .unwrap();
    let flag = Flag::compile(&definition).unwrap();
    let weights = [("spare".to_string(), 0u32), ("on".to_string(), 3)];
    for i in 0..200 {
        let key = format!("user-{i}");
        assert_eq!(flag.evaluate(&user(&key)).variant, "on");
        let hashed = pick(
            Input {
                salt: "one-weighted",
                key: &key,
            },
            &weights,
        );
        assert_eq!(hashed.map(String::as_str), Some("on"));
    }
}

#[test]
fn consent_rules_target_the_purposes_a_user_agreed_to() {
    let flag = Flag::compile(&definition(json!({
        "key": "PERSONALISED", "variants": {"on": true, "off": false},
        "default_variant": "off", "percentage": 100,
        "weights": [{"variant": "on", "weight": 1}],
        "rules": [{"attribute": "consent", "op": "not_in", "values": ["personalization"], "variant": "off"}]
    })))
    .unwrap();
    let agreed = ["analytics", "personalization"];
    let withdrawn = ["analytics"];
    let with = |consents| Subject {
        key: Some("alice"),
        consents,
        ..Subject::default()
    };
    assert_eq!(flag.evaluate(&with(&agreed)).variant, "on");
    assert_eq!(flag.evaluate(&with(&withdrawn)).variant, "off");
    assert_eq!(flag.evaluate(&with(&[])).variant, "off");
}
