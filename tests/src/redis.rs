//! A real `redis-server` on a free port with its own data dir (AOF on).

use crate::ports::free_port;
use crate::process::Process;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Redis {
    pub port: u16,
    pub data_dir: PathBuf,
    process: Process,
    _dir: Option<tempfile::TempDir>,
}

impl Redis {
    /// Starts Redis in a fresh temp dir on a free port.
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let path = dir.path().to_path_buf();
        let mut redis = Redis::start_in(&path, free_port());
        redis._dir = Some(dir);
        redis
    }

    /// Starts Redis with its data in `data_dir` on `port`.
    pub fn start_in(data_dir: &Path, port: u16) -> Redis {
        std::fs::create_dir_all(data_dir).expect("redis data dir");
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &data_dir.to_string_lossy(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
        ]);
        let mut process = Process::spawn("redis", command, data_dir);
        process.wait_until(Duration::from_secs(10), "answering PING", || ping(port));
        Redis {
            port,
            data_dir: data_dir.to_path_buf(),
            process,
            _dir: None,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Stops the server (SIGTERM, so the AOF is flushed).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts the server again on the same port and data dir.
    pub fn restart(&mut self) {
        self.process.stop();
        let again = Redis::start_in(&self.data_dir.clone(), self.port);
        self.process = again.into_process();
    }

    fn into_process(self) -> Process {
        let Redis { process, .. } = self;
        process
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
