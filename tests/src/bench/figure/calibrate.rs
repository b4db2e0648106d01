//! What one proxy-wasm host call costs in Envoy: the reference filter
//! making it many times per request.

use super::instructions::{count_instructions, event_rounds};
use super::paired;
use super::plugins::measure;
use crate::bench::options::Options;
use crate::bench::report::{push_notes, summarize, table};
use crate::bench::variants::{reference_wasm, Fixture, Variant};
use crate::envoy::Plugin;

/// The host calls `scripts/bench calibrate` prices (the reference filter's
/// names for them) and what each does.
pub const CALIBRATED_CALLS: [(&str, &str); 10] = [
    (
        "request_header_present",
        "read a request header the request carries",
    ),
    (
        "request_header_absent",
        "read a request header the request lacks",
    ),
    ("request_header_map", "read the whole request header map"),
    ("request_header_add", "add a request header"),
    ("response_header_add", "add a response header"),
    ("clock", "read the clock"),
    ("shared_data_get", "read a shared-data value"),
    ("shared_data_set", "write a shared-data value"),
    ("property", "read the `source.address` property"),
    ("counter", "increment a counter"),
];

pub const CALIBRATION_REPEAT: usize = 20;

/// What one host call costs: the trivial filter making it
/// `CALIBRATION_REPEAT` times per request, against the plain trivial filter
/// of the same round. These are marginal costs (the repeats run with warm
/// caches); a plugin's first call of a kind in a request costs more.
pub fn calibrate_figure(cli: &Options) -> String {
    let reference = reference_wasm(cli);
    if !reference.exists() {
        return format!(
            "## Host-call costs\n\n{} is not built: run scripts/bench calibrate.\n\n",
            reference.display()
        );
    }
    let fixture = Fixture::new();
    let filter = |config: Option<String>| Plugin {
        name: "reference".into(),
        path: reference.clone(),
        config,
    };
    let variant = |name: String, plugins: Vec<Plugin>| Variant {
        name,
        plugins,
        native: vec![],
        state_port: None,
        headers: None,
    };
    let mut variants = vec![
        variant("bare Envoy".into(), vec![]),
        variant("trivial Rust filter (+1 header)".into(), vec![filter(None)]),
    ];
    for (call, _) in CALIBRATED_CALLS {
        // A configured filter makes only the calls listed: the plain
        // filter's one header write comes first, so the two differ by the
        // repeated call alone.
        let config = format!("request_header_add x1, {call} x{CALIBRATION_REPEAT}");
        variants.push(variant(config.clone(), vec![filter(Some(config))]));
    }
    let mut notes = vec![];
    let rounds: Vec<Vec<f64>> = if cli.instructions {
        event_rounds(
            &count_instructions(cli, &fixture, &variants, &mut notes),
            "Ir",
        )
    } else {
        let samples = measure(cli, &fixture, &variants, &mut notes);
        (0..variants.len())
            .map(|i| samples.get(&i).map(|s| s.cpu.clone()).unwrap_or_default())
            .collect()
    };
    let per_round = |i: usize| rounds.get(i).map_or(&[][..], |r| &r[..]);
    let repeat = CALIBRATION_REPEAT as f64;
    let (unit, decimals) = if cli.instructions {
        ("instructions", 0)
    } else {
        ("CPU µs", 2)
    };
    let filter_cost = paired(per_round(1), per_round(0), |a, b| a - b);
    let mut rows = vec![vec![
        "the trivial filter itself (module, one request-header write)".into(),
        summarize(per_round(1)).show(decimals.min(1)),
        format!(
            "{} (against bare Envoy)",
            filter_cost.show_signed(decimals.min(1))
        ),
    ]];
    for (i, (_, what)) in CALIBRATED_CALLS.iter().enumerate() {
        let index = i + 2;
        let one = paired(per_round(index), per_round(1), |a, b| (a - b) / repeat);
        rows.push(vec![
            (*what).to_string(),
            summarize(per_round(index)).show(decimals.min(1)),
            one.show_signed(decimals),
        ]);
    }
    let mut text = format!(
        "## Host-call costs ({unit})\n\nThe trivial filter making one host call {CALIBRATION_REPEAT} \
         times per request, against the plain trivial filter in the same round (the difference \
         divided by {CALIBRATION_REPEAT}; median and range over the rounds). Marginal costs: the \
         repeats run with warm caches, so a plugin's first call of a kind costs more.\n\n{}\n",
        table(
            &[
                "host call",
                &format!("{unit}/request with {CALIBRATION_REPEAT} calls"),
                &format!("{unit} per call"),
            ],
            &rows
        )
    );
    push_notes(&mut text, notes);
    text
}
