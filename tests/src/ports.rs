//! Free local ports for processes started side by side.
//!
//! Ports come from a block below the kernel's ephemeral range (32768 and up
//! on Linux). A port taken from the ephemeral range by binding port 0 can be
//! grabbed again by the kernel, as the local port of some outgoing
//! connection, between the moment it is handed out and the moment the child
//! process binds it; below that range only explicit binds compete.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Above the fixed ports of `scripts/up` (6379, 7070, 8101–9142, 9901, 10000).
const FIRST: u32 = 12_000;
/// Below the ephemeral range.
const END: u32 = 32_000;

/// A port nobody listens on now and that this process has not handed out
/// before, so parallel tests in one process never get the same port.
///
/// Each process walks the block from its own starting point, so test
/// binaries run one after another rarely reuse a port still in TIME_WAIT.
pub fn free_port() -> u16 {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicU32::new(starting_offset()));
    let span = END - FIRST;
    for _ in 0..span {
        let offset = next.fetch_add(1, Ordering::Relaxed) % span;
        let Ok(port) = u16::try_from(FIRST + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {END}");
}

fn starting_offset() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id().wrapping_mul(7_919).wrapping_add(nanos) % (END - FIRST)
}
