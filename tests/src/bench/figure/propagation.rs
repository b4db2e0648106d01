//! How fast revocations and flag changes reach requests through Envoy.

use crate::bench::options::Options;
use crate::bench::propagation;
use crate::bench::report::{percentile, table};

pub fn propagation_figure(cli: &Options) -> String {
    let result = propagation::measure(cli.samples);
    let row = |what: &str, values: &[f64], target: f64| {
        let (p50, p99) = (percentile(values, 50.0), percentile(values, 99.0));
        vec![
            what.to_string(),
            values.len().to_string(),
            format!("{:.0}", p50 * 1000.0),
            format!("{:.0}", p99 * 1000.0),
            format!(
                "{:.0}",
                values.iter().copied().fold(f64::NAN, f64::max) * 1000.0
            ),
            format!(
                "< {target:.0} ms: {}",
                if p99 * 1000.0 < target {
                    "met"
                } else {
                    "missed"
                }
            ),
        ]
    };
    let rows = vec![
        row(
            "token revoked → Envoy answers 401 (auth, feed poll 250 ms)",
            &result.revocation,
            1000.0,
        ),
        row(
            "flag PUT → upstream sees the new variant (flags, snapshot poll 1000 ms)",
            &result.flag,
            2000.0,
        ),
    ];
    format!(
        "## Propagation through meshguard-state\n\nFrom the admin API call's start to the first \
         request through Envoy (one worker) that shows the change, polled every 2 ms; starts spread \
         over the sync periods. {} changes not seen within 10 s.\n\n{}\n",
        result.misses,
        table(
            &["change", "samples", "p50 ms", "p99 ms", "max ms", "target"],
            &rows
        )
    )
}
