//! Rate-limit accuracy per mode: admitted against allowed.

use crate::bench::accuracy;
use crate::bench::options::Options;
use crate::bench::report::table;
use crate::bench::variants::LOAD_CORE;

pub fn accuracy_figure(cli: &Options) -> String {
    let rows: Vec<Vec<String>> = accuracy::measure(cli.accuracy_seconds, LOAD_CORE)
        .into_iter()
        .map(|a| {
            vec![
                a.mode.to_string(),
                a.envoys.to_string(),
                a.requests.to_string(),
                a.admitted.to_string(),
                format!("{:.0}", a.allowed),
                format!("{:+.1}%", (a.admitted as f64 / a.allowed - 1.0) * 100.0),
                a.fallbacks.to_string(),
            ]
        })
        .collect();
    format!(
        "## Rate-limit accuracy per mode\n\nOne key limited to {}/min with burst {}; 64 connections \
         (`wrk`) for {} s, split over the Envoys; allowed = burst + rate × elapsed. Envoys run \
         one worker each, unpinned.\n\n{}\n",
        accuracy::PER_MINUTE,
        accuracy::BURST,
        cli.accuracy_seconds,
        table(
            &[
                "mode",
                "Envoys",
                "requests",
                "admitted",
                "allowed",
                "error",
                "fallbacks"
            ],
            &rows
        )
    )
}
