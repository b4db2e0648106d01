//! GCRA exists twice: `meshguard_policy::gcra` (the plugin's local buckets)
//! and `services/state/src/store/lua/ratelimit.lua` (meshguard-state's
//! buckets in Redis). The same random request sequences run through both,
//! on a real Redis, and every decision must agree: admitted or not, and per
//! bucket allowed, remaining, reset and retry. The script decides at Redis'
//! clock and returns that instant, so the Rust side decides at the same one.

use meshguard_api::keys::{keyed, limit_index, subject_key};
use meshguard_harness::Redis;
use meshguard_policy::gcra::{decide_all, grantable, Quota};
use redis::Value;

const SCRIPT: &str = include_str!("../../services/state/src/store/lua/ratelimit.lua");

/// A small deterministic generator (xorshift64*): the same sequences on
/// every run, and the seed in the failure message.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).parse().unwrap(),
        other => panic!("not a number: {other:?}"),
    }
}

struct Lua {
    admitted: bool,
    granted: u64,
    now: u64,
    /// Per bucket: allowed, remaining, reset (µs), retry (µs, -1 never).
    buckets: Vec<(bool, u64, u64, i64)>,
}

fn run_sequence(con: &mut redis::Connection, script: &redis::Script, seed: u64) {
    let mut rng = Rng(seed | 1);
    let n = 1 + rng.below(3) as usize;
    // Emission intervals of 0.2-5 ms and bursts of 1-12: Redis' clock moves
    // across several tokens in a sequence of a few hundred requests.
    let quotas: Vec<Quota> = (0..n)
        .map(|_| {
            let interval = 200 + rng.below(4_800);
            let burst = 1 + rng.below(12);
            Quota::new(1_000, interval * 1_000, burst).unwrap()
        })
        .collect();
    let user = subject_key(&format!("gcra-{seed}"));
    let keys: Vec<String> = (0..n).map(|i| keyed(&user, &format!("rl:b{i}"))).collect();
    let index = limit_index(&user);
    let mut tats: Vec<Option<u64>> = vec![None; n];
    for step in 0..300 {
        let lease = rng.below(4) == 0;
        let shadow = rng.below(8) == 0;
        let max_burst = quotas.iter().map(Quota::burst).max().unwrap();
        let cost = rng.below(max_burst + 3);
        let lease_key = keyed(&user, &format!("lease:{step}"));
        let mut call = script.prepare_invoke();
        for key in &keys {
            call.key(key);
        }
        call.key(&index).key(&lease_key);
        call.arg(if lease { "lease" } else { "check" })
            .arg(cost)
            .arg(if shadow { "1" } else { "0" })
            .arg(n)
            .arg(n)
            .arg(60_000);
        for q in &quotas {
            call.arg(q.emission_interval()).arg(q.delay_tolerance());
        }
        let reply: Vec<Value> = call.invoke(con).unwrap();
        let lua = Lua {
            admitted: int(&reply[0]) == 1,
            granted: int(&reply[1]) as u64,
            now: int(&reply[2]) as u64,
            buckets: reply[3..]
                .chunks(4)
                .map(|c| {
                    (
                        int(&c[0]) == 1,
                        int(&c[1]) as u64,
                        int(&c[2]) as u64,
                        int(&c[3]),
                    )
                })
                .collect(),
        };

        // The same request through policy::gcra at the script's instant.
        let pairs: Vec<(Quota, Option<u64>)> = quotas.iter().copied().zip(tats.clone()).collect();
        let cost = if lease {
            grantable(&pairs, lua.now, cost)
        } else {
            cost
        };
        let decisions = decide_all(&pairs, lua.now, cost);
        let all = decisions.iter().all(|d| d.allowed);
        let context =
            format!("seed {seed}, step {step}, lease {lease}, cost {cost}, quotas {quotas:?}");
        assert_eq!(lua.admitted, all || shadow, "admitted: {context}");
        assert_eq!(
            lua.granted,
            if all { cost } else { 0 },
            "granted: {context}"
        );
        let rust: Vec<(bool, u64, u64, i64)> = decisions
            .iter()
            .map(|d| {
                let retry = d.retry_after.map_or(-1, |r| r as i64);
                (d.allowed, d.remaining, d.reset_after, retry)
            })
            .collect();
        assert_eq!(lua.buckets, rust, "buckets: {context}");
        if all && cost > 0 {
            for (tat, d) in tats.iter_mut().zip(&decisions) {
                *tat = Some(d.tat);
            }
        }
        // Up to about two tokens' time between requests.
        let pause = rng.below(2 * quotas[0].emission_interval());
        std::thread::sleep(std::time::Duration::from_micros(pause));
    }
}

#[test]
fn lua_and_rust_gcra_decide_every_request_alike() {
    let redis = Redis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let script = redis::Script::new(SCRIPT);
    for seed in 1..=12u64 {
        run_sequence(&mut con, &script, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
}
