//! The NRI transport against the real containerd 2.1 and 1.7 of the private stack: registration,
//! Configure, Synchronize, reconnection after a restart, and pre-launched mode.
//!
//! Needs root, the stack unpacked by integration/lib/install.sh (IMAGE_COMPAT_STACK, default
//! `.work/stack`) and the probe example (`cargo test --all-targets` builds it); without them each
//! test prints `SKIPPED:` and passes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use image_compat::nri::{
    Adjustment, ConfigureInfo, Container, Handler, HandlerError, Phase, Plugin, PluginOptions,
    PodSandbox, Rejection, Status, StatusHandle, Transport,
};
use serde_json::Value;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Flavor {
    V21,
    V17,
}

impl Flavor {
    fn dir(self) -> &'static str {
        match self {
            Flavor::V21 => "containerd-2.1",
            Flavor::V17 => "containerd-1.7",
        }
    }

    fn config(self, d: &Path) -> String {
        let d = d.display();
        match self {
            Flavor::V21 => format!(
                r#"version = 3
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
  level = "debug"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = '{d}/nri.sock'
  plugin_path = '{d}/nri/plugins'
  plugin_config_path = '{d}/nri/conf.d'
"#
            ),
            Flavor::V17 => format!(
                r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
  level = "debug"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  socket_path = "{d}/nri.sock"
  plugin_path = "{d}/nri/plugins"
  plugin_config_path = "{d}/nri/conf.d"
"#
            ),
        }
    }
}

/// Why these tests cannot run here (not root, no private stack, no probe binary), if so.
fn unavailable(flavor: Flavor) -> Option<String> {
    let uid = std::process::Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    let bin = stack().join(flavor.dir()).join("usr/bin/containerd");
    if !bin.exists() {
        return Some(format!(
            "{} missing (integration/lib/install.sh installs it)",
            bin.display()
        ));
    }
    let probe = probe_path();
    if !probe.exists() {
        return Some(format!(
            "{} missing (cargo build --example nri_probe)",
            probe.display()
        ));
    }
    None
}

macro_rules! needs_stack {
    ($flavor:expr) => {
        if let Some(why) = unavailable($flavor) {
            println!("SKIPPED: NRI against real containerd: {why}");
            return;
        }
    };
}

fn stack() -> PathBuf {
    std::env::var_os("IMAGE_COMPAT_STACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".work/stack"))
}

/// A private containerd under a temporary directory, stopped by its PID.
struct Containerd {
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
}

impl Containerd {
    fn new(flavor: Flavor) -> Containerd {
        let bin = stack().join(flavor.dir()).join("usr/bin/containerd");
        assert!(
            bin.exists(),
            "{} missing: run integration/lib/install.sh",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("nri-real-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("nri/plugins")).expect("plugin dir");
        std::fs::create_dir_all(dir.path().join("nri/conf.d")).expect("conf dir");
        std::fs::write(dir.path().join("config.toml"), flavor.config(dir.path())).expect("config");
        Containerd {
            dir,
            bin,
            child: None,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn version(&self) -> String {
        let out = Command::new(&self.bin)
            .arg("--version")
            .output()
            .expect("containerd --version");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts containerd and waits for its NRI socket; returns how long that took.
    fn start(&mut self) -> Duration {
        let started = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("containerd.log"))
            .expect("log file");
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(self.path("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd starts");
        self.child = Some(child);
        while !self.path("nri.sock").exists() {
            assert!(
                started.elapsed() < WAIT,
                "no NRI socket; see {}",
                self.path("containerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }

    /// SIGTERM, then SIGKILL after 10 s; waits for the process to exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                let _ = std::fs::remove_file(self.path("nri.sock"));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(self.path("nri.sock"));
    }

    fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(self.path("containerd.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Default)]
struct Recorder {
    configs: Mutex<Vec<ConfigureInfo>>,
    syncs: Mutex<Vec<(usize, usize)>>,
}

#[async_trait]
impl Handler for Recorder {
    async fn configure(&self, cfg: ConfigureInfo) -> Result<(), HandlerError> {
        self.configs.lock().expect("test lock").push(cfg);
        Ok(())
    }

    async fn synchronize(&self, pods: Vec<PodSandbox>, containers: Vec<Container>) {
        self.syncs
            .lock()
            .expect("test lock")
            .push((pods.len(), containers.len()));
    }

    async fn create_container(
        &self,
        _pod: &PodSandbox,
        _ctr: &Container,
    ) -> Result<Adjustment, Rejection> {
        Ok(Adjustment::default())
    }
}

async fn wait_status(
    status: &mut StatusHandle,
    what: &str,
    pred: impl FnMut(&Status) -> bool,
) -> Duration {
    let started = Instant::now();
    timeout(WAIT, status.wait_for(pred))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", status.get()))
        .expect("plugin alive");
    started.elapsed()
}

async fn external_plugin_survives_a_restart(flavor: Flavor, version_prefix: &str) {
    let mut ctd = Containerd::new(flavor);
    let version = ctd.version();
    let boot = ctd.start();
    println!("{version}: NRI socket after {boot:?}");

    let recorder = Arc::new(Recorder::default());
    let mut opts = PluginOptions::external("image-compat", "10");
    opts.transport = Transport::External {
        socket: ctd.path("nri.sock"),
    };
    opts.reconnect_initial = Duration::from_millis(200);
    opts.reconnect_max = Duration::from_secs(2);
    let plugin = Plugin::new(opts, recorder.clone()).expect("options");
    let mut status = plugin.status();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(plugin.run_until(async move {
        let _ = stop_rx.await;
    }));

    let took = wait_status(&mut status, "first synchronization", |s| {
        s.phase == Phase::Synchronized
    })
    .await;
    let cfg = recorder.configs.lock().expect("test lock")[0].clone();
    println!("connected, registered, configured and synchronized in {took:?}");
    println!("Configure: {cfg:?}");
    println!("subscribed: {}", status.get().subscribed.names());
    println!(
        "Synchronize (pods, containers): {:?}",
        recorder.syncs.lock().expect("test lock")
    );
    assert_eq!(cfg.runtime_name, "containerd");
    assert!(
        cfg.runtime_version
            .trim_start_matches('v')
            .starts_with(version_prefix),
        "{cfg:?}"
    );
    for line in ctd.log_lines("image-compat") {
        println!("containerd: {line}");
    }

    // Runtime restart: the plugin notices, redials with backoff and registers again.
    let stopped_at = Instant::now();
    ctd.stop();
    let noticed = wait_status(&mut status, "disconnect", |s| {
        s.phase != Phase::Synchronized
    })
    .await;
    println!(
        "containerd stopped; plugin noticed after {noticed:?} ({:?} after SIGTERM)",
        stopped_at.elapsed()
    );
    std::thread::sleep(Duration::from_secs(1));
    // A redial while the old containerd is still exiting can connect (the kernel queues it on
    // the listening socket) and then be closed unregistered: that adds a connection, not a
    // registration. What must hold is that the plugin registers with the new containerd.
    let before = status.get().registrations;
    assert_eq!(before, 1, "{:?}", status.get());
    let restarted_at = Instant::now();
    ctd.start();
    let back = wait_status(&mut status, "resynchronization", |s| {
        s.registrations > before && s.phase == Phase::Synchronized
    })
    .await;
    let s = status.get();
    println!("containerd restarted; plugin synchronized again {back:?} after the restart ({:?} since start): {s:?}", restarted_at.elapsed());
    assert!(s.reconnects >= 1, "{s:?}");
    let configs = recorder.configs.lock().expect("test lock").clone();
    assert_eq!(
        configs.len() as u64,
        s.registrations,
        "one Configure per registration: {configs:?}"
    );
    assert!(
        configs.iter().all(|c| c.runtime_name == "containerd"),
        "{configs:?}"
    );

    stop_tx.send(()).expect("plugin running");
    timeout(WAIT, running)
        .await
        .expect("stops")
        .expect("task")
        .expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_21_external_plugin_registers_and_reconnects() {
    needs_stack!(Flavor::V21);
    external_plugin_survives_a_restart(Flavor::V21, "2.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_17_external_plugin_registers_and_reconnects() {
    needs_stack!(Flavor::V17);
    external_plugin_survives_a_restart(Flavor::V17, "1.7").await;
}

fn probe_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(|debug| debug.join("examples/nri_probe"))
        .unwrap_or_default()
}

fn probe_binary() -> PathBuf {
    let probe = probe_path();
    assert!(
        probe.exists(),
        "{} missing: cargo build --example nri_probe",
        probe.display()
    );
    probe
}

fn read_reports(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_report(path: &Path, kind: &str) -> Value {
    let started = Instant::now();
    loop {
        if let Some(found) = read_reports(path).into_iter().find(|r| r["kind"] == kind) {
            return found;
        }
        assert!(
            started.elapsed() < WAIT,
            "no {kind} report in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn prelaunched_plugin_gets_socket_env_and_config(flavor: Flavor) {
    let mut ctd = Containerd::new(flavor);
    let out = ctd.path("probe.jsonl");
    let script = ctd.path("nri/plugins/10-probe");
    // The runtime passes the plugin no arguments and only the NRI_PLUGIN_* variables.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {} --out {} --log {}\n",
            probe_binary().display(),
            out.display(),
            ctd.path("probe.log").display()
        ),
    )
    .expect("plugin script");
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&script, mode).expect("chmod 755");
    std::fs::write(
        ctd.path("nri/conf.d/10-probe.conf"),
        "mode: audit\nexempt: [kube-system]\n",
    )
    .expect("conf");

    println!("{}", ctd.version());
    ctd.start();
    let start = wait_report(&out, "start");
    let configure = wait_report(&out, "configure");
    println!("start: {start}");
    println!("configure: {configure}");
    match flavor {
        Flavor::V21 => println!("synchronize: {}", wait_report(&out, "synchronize")),
        Flavor::V17 => {
            // NRI 0.6.1 synchronizes only external plugins, never those it launches.
            std::thread::sleep(Duration::from_secs(2));
            let reports = read_reports(&out);
            assert!(
                reports.iter().all(|r| r["kind"] != "synchronize"),
                "{reports:?}"
            );
            println!("synchronize: none within 2 s of Configure");
        }
    }
    for line in ctd.log_lines("probe") {
        println!("containerd: {line}");
    }
    let env: Vec<(String, String)> =
        serde_json::from_value(start["env"].clone()).expect("env pairs");
    println!("environment given to the plugin: {env:?}");
    assert!(
        env.iter()
            .any(|(k, v)| k == "NRI_PLUGIN_SOCKET" && v == "3"),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|(k, v)| k == "NRI_PLUGIN_NAME" && v == "probe"),
        "{env:?}"
    );
    assert!(
        env.iter().any(|(k, v)| k == "NRI_PLUGIN_IDX" && v == "10"),
        "{env:?}"
    );
    assert!(
        start["fd_target"]
            .as_str()
            .unwrap_or("")
            .starts_with("socket:"),
        "{start}"
    );
    assert_eq!(configure["config"], "mode: audit\nexempt: [kube-system]\n");

    let pid = start["pid"].as_u64().expect("pid");
    ctd.stop();
    let exited = Instant::now();
    let gone = loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its (dead) parent's reaper.
        if state.is_empty() || state.contains(") Z ") {
            break true;
        }
        if exited.elapsed() > Duration::from_secs(10) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let reports = read_reports(&out);
    let tail: Vec<&Value> = reports
        .iter()
        .filter(|r| r["kind"] == "exit" || r["kind"] == "status")
        .collect();
    println!("after containerd stopped: plugin process gone={gone}; last reports: {tail:?}");
    assert!(gone, "the pre-launched plugin outlived containerd");
}

#[test]
fn containerd_21_prelaunched_plugin() {
    needs_stack!(Flavor::V21);
    prelaunched_plugin_gets_socket_env_and_config(Flavor::V21);
}

#[test]
fn containerd_17_prelaunched_plugin() {
    needs_stack!(Flavor::V17);
    prelaunched_plugin_gets_socket_env_and_config(Flavor::V17);
}
