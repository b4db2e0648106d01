//! What every request of one worker reads: the configuration, the sampler,
//! the stats and the span buffer, fixed at configure time. The root context
//! builds it and exports its spans; the filter reads it and never names the
//! root.

use crate::config::TraceConfig;
use crate::ids::RandomPool;
use crate::spans::SpanBuffer;
use meshguard_plugin_kit::stats::Counter;
use meshguard_policy::sampling::{Sampler, SamplingMode};
use std::cell::RefCell;

pub struct Stats {
    pub traces_started: Counter,
    pub traces_continued: Counter,
    pub contexts_rejected: Counter,
    pub tracestate_dropped: Counter,
    pub spans_exported: Counter,
    pub spans_dropped: Counter,
}

impl Stats {
    pub fn define() -> Stats {
        let counter = |name| Counter::define("trace", name);
        Stats {
            traces_started: counter("traces_started"),
            traces_continued: counter("traces_continued"),
            contexts_rejected: counter("contexts_rejected"),
            tracestate_dropped: counter("tracestate_dropped"),
            spans_exported: counter("spans_exported"),
            spans_dropped: counter("spans_dropped"),
        }
    }
}

/// What every request of this worker reads: fixed at configure time.
pub struct Runtime {
    pub config: TraceConfig,
    pub sampler: Sampler,
    pub mode: SamplingMode,
    pub stats: Stats,
    pub spans: RefCell<SpanBuffer>,
    pub random: RefCell<RandomPool>,
}

impl Runtime {
    pub fn new(config: TraceConfig) -> Runtime {
        let capacity = config.export.as_ref().map_or(0, |e| e.max_buffered);
        Runtime {
            sampler: Sampler::new(config.sampling_ratio),
            mode: config.sampling_mode.into(),
            stats: Stats::define(),
            spans: RefCell::new(SpanBuffer::new(capacity)),
            random: RefCell::new(RandomPool::default()),
            config,
        }
    }
}
