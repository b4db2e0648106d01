//! Adds `x-bench-reference: 1` to every request: what a Rust proxy-wasm
//! filter costs when it does almost nothing.
//!
//! Configured with a list of `<call> x<N>` (e.g. `"request_header_add x1,
//! clock x20"`), it makes exactly those host calls per request instead (see
//! `Call` for the calls). `scripts/bench calibrate` divides the difference
//! to the plain filter by N to get what one call costs; `scripts/bench
//! plugins` runs it with the rate limiter's host calls and no logic, the
//! floor under any filter that does the rate limiter's job through them.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { calls: None })
    });
}}

/// The host calls this filter can make.
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

/// The host calls made per request, in order: `(call, times)`.
struct Calls {
    list: Vec<(Call, usize)>,
    counter: u32,
}

impl Calls {
    /// Parses `"<call> x<N>, <call> x<N>, ..."`.
    fn parse(text: &str) -> Result<Vec<(Call, usize)>, String> {
        text.split(',')
            .map(|entry| {
                let mut words = entry.split_whitespace();
                let call = words.next().and_then(Call::parse);
                let times = words
                    .next()
                    .and_then(|w| w.strip_prefix('x'))
                    .and_then(|n| n.parse().ok());
                match (call, times, words.next()) {
                    (Some(call), Some(times), None) => Ok((call, times)),
                    _ => Err(format!("{entry:?} is not \"<call> x<N>\"")),
                }
            })
            .collect()
    }

    /// Makes the calls that belong to the response phase (`on_response`)
    /// or to the request phase.
    fn run(&self, on_response: bool) {
        for &(call, times) in &self.list {
            if (call == Call::ResponseHeaderAdd) != on_response {
                continue;
            }
            for _ in 0..times {
                once(call, self.counter);
            }
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
    /// None: the plain filter (the marker header only).
    calls: Option<Rc<Calls>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        if size == 0 {
            return true;
        }
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let list = match Calls::parse(text.trim().trim_matches('"')) {
            Ok(list) => list,
            Err(e) => {
                let message = format!("bench reference: configuration: {e}");
                let _ = hostcalls::log(LogLevel::Error, &message);
                return false;
            }
        };
        let counter = hostcalls::define_metric(MetricType::Counter, "bench_reference_calls")
            .unwrap_or_default();
        if list.iter().any(|(call, _)| *call == Call::SharedDataGet) {
            let _ = hostcalls::set_shared_data("bench-reference", Some(b"1"), None);
        }
        self.calls = Some(Rc::new(Calls { list, counter }));
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            calls: self.calls.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    calls: Option<Rc<Calls>>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        match &self.calls {
            Some(calls) => calls.run(false),
            None => self.set_http_request_header("x-bench-reference", Some("1")),
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(calls) = &self.calls {
            calls.run(true);
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_list_of_calls_in_order() {
        let list = Calls::parse("request_header_map x1, clock x1,response_header_add x2").unwrap();
        let expected = [
            (Call::RequestHeaderMap, 1),
            (Call::Clock, 1),
            (Call::ResponseHeaderAdd, 2),
        ];
        assert_eq!(list.len(), expected.len());
        for ((call, times), (want_call, want_times)) in list.iter().zip(expected) {
            assert!(*call == want_call);
            assert_eq!(*times, want_times);
        }
    }

    #[test]
    fn refuses_what_is_not_a_call_and_a_count() {
        for bad in [
            "",
            "clock",
            "clock 20",
            "clock x",
            "nap x2",
            "clock x1 x2",
            "clock x1,",
        ] {
            let err = Calls::parse(bad).err();
            assert!(err.is_some(), "{bad:?} parsed");
        }
    }
}
