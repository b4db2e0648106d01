//! Envoy's memory bare and with the chain, at one and two workers, and the
//! modules' sizes.

use crate::bench::load;
use crate::bench::measure::rss_kib;
use crate::bench::report::table;
use crate::bench::variants::{start_pinned, Fixture, Variant, CHAIN_LABEL, LOAD_CORE};
use crate::paths::built_plugins;
use std::fmt::Write as _;
use std::time::Duration;

pub fn memory_figure() -> String {
    let fixture = Fixture::new();
    let chain = Variant {
        name: CHAIN_LABEL.into(),
        plugins: fixture.chain(),
        native: vec![],
        state_port: None,
        headers: None,
    };
    let bare = Variant {
        name: "bare Envoy".into(),
        plugins: vec![],
        native: vec![],
        state_port: None,
        headers: None,
    };
    let mut rows = vec![];
    for concurrency in [1, 2] {
        let mut bare_mib = f64::NAN;
        for variant in [&bare, &chain] {
            if !variant.plugins.iter().all(|p| p.path.exists()) {
                continue;
            }
            let envoy = start_pinned(variant, concurrency);
            let url = format!("http://127.0.0.1:{}/healthz", envoy.port);
            // Enough connections that every worker serves requests.
            load::wrk(LOAD_CORE, &url, 8, 1, &fixture.headers);
            std::thread::sleep(Duration::from_millis(300));
            let mib = rss_kib(envoy.pid()) as f64 / 1024.0;
            if variant.plugins.is_empty() {
                bare_mib = mib;
            }
            rows.push(vec![
                variant.name.clone(),
                concurrency.to_string(),
                format!("{mib:.1}"),
                format!("{:+.1}", mib - bare_mib),
            ]);
        }
    }
    let mut out = format!(
        "## Memory\n\nEnvoy RSS after 1 s of load.\n\n{}\n",
        table(
            &["configuration", "workers", "Envoy RSS MiB", "vs bare MiB"],
            &rows
        )
    );
    let sizes: Vec<Vec<String>> = built_plugins()
        .iter()
        .map(|p| {
            let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            vec![
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                format!("{:.0}", size as f64 / 1024.0),
            ]
        })
        .collect();
    let _ = writeln!(out, "{}", table(&[".wasm", "KiB"], &sizes));
    out
}
