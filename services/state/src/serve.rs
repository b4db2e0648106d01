//! `meshguard-state serve`: connects to Redis (lazily, reconnecting by
//! itself), builds the router and serves until SIGTERM or Ctrl-C.

use crate::app;
use crate::app_state::AppState;
use crate::config::ServeArgs;
use crate::metrics::Metrics;
use crate::store::redis::RedisStore;
use crate::store::Store;
use redis::aio::ConnectionManagerConfig;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub fn main(args: ServeArgs) -> ExitCode {
    meshguard_service_kit::logging::init(args.log_format, "MESHGUARD_LOG");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshguard-state: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("meshguard-state: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(args: &ServeArgs, metrics: &Metrics) -> Result<Arc<dyn Store>, String> {
    let timeout = args.redis_timeout();
    if args.redis_cluster {
        let nodes: Vec<&str> = args.redis_url.split(',').map(str::trim).collect();
        let client = redis::cluster::ClusterClient::builder(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| format!("redis cluster config: {e}"))?;
        // The cluster client needs the topology before it can route; retry
        // until a seed node answers.
        let conn = loop {
            match client.get_async_connection().await {
                Ok(conn) => break conn,
                Err(e) => {
                    tracing::warn!("redis cluster not reachable yet: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        return Ok(Arc::new(RedisStore::new(
            conn,
            true,
            timeout,
            args.feed_max_len,
            args.audit_max_len,
            metrics.redis_errors.clone(),
        )));
    }
    let client =
        redis::Client::open(args.redis_url.as_str()).map_err(|e| format!("redis url: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    // Lazy: the service starts (and answers 503) while Redis is still down.
    let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| format!("redis: {e}"))?;
    Ok(Arc::new(RedisStore::new(
        conn,
        false,
        timeout,
        args.feed_max_len,
        args.audit_max_len,
        metrics.redis_errors.clone(),
    )))
}

async fn run(args: ServeArgs) -> Result<(), String> {
    let settings = args.settings()?;
    let secrets = args.secrets()?;
    let limits = args.limits()?;
    let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
    let store = connect(&args, &metrics).await?;
    let state = AppState {
        store,
        limits: Arc::new(limits),
        settings: Arc::new(settings),
        secrets: Arc::new(secrets),
        metrics,
    };
    let router = app::router(state, args.max_body_bytes);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    tracing::info!(
        "meshguard-state listening on {local}, redis {}",
        if args.redis_cluster {
            "cluster"
        } else {
            "standalone"
        }
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| format!("serving: {e}"))
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
