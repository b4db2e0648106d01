//! Envoy CPU µs per request and latency for every configuration, against
//! bare Envoy and the native equivalent, round by round.

use super::{each_run, paired};
use crate::bench::auth_variants;
use crate::bench::load::{self, HeyRun};
use crate::bench::measure::cpu_nanos;
use crate::bench::options::Options;
use crate::bench::report::{latency, push_notes, ratio_cell, summarize, summary_json, table};
use crate::bench::variants::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Samples {
    pub cpu: Vec<f64>,
    pub rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    pub failed: u64,
}

/// Every configuration measured `cli.rounds` times, each time on a fresh
/// Envoy, in alternating order.
pub fn measure(
    cli: &Options,
    fixture: &Fixture,
    variants: &[Variant],
    notes: &mut Vec<String>,
) -> BTreeMap<usize, Samples> {
    let mut samples: BTreeMap<usize, Samples> = BTreeMap::new();
    each_run(cli, variants, "plugins", |i, variant| {
        let s = samples.entry(i).or_default();
        // A fresh Envoy for every measurement: two Envoy processes of
        // the same build can differ by about 2 µs per request for the
        // whole of their lives, so a process is measured once.
        let envoy = start_pinned(variant, 1);
        let headers = variant.headers(fixture);
        let status = probe(&envoy, headers);
        if status != 200 {
            notes.push(format!("{}: answered {status}, not 200", variant.name));
        }
        let url = format!("http://127.0.0.1:{}/healthz", envoy.port);
        load::wrk(LOAD_CORE, &url, cli.connections, 1, headers);
        let before = cpu_nanos(envoy.pid());
        let run = load::wrk(LOAD_CORE, &url, cli.connections, cli.seconds, headers);
        let spent = cpu_nanos(envoy.pid()).saturating_sub(before);
        s.failed += run.errors;
        // One entry per round (NaN when nothing was served), so the
        // rounds of two configurations line up for paired comparisons.
        s.cpu.push(if run.requests > 0 {
            spent as f64 / 1000.0 / run.requests as f64
        } else {
            f64::NAN
        });
        if run.requests > 0 {
            s.rps.push(run.per_second);
        }
        if cli.cpu_only {
            return;
        }
        let latency = load::hey(&HeyRun {
            core: LOAD_CORE,
            url: &url,
            connections: cli.connections,
            seconds: cli.seconds,
            rate: cli.rate,
            headers,
            method: "GET",
            body: None,
        });
        s.failed += latency.unexpected(&[200]);
        s.p50.push(latency.p50_ms);
        s.p99.push(latency.p99_ms);
    });
    samples
}

pub fn plugins_figure(cli: &Options) -> (String, Value) {
    let fixture = Fixture::new();
    let mut notes = vec![];
    let (variants, _backend) = selected_variants(cli, &fixture, &mut notes);
    let samples = measure(cli, &fixture, &variants, &mut notes);
    let cpu = |i: usize| summarize(samples.get(&i).map_or(&[][..], |s| &s.cpu));
    let bare = cpu(0).median;
    let per_round = |i: usize| samples.get(&i).map_or(&[][..], |s| &s.cpu[..]);
    let native_added = variants
        .iter()
        .position(|v| !v.native.is_empty())
        .map_or(f64::NAN, |i| cpu(i).median - bare);
    let mut rows = vec![];
    let mut data = vec![];
    for (i, v) in variants.iter().enumerate() {
        let Some(s) = samples.get(&i) else { continue };
        let c = cpu(i);
        let added = c.median - bare;
        rows.push(vec![
            v.name.clone(),
            c.show(1),
            format!("{added:+.1}"),
            format!("{:.2}×", c.median / bare),
            if i == 0 {
                "–".into()
            } else {
                ratio_cell(added / native_added)
            },
            summarize(&s.rps).show(0),
            latency(&s.p50),
            latency(&s.p99),
            s.failed.to_string(),
        ]);
        data.push(json!({
            "name": v.name,
            "cpu_us": summary_json(c),
            "added_us": added,
            "cpu_us_per_round": s.cpu,
        }));
    }
    let mut text = format!(
        "## Envoy CPU per request\n\n`GET /healthz` (direct_response) with the same headers for every \
         configuration (an HS256 bearer token, `x-auth-sub`, `x-auth-tier`; the auth rows verified \
         every time carry the same claims signed with their algorithm); Envoy's CPU time over \
         requests served at full speed with {} connections (`wrk`); latency at {} requests/s (`hey`). \
         \"vs native\" is the added CPU over bare Envoy divided by the native equivalent's.\n\n{}\n",
        cli.connections,
        cli.rate,
        table(
            &[
                "configuration",
                "CPU µs/request",
                "added µs",
                "vs bare",
                "added vs native",
                "max requests/s",
                "p50 ms",
                "p99 ms",
                "non-200",
            ],
            &rows
        )
    );
    let index_of = |label: &str| {
        let i = variants.iter().position(|v| v.name == label)?;
        samples.contains_key(&i).then_some(i)
    };
    if let (Some(with), Some(without)) = (
        index_of(SINGLE_LABEL),
        index_of(SINGLE_WITHOUT_RATELIMIT_LABEL),
    ) {
        notes.push(format!(
            "rate limiting inside the single module (local, shared buckets): {} µs per request \
             (the single module with and without its ratelimit section, round by round)",
            paired(per_round(with), per_round(without), |a, b| a - b).show_signed(1)
        ));
    }
    let floors = [
        (RATELIMIT_FLOOR_LABEL, RATELIMIT_LABEL),
        (RATELIMIT_FLOOR_LABEL, HYBRID_LABEL),
        (RATELIMIT_PEER_FLOOR_LABEL, RATELIMIT_PEER_LABEL),
    ];
    for (floor_label, label) in floors {
        if let Some(floor) = index_of(floor_label) {
            if let Some(i) = index_of(label) {
                notes.push(format!(
                    "{label} over its host calls alone (the reference filter making them): {} µs \
                     per request, round by round; the host calls alone add {} µs",
                    paired(per_round(i), per_round(floor), |a, b| a - b).show_signed(1),
                    paired(per_round(floor), per_round(0), |a, b| a - b).show_signed(1)
                ));
            }
        }
    }
    if let (Some(native), Some(single), Some(chain)) = (
        index_of(NATIVE_LABEL),
        index_of(SINGLE_LABEL),
        index_of(CHAIN_LABEL),
    ) {
        // Other tenants of a shared machine only ever add time: each row's
        // fastest round is its least disturbed one.
        let fastest = |i: usize| cpu(i).min - cpu(0).min;
        notes.push(format!(
            "from each row's fastest round (the least disturbed): single module {:.2}×, \
             chain {:.2}× the native set's added CPU",
            fastest(single) / fastest(native),
            fastest(chain) / fastest(native)
        ));
    }
    for (i, v) in variants.iter().enumerate().skip(1) {
        if v.name.ends_with(auth_variants::VERIFIED_SUFFIX) && samples.contains_key(&i) {
            let ratio = paired(per_round(i), per_round(0), |a, b| a / b);
            notes.push(format!(
                "{}: {:.2}× bare Envoy's CPU per request round by round ({:.2}–{:.2})",
                v.name, ratio.median, ratio.min, ratio.max
            ));
        }
    }
    for (i, v) in variants.iter().enumerate() {
        let Some(before) = v.name.strip_suffix(" (baseline)").and_then(index_of) else {
            continue;
        };
        notes.push(format!(
            "{}: {} µs per request against its baseline build, round by round",
            variants[before].name,
            paired(per_round(before), per_round(i), |a, b| a - b).show_signed(1)
        ));
    }
    push_notes(&mut text, notes);
    (text, Value::Array(data))
}
