//! Where the shared buckets live: a map of named entries, each with a
//! compare-and-swap version, as proxy-wasm shared data is. Two methods, so
//! the bucket logic above it can run against Envoy ([`HostStore`]) or in a
//! unit test ([`MemoryStore`]); [`update`] is the one retry loop.

use proxy_wasm::hostcalls;

/// How often an update re-reads an entry another writer changed under it.
pub const ATTEMPTS: usize = 8;

pub trait Store {
    /// The entry's value and its CAS version (both `None` when absent).
    fn get(&self, name: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes the entry unless its version is no longer `cas`. As in
    /// proxy-wasm, a `None` version, or an entry that does not exist yet,
    /// is written unconditionally. `false`: not written.
    fn set(&self, name: &str, value: &[u8], cas: Option<u32>) -> bool;
}

/// What an update does with the value it read.
pub enum Step<T> {
    /// Nothing to write: the update is over.
    Done(T),
    /// Write this value; the update is over once the write lands.
    Write(Vec<u8>, T),
}

/// Reads the entry, lets `f` decide from its value and version, and writes
/// the result with compare-and-swap, again while another writer got there
/// first (as governor's `StateStore::measure_and_replace`). `Err` carries
/// `f`'s last answer when every attempt lost its race.
pub fn update<T>(
    store: &impl Store,
    name: &str,
    mut f: impl FnMut(Option<&[u8]>, Option<u32>) -> Step<T>,
) -> Result<T, Option<T>> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let (raw, cas) = store.get(name);
        match f(raw.as_deref(), cas) {
            Step::Done(out) => return Ok(out),
            Step::Write(value, out) => {
                if store.set(name, &value, cas) {
                    return Ok(out);
                }
                last = Some(out);
            }
        }
    }
    Err(last)
}

/// Envoy's shared data: one map per VM id, across the workers of an Envoy.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostStore;

impl Store for HostStore {
    fn get(&self, name: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(name).unwrap_or((None, None))
    }

    fn set(&self, name: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(name, Some(value), cas).is_ok()
    }
}

/// Shared data in memory, with the host's CAS rules; `interfere` lets a test
/// play another worker that writes between a read and the write after it.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryStore {
    entries: std::cell::RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>,
    version: std::cell::Cell<u32>,
    /// Called with the entry's name before each write, to change the store.
    #[allow(clippy::type_complexity)]
    pub interfere: std::cell::RefCell<Option<Box<dyn FnMut(&MemoryStore, &str)>>>,
}

#[cfg(test)]
impl MemoryStore {
    /// Writes as another worker would, outside any update.
    pub fn put(&self, name: &str, value: &[u8]) {
        let version = self.version.get() + 1;
        self.version.set(version);
        self.entries
            .borrow_mut()
            .insert(name.to_string(), (value.to_vec(), version));
    }

    pub fn value(&self, name: &str) -> Option<Vec<u8>> {
        self.entries.borrow().get(name).map(|(v, _)| v.clone())
    }
}

#[cfg(test)]
impl Store for MemoryStore {
    fn get(&self, name: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.entries.borrow().get(name) {
            Some((value, version)) => (Some(value.clone()), Some(*version)),
            None => (None, None),
        }
    }

    fn set(&self, name: &str, value: &[u8], cas: Option<u32>) -> bool {
        let hook = self.interfere.borrow_mut().take();
        if let Some(mut hook) = hook {
            hook(self, name);
            *self.interfere.borrow_mut() = Some(hook);
        }
        let current = self.entries.borrow().get(name).map(|(_, v)| *v);
        if let (Some(current), Some(cas)) = (current, cas) {
            if current != cas {
                return false;
            }
        }
        self.put(name, value);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_rules_for_versions() {
        let store = MemoryStore::default();
        assert_eq!(store.get("a"), (None, None));
        assert!(
            store.set("a", b"1", Some(7)),
            "a new entry ignores the version"
        );
        let (value, version) = store.get("a");
        assert_eq!(value.as_deref(), Some(&b"1"[..]));
        assert!(!store.set("a", b"2", version.map(|v| v + 1)));
        assert!(store.set("a", b"2", version));
        assert!(!store.set("a", b"3", version), "the version moved on");
        assert!(store.set("a", b"3", None));
    }

    #[test]
    fn update_retries_a_lost_race_and_gives_up_after_the_attempts() {
        let store = MemoryStore::default();
        store.put("n", b"0");
        let add_one = |raw: Option<&[u8]>, _| {
            let n: u32 = std::str::from_utf8(raw.unwrap_or(b"0"))
                .unwrap()
                .parse()
                .unwrap();
            Step::Write((n + 1).to_string().into_bytes(), n + 1)
        };
        // Another worker adds 10 before our first write: we re-read and add 1 to that.
        let mut once = Some(());
        *store.interfere.borrow_mut() = Some(Box::new(move |s: &MemoryStore, name: &str| {
            if once.take().is_some() {
                s.put(name, b"10");
            }
        }));
        assert_eq!(update(&store, "n", add_one), Ok(11));
        assert_eq!(store.value("n").as_deref(), Some(&b"11"[..]));
        // A writer that always gets there first: the update gives up.
        *store.interfere.borrow_mut() =
            Some(Box::new(|s: &MemoryStore, name: &str| s.put(name, b"100")));
        assert_eq!(update(&store, "n", add_one), Err(Some(101)));
        assert_eq!(update(&store, "n", |_, _| Step::Done(5)), Ok(5));
    }
}
