//! `scripts/up`: the whole local mesh on the default ports, in the
//! foreground, until Ctrl-C or `scripts/down`. What it starts is
//! `meshguard_harness::mesh::Mesh`, the same stack the end-to-end tests run
//! on free ports.

use meshguard_harness::mesh::{fixed, Layout, Mesh, MeshOptions};
use meshguard_harness::python;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

fn main() {
    let mut options = MeshOptions::for_up();
    // The four-filter layout stays available: MESHGUARD_LAYOUT=four-filters.
    match std::env::var("MESHGUARD_LAYOUT").as_deref() {
        Ok("four-filters") => options.layout = Layout::FourFilters,
        Ok("single-module") | Ok("") | Err(_) => {}
        Ok(other) => {
            eprintln!("MESHGUARD_LAYOUT={other}: expected single-module or four-filters.");
            std::process::exit(2);
        }
    }
    let run_dir = options
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".run"));
    let pid_file = run_dir.join("up.pid");
    if let Some(pid) = running_pid(&pid_file) {
        eprintln!("Meshguard is already running (pid {pid}); `scripts/down` stops it.");
        std::process::exit(1);
    }
    let ports = [
        fixed::LISTENER,
        fixed::ADMIN,
        fixed::STATE,
        fixed::REDIS,
        fixed::GDPR,
        fixed::GDPR_PATH,
        fixed::SPAN_LOG,
    ];
    for port in ports.into_iter().chain(python::fixed_ports()) {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            eprintln!(
                "Port {port} is in use by another program; free it and run scripts/up again."
            );
            std::process::exit(1);
        }
    }
    if let Err(e) = std::fs::create_dir_all(run_dir.join("logs")) {
        eprintln!("{}: {e}", run_dir.join("logs").display());
        std::process::exit(1);
    }
    if let Err(e) = std::fs::write(&pid_file, std::process::id().to_string()) {
        eprintln!("{}: {e}", pid_file.display());
        std::process::exit(1);
    }
    let _pid_guard = RemoveOnDrop(pid_file);

    let (stop_tx, stop_rx) = mpsc::channel();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    }) {
        eprintln!("installing the Ctrl-C handler: {e}");
        std::process::exit(1);
    }

    let mut mesh = match Mesh::try_start(options) {
        Ok(mesh) => mesh,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(1);
        }
    };
    print_banner(&mesh);

    loop {
        match stop_rx.recv_timeout(Duration::from_millis(500)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(status) = mesh.envoy.process().exited() {
            eprintln!("Envoy exited ({status}); its log:\n{}", mesh.envoy.log());
            break;
        }
        if let Some((name, log)) = mesh.upstreams.exited() {
            eprintln!("{name} exited; its log:\n{log}");
            break;
        }
        if let Some(status) = mesh.gdpr.process().exited() {
            eprintln!(
                "meshguard-gdpr exited ({status}); its log:\n{}",
                mesh.gdpr.log()
            );
            break;
        }
    }
    println!("Stopping Meshguard…");
}

fn print_banner(mesh: &Mesh) {
    let listener = mesh.listener_port();
    let layout = match mesh.layout {
        Layout::SingleModule => {
            "meshguard_chain.wasm (trace, auth, ratelimit, flags in one filter)"
        }
        Layout::FourFilters => "meshguard_{trace,auth,ratelimit,flags}.wasm as four filters",
    };
    println!(
        "Meshguard is up (logs in {}):",
        mesh.run_dir().join("logs").display()
    );
    println!("  Envoy listener     http://127.0.0.1:{listener}   {layout}");
    println!(
        "  Envoy admin        http://127.0.0.1:{}",
        mesh.admin_port()
    );
    println!(
        "  meshguard-state    http://127.0.0.1:{}   admin token in .run/admin-token",
        mesh.state.port
    );
    println!(
        "  Redis              redis://127.0.0.1:{}   data in .run/redis (AOF)",
        mesh.redis.port
    );
    println!(
        "  meshguard-gdpr     http://127.0.0.1:{}    admin token in .run/gdpr-admin-token",
        mesh.gdpr_port()
    );
    println!(
        "  GDPR data path     http://127.0.0.1:{}   Envoy: /api/<service>/gdpr/... for meshguard-gdpr only",
        mesh.gdpr_path_port()
    );
    println!(
        "  Python upstreams   /api/<service>/...: ml 8101/8102, nlp 8111/8112, fraud 8121/8122,"
    );
    println!("                     data 8131/8132, blockchain 8141/8142 (fault switches at +1000)");
    println!(
        "  sampled spans      {}   (set {} to send them to a collector)",
        mesh.trace_export,
        meshguard_harness::mesh::OTLP_ENDPOINT_ENV
    );
    println!("Seed flags loaded from flags/default.json.");
    println!("Dev tokens (HS256, .run/dev-jwt-key):");
    println!("  TOKEN=$(target/release/meshguard-state token mint --key-file .run/dev-jwt-key --sub alice --tier premium)");
    println!("  curl -si localhost:{listener}/api/ml/predict -H \"authorization: Bearer $TOKEN\" -d '{{\"features\":[1,2,3]}}'");
    println!("The README walkthrough, checked step by step: scripts/demo");
    println!("Ctrl-C or scripts/down stops everything started here.");
}

fn running_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
