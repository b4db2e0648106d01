//! Log output for a service: human-readable text on a terminal, or one JSON
//! object per line for a log pipeline (`--log-format json`). The level
//! filter comes from an environment variable in `tracing`'s `EnvFilter`
//! syntax (e.g. `MESHGUARD_LOG=debug`), `info` by default.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per event, with the request's span fields
    /// (`request_id`, `method`, `route`) in `span` / `spans`.
    Json,
}

/// Installs the global subscriber; a second call is ignored (tests).
pub fn init(format: LogFormat, filter_env: &str) {
    let filter = EnvFilter::try_from_env(filter_env).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}
