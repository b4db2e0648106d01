//! The idle keep-alive race: uvicorn closes idle connections after its
//! keep-alive; if Envoy still holds one and writes a request into it just
//! then, the client gets a 503 UC. Envoy's upstream idle_timeout below
//! uvicorn's keep-alive means Envoy always closes first. Times are scaled
//! down here (keep-alive 1.5 s, idle timeout 0.5 s), keeping a full second
//! of margin for a loaded machine.

mod upstreams_support;

use meshguard_harness::envoy::Resilience;
use meshguard_harness::python::UpstreamOptions;
use std::time::Duration;
use upstreams_support::{fast, validate_events, Mesh};

fn mesh(idle_timeout: &str) -> Mesh {
    Mesh::start(
        &["data"],
        Resilience {
            upstream_idle_timeout: Some(idle_timeout.into()),
            ..fast()
        },
        UpstreamOptions {
            keep_alive_s: Some(1.5),
            ..UpstreamOptions::default()
        },
    )
}

#[test]
fn envoy_closes_idle_upstream_connections_before_uvicorn_does() {
    let mesh = mesh("0.5s");
    let port = mesh.envoy.port;
    // Two clients whose pauses sweep across uvicorn's keep-alive: every
    // request finds its pooled connection just before, at, or just after the
    // moment uvicorn would close it. POST: not retried after it was sent, so
    // a race would reach the client.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..2)
            .map(|client| {
                scope.spawn(move || {
                    (0..8)
                        .map(|step| {
                            let pause = 1_440 + 15 * step + 7 * client;
                            std::thread::sleep(Duration::from_millis(pause));
                            validate_events().send(port).map(|r| r.status).unwrap_or(0)
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("client"))
            .collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(mesh.stat("cluster.data.upstream_cx_idle_timeout") >= 1);
    assert_eq!(
        mesh.stat("cluster.data.upstream_cx_destroy_remote"),
        0,
        "uvicorn never had to close a connection Envoy still pooled"
    );
}

#[test]
fn with_an_idle_timeout_above_the_keep_alive_uvicorn_closes_pooled_connections() {
    // The control: the precondition of the race, deterministic.
    let mesh = mesh("30s");
    assert_eq!(mesh.send(&validate_events()).expect("envoy").status, 200);
    std::thread::sleep(Duration::from_millis(2_200));
    assert!(mesh.stat("cluster.data.upstream_cx_destroy_remote") >= 1);
    assert_eq!(mesh.stat("cluster.data.upstream_cx_idle_timeout"), 0);
}
