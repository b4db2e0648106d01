//! Adds `x-bench-reference: 1` to every request: what a Rust proxy-wasm
//! filter costs when it does almost nothing.
//!
//! Configured with `"<call> x<N>"` (e.g. `"request_header_present x20"`),
//! it also makes that host call N times per request: `scripts/bench
//! calibrate` divides the difference to the plain filter by N to get what
//! one call costs (see `Call` for the calls).

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { repeat: Rc::new(Repeat::default()) })
    });
}}

/// The host calls this filter can repeat.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// Read a request header the request carries (`x-auth-sub`): Envoy
    /// allocates the value's buffer inside the VM.
    RequestHeaderPresent,
    /// Read a request header the request does not carry (nothing returned).
    RequestHeaderAbsent,
    /// Read the whole request header map (one buffer).
    RequestHeaderMap,
    /// Add a request header.
    RequestHeaderAdd,
    /// Add a response header.
    ResponseHeaderAdd,
    /// Read the clock.
    Clock,
    /// Read a shared-data value (returned in a buffer, with its CAS).
    SharedDataGet,
    /// Write a shared-data value.
    SharedDataSet,
    /// Read the `source.address` property.
    Property,
    /// Increment a counter.
    Counter,
}

impl Call {
    fn parse(name: &str) -> Option<Call> {
        Some(match name {
            "request_header_present" => Call::RequestHeaderPresent,
            "request_header_absent" => Call::RequestHeaderAbsent,
            "request_header_map" => Call::RequestHeaderMap,
            "request_header_add" => Call::RequestHeaderAdd,
            "response_header_add" => Call::ResponseHeaderAdd,
            "clock" => Call::Clock,
            "shared_data_get" => Call::SharedDataGet,
            "shared_data_set" => Call::SharedDataSet,
            "property" => Call::Property,
            "counter" => Call::Counter,
            _ => return None,
        })
    }
}

#[derive(Default)]
struct Repeat {
    call: Option<Call>,
    times: usize,
    counter: u32,
}

impl Repeat {
    /// Makes the call `times` times if it belongs to the response phase
    /// (`on_response`) or the request phase.
    fn run(&self, on_response: bool) {
        let Some(call) = self.call else { return };
        if (call == Call::ResponseHeaderAdd) != on_response {
            return;
        }
        for _ in 0..self.times {
            once(call, self.counter);
        }
    }
}

fn once(call: Call, counter: u32) {
    let request = MapType::HttpRequestHeaders;
    let _ = match call {
        Call::RequestHeaderPresent => hostcalls::get_map_value(request, "x-auth-sub").map(drop),
        Call::RequestHeaderAbsent => hostcalls::get_map_value(request, "x-not-sent").map(drop),
        Call::RequestHeaderMap => raw_header_map(),
        Call::RequestHeaderAdd => hostcalls::add_map_value(request, "x-bench-added", "1"),
        Call::ResponseHeaderAdd => {
            hostcalls::add_map_value(MapType::HttpResponseHeaders, "x-bench-added", "1")
        }
        Call::Clock => hostcalls::get_current_time().map(drop),
        Call::SharedDataGet => hostcalls::get_shared_data("bench-reference").map(drop),
        Call::SharedDataSet => hostcalls::set_shared_data("bench-reference", Some(b"1"), None),
        Call::Property => hostcalls::get_property(vec!["source", "address"]).map(drop),
        Call::Counter => hostcalls::increment_metric(counter, 1),
    };
}

extern "C" {
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// The request header map as the host returns it, not parsed (the SDK's
/// `get_map_bytes` would add a `String` and a `Vec` per header).
fn raw_header_map() -> Result<(), proxy_wasm::types::Status> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    // SAFETY: the host writes a buffer it allocated with this module's
    // allocator (or nothing) into `data`/`size`; it is freed right away.
    unsafe {
        proxy_get_header_map_pairs(MapType::HttpRequestHeaders as u32, &mut data, &mut size);
        if !data.is_null() && size > 0 {
            drop(Vec::from_raw_parts(data, size, size));
        }
    }
    Ok(())
}

struct Root {
    repeat: Rc<Repeat>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        if size == 0 {
            return true;
        }
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let mut words = text.trim().trim_matches('"').split_whitespace();
        let call = words.next().and_then(Call::parse);
        let times = words
            .next()
            .and_then(|w| w.strip_prefix('x'))
            .and_then(|n| n.parse().ok());
        let (Some(call), Some(times)) = (call, times) else {
            let message = format!("bench reference: configuration {text:?} is not \"<call> x<N>\"");
            let _ = hostcalls::log(LogLevel::Error, &message);
            return false;
        };
        let counter = hostcalls::define_metric(MetricType::Counter, "bench_reference_calls")
            .unwrap_or_default();
        if call == Call::SharedDataGet {
            let _ = hostcalls::set_shared_data("bench-reference", Some(b"1"), None);
        }
        self.repeat = Rc::new(Repeat {
            call: Some(call),
            times,
            counter,
        });
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(AddHeader {
            repeat: Rc::clone(&self.repeat),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AddHeader {
    repeat: Rc<Repeat>,
}

impl Context for AddHeader {}

impl HttpContext for AddHeader {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.set_http_request_header("x-bench-reference", Some("1"));
        self.repeat.run(false);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.repeat.run(true);
        Action::Continue
    }
}
