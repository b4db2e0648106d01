//! Rate-limit decisions per second through meshguard-state against
//! redis-benchmark running the same Lua script with the same arguments.

use crate::bench::load;
use crate::bench::measure::pin;
use crate::bench::options::Options;
use crate::bench::report::{summarize, table};
use crate::bench::variants::{ENVOY_CORE, LOAD_CORE};
use crate::paths::workspace_root;
use crate::redis::Redis;
use crate::state::StateService;
use meshguard_api::keys::{keyed, limit_index};
use meshguard_api::limits::{seed_global, seed_tiers};
use meshguard_api::ratelimit::{CHECK_PATH, GLOBAL_BUCKET};
use meshguard_policy::ratelimit::Bucket;

/// `EVALSHA` of `ratelimit.lua` deciding one request of `key` under the seed
/// enterprise tier and the seed global limit, with the keys and arguments
/// meshguard-state passes (see the script's header): the key's minute and
/// hour buckets, the global bucket, the key's index; mode, cost, shadow,
/// the user's bucket count, the bucket count, the lease TTL, then each
/// bucket's emission interval and delay tolerance in µs.
fn check_args(sha: &str, key: &str) -> Vec<String> {
    let tier = seed_tiers()["enterprise"];
    let global = seed_global();
    let buckets = Bucket::tier(tier.per_minute, tier.per_hour, tier.burst)
        .expect("the seed tiers compile")
        .into_iter()
        .chain(Bucket::global(
            global.tokens,
            global.per_seconds,
            global.burst,
        ));
    let keys = [
        keyed(key, "rl:minute"),
        keyed(key, "rl:hour"),
        GLOBAL_BUCKET.to_string(),
        limit_index(key),
    ];
    let mut args: Vec<String> = vec!["EVALSHA".into(), sha.into(), keys.len().to_string()];
    args.extend(keys);
    args.extend(["check", "1", "0", "2", "3", "0"].map(String::from));
    for bucket in buckets {
        args.push(bucket.quota.emission_interval().to_string());
        args.push(bucket.quota.delay_tolerance().to_string());
    }
    args
}

pub fn state_figure(cli: &Options) -> String {
    let redis = Redis::start();
    pin(redis.pid(), ENVOY_CORE);
    let state = StateService::start(&redis);
    let script_path = workspace_root().join("services/state/src/store/lua/ratelimit.lua");
    let script = std::fs::read_to_string(&script_path).unwrap_or_default();
    let sha = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SCRIPT", "LOAD", &script])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let evalsha = check_args(&sha, "bench");
    let url = format!("http://127.0.0.1:{}{CHECK_PATH}", state.port);
    let secret = vec![format!("x-meshguard-secret: {}", state.plugin_secret)];
    let body = r#"{"key":"bench","tier":"enterprise"}"#;
    let (mut service, mut plain, mut piped) = (vec![], vec![], vec![]);
    let (mut answered, mut unexpected) = (0u64, 0u64);
    for round in 0..cli.rounds {
        eprintln!("bench state: round {}/{}", round + 1, cli.rounds);
        let run = load::wrk_post(LOAD_CORE, &url, 16, cli.seconds, &secret, body);
        answered += run.statuses.iter().map(|(_, n)| n).sum::<u64>();
        unexpected += run.unexpected(&[200, 429]);
        service.push(run.per_second);
        plain.push(load::redis_benchmark(
            LOAD_CORE, redis.port, 16, 1, 100_000, &evalsha,
        ));
        piped.push(load::redis_benchmark(
            LOAD_CORE, redis.port, 16, 16, 300_000, &evalsha,
        ));
    }
    let (s, p, q) = (summarize(&service), summarize(&plain), summarize(&piped));
    let rows = vec![
        vec![
            "meshguard-state `POST /v1/ratelimit/check` (16 connections)".into(),
            s.show(0),
            "1.00×".into(),
        ],
        vec![
            "redis-benchmark EVALSHA, unpipelined (16 clients)".into(),
            p.show(0),
            format!("{:.2}×", p.median / s.median),
        ],
        vec![
            "redis-benchmark EVALSHA, pipeline 16".into(),
            q.show(0),
            format!("{:.2}×", q.median / s.median),
        ],
    ];
    format!(
        "## Rate-limit decisions per second (same Lua script, Redis pinned to core {ENVOY_CORE})\n\n\
         meshguard-state runs unpinned beside Redis; `wrk` (POST script) on core {LOAD_CORE}. The service reaches \
         {:.0}% of redis-benchmark's unpipelined rate (target: at least 50%). {answered} service \
         responses, {unexpected} of them neither 200 nor 429.\n\n{}\n",
        100.0 * s.median / p.median,
        table(&["path", "decisions/s", "vs service"], &rows)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_arguments_are_those_the_figure_always_measured() {
        let args = super::check_args("SHA", "bench");
        let expected = [
            "EVALSHA",
            "SHA",
            "4",
            "mg:{u:bench}:rl:minute",
            "mg:{u:bench}:rl:hour",
            "mg:{rl:global}:tat",
            "mg:{u:bench}:index",
            "check",
            "1",
            "0",
            "2",
            "3",
            "0",
            "120000",
            "60000000",
            "360000",
            "3600000000",
            "100",
            "1000000",
        ];
        assert_eq!(args, expected);
    }
}
