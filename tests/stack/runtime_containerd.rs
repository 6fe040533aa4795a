//! `image_compat::runtime` against the real containerd 2.1 and 1.7, started by each test.
//!
//! Needs root and the stack unpacked by integration/lib/install.sh (IMAGE_COMPAT_STACK, default
//! `.work/stack`); the CRI tests also need the driver example (`cargo test` builds it, or
//! `cargo build --example cri`). Otherwise each test prints `SKIPPED:` and passes.
//! `IMAGE_COMPAT_STACK=... cargo test --test stack runtime_containerd:: -- --nocapture`

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use image_compat::registry::{Digest, SubjectKind};
use image_compat::runtime::{
    ImageEvent, ImageEventKind, ImageSubjects, Runtime, RuntimeOptions, DEFAULT_NAMESPACE,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn stack_prefix() -> PathBuf {
    std::env::var_os("IMAGE_COMPAT_STACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".work/stack"))
}

/// Why the real stack cannot run here, if it cannot.
fn unavailable(version: &str) -> Option<String> {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if uid != 0 {
        return Some("needs root".into());
    }
    let bin = stack_prefix().join(format!("containerd-{version}/usr/bin/containerd"));
    if !bin.exists() {
        return Some(format!(
            "{} missing (set IMAGE_COMPAT_STACK or run integration/lib/install.sh)",
            bin.display()
        ));
    }
    None
}

/// The CRI driver built next to this test binary (target/debug/examples/cri).
fn cri_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let cri = exe.parent()?.parent()?.join("examples/cri");
    cri.exists().then_some(cri)
}

/// A private containerd started through integration/lib/stack.sh, stopped (by the harness,
/// by PID) on drop.
struct Containerd {
    dir: tempfile::TempDir,
}

impl Containerd {
    async fn start(version: &'static str) -> Option<Containerd> {
        if let Some(why) = unavailable(version) {
            eprintln!("SKIPPED: containerd {version}: {why}");
            return None;
        }
        // Short: containerd's socket paths live under it (108-byte limit).
        let dir = tempfile::Builder::new()
            .prefix("icrt-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let c = Containerd { dir };
        c.sh(&format!("ic_containerd_start \"$D\" {version}")).await;
        Some(c)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn socket(&self) -> PathBuf {
        self.path().join("containerd.sock")
    }

    fn command(&self, script: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c")
            .arg(format!(
                "set -euo pipefail; source '{}'; {script}",
                root().join("integration/lib/stack.sh").display()
            ))
            .env("IMAGE_COMPAT_STACK", stack_prefix())
            .env("D", self.path())
            .stdin(std::process::Stdio::null());
        if let Some(cri) = cri_binary() {
            cmd.env("IC_CRI", cri);
        }
        cmd
    }

    /// Runs a harness script (`$D` is this instance's directory); returns its stdout.
    async fn sh(&self, script: &str) -> String {
        let out = tokio::process::Command::from(self.command(script))
            .output()
            .await
            .expect("run bash");
        assert!(
            out.status.success(),
            "harness script failed: {script}\n{}{}\ncontainerd log tail:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Builds a one-layer image (or an amd64+arm64 index) and imports it as `name`.
    async fn import(&self, name: &str, variant: &str, index: bool) -> Layout {
        let layout = self
            .path()
            .join(format!("layout-{}", name.replace(['/', ':'], "_")));
        let build = if index {
            "ic_build_index"
        } else {
            "ic_build_image"
        };
        let digest = self
            .sh(&format!(
                "{build} '{l}' '{name}' '{variant}' >/dev/null; ic_import_image \"$D\" '{l}' '{name}'; ic_layout_digest '{l}'",
                l = layout.display()
            ))
            .await;
        Layout::read(&layout, &digest)
    }

    /// Record name -> target digest, as `ctr images ls` shows them.
    async fn ctr_images(&self) -> BTreeMap<String, String> {
        self.sh("ic_ctr \"$D\" images ls")
            .await
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.first()?.to_string(), f.get(2)?.to_string()))
            })
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let ok = self
            .command("ic_containerd_stop \"$D\"")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("stopping containerd in {} failed", self.path().display());
        }
    }
}

/// What an image layout says, read independently of the code under test.
#[derive(Debug, Clone)]
struct Layout {
    /// What index.json points at: the image manifest, or the index.
    target: String,
    /// The linux/amd64 manifest.
    manifest: String,
    config: String,
}

impl Layout {
    fn blob(dir: &Path, digest: &str) -> Value {
        let hex = digest.trim_start_matches("sha256:");
        let bytes = std::fs::read(dir.join("blobs/sha256").join(hex)).expect("blob");
        serde_json::from_slice(&bytes).expect("json blob")
    }

    fn read(dir: &Path, target: &str) -> Layout {
        let top = Self::blob(dir, target);
        let manifest = match top["manifests"].as_array() {
            Some(list) => list
                .iter()
                .find(|m| m["platform"]["architecture"] == "amd64")
                .and_then(|m| m["digest"].as_str())
                .expect("amd64 entry")
                .to_string(),
            None => target.to_string(),
        };
        let config = Self::blob(dir, &manifest)["config"]["digest"]
            .as_str()
            .expect("config digest")
            .to_string();
        Layout {
            target: target.to_string(),
            manifest,
            config,
        }
    }
}

fn connect(socket: &Path) -> Runtime {
    // Quick reconnects keep the restart tests short.
    let options = RuntimeOptions {
        reconnect_max: Duration::from_millis(500),
        ..RuntimeOptions::default()
    };
    Runtime::connect_with(socket, DEFAULT_NAMESPACE, options).expect("runtime")
}

fn pairs(s: &ImageSubjects) -> Vec<(String, SubjectKind)> {
    s.candidates
        .iter()
        .map(|c| (c.reference.to_string(), c.kind))
        .collect()
}

fn m(repo: &str, digest: &str) -> (String, SubjectKind) {
    (format!("{repo}@{digest}"), SubjectKind::PlatformManifest)
}

fn i(repo: &str, digest: &str) -> (String, SubjectKind) {
    (format!("{repo}@{digest}"), SubjectKind::Index)
}

/// `got` starts with `want`; what follows can only come from `sha256:<config>` records, whose
/// digests are tried under the other repositories (their target is the index or the manifest
/// depending on which name CRI saw last).
fn assert_candidates(
    got: &ImageSubjects,
    want: &[(String, SubjectKind)],
    extra: &[(String, SubjectKind)],
) {
    let p = pairs(got);
    assert!(
        p.len() >= want.len() && p[..want.len()] == *want,
        "{}: candidates {p:#?}\nwant first {want:#?}",
        got.image.name
    );
    for rest in &p[want.len()..] {
        assert!(
            extra.contains(rest),
            "{}: unexpected candidate {rest:?} in {p:#?}",
            got.image.name
        );
    }
}

async fn subjects_of_imported_images(version: &'static str) {
    let Some(ctd) = Containerd::start(version).await else {
        return;
    };
    // (a) single-platform, (b) index, (c) the index's amd64 manifest under another name, an
    // alias of the index made with `ctr images tag`, and a docker.io name.
    let single = ctd.import("localhost/rt/single:1", "a", false).await;
    let multi = ctd.import("localhost/rt/multi:1", "b", true).await;
    let other = ctd.import("localhost/rt/other:2", "b", false).await;
    assert_eq!(other.target, multi.manifest, "same image, two targets");
    assert_eq!(other.config, multi.config);
    ctd.sh("ic_ctr \"$D\" images tag localhost/rt/multi:1 localhost/rt/alias:3 >/dev/null")
        .await;
    let hub = ctd.import("docker.io/library/rtbox:1", "d", false).await;

    let rt = connect(&ctd.socket());
    assert!(rt.wait_synced(WAIT).await, "index never synced");

    let s = rt.subjects("localhost/rt/single:1").await.expect("single");
    assert_eq!(s.image.name, "localhost/rt/single:1");
    assert_eq!(s.image.target.digest.to_string(), single.target);
    assert_eq!(s.manifest.digest.to_string(), single.target);
    assert_eq!(s.config.to_string(), single.config);
    assert_eq!(s.platform, None);
    assert_eq!(
        pairs(&s),
        vec![m("localhost/rt/single", &single.target)],
        "a single image has one subject"
    );

    let (mm, mi) = (&multi.manifest, &multi.target);
    let s = rt.subjects("localhost/rt/multi:1").await.expect("multi");
    assert_eq!(s.image.target.digest.to_string(), *mi);
    assert!(s.image.is_index());
    assert_eq!(s.manifest.digest.to_string(), *mm);
    assert_eq!(s.config.to_string(), multi.config);
    assert_eq!(
        s.platform.as_ref().map(|p| p.to_string()),
        Some("linux/amd64".into())
    );
    assert_candidates(
        &s,
        &[
            m("localhost/rt/multi", mm),
            i("localhost/rt/multi", mi),
            m("localhost/rt/alias", mm),
            i("localhost/rt/alias", mi),
            m("localhost/rt/other", mm),
        ],
        &[i("localhost/rt/other", mi)],
    );

    // The manifest's name: its own repository first, then the index's names.
    let s = rt.subjects("localhost/rt/other:2").await.expect("other");
    assert_eq!(s.image.target.digest.to_string(), *mm);
    assert!(!s.image.is_index());
    assert_candidates(
        &s,
        &[
            m("localhost/rt/other", mm),
            m("localhost/rt/alias", mm),
            i("localhost/rt/alias", mi),
            m("localhost/rt/multi", mm),
            i("localhost/rt/multi", mi),
        ],
        &[i("localhost/rt/other", mi)],
    );
    for name in ["localhost/rt/multi:1", "localhost/rt/alias:3"] {
        assert!(
            s.shared_with.iter().any(|n| n == name),
            "{:?}",
            s.shared_with
        );
    }

    // Names as a pod may write them: unnormalised, by digest, by image id.
    let s = rt.subjects("rtbox:1").await.expect("docker.io name");
    assert_eq!(s.image.name, "docker.io/library/rtbox:1");
    assert_eq!(pairs(&s)[0], m("docker.io/library/rtbox", &hub.target));
    let s = rt
        .subjects(&format!("localhost/rt/multi@{mm}"))
        .await
        .expect("by manifest digest");
    assert_eq!(pairs(&s)[0], m("localhost/rt/multi", mm));
    let s = rt.subjects(&multi.config).await.expect("by image id");
    assert_eq!(s.config.to_string(), multi.config);
    assert!(pairs(&s).contains(&i("localhost/rt/multi", mi)));

    let e = rt.subjects("localhost/rt/nope:1").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(rt.subjects("Not A Name").await.is_err());

    // What containerd itself holds, for the record (and the docs).
    let images = ctd.ctr_images().await;
    eprintln!("containerd {version} records after ctr import/tag: {images:#?}");
    assert_eq!(images.get("localhost/rt/alias:3"), Some(mi));

    // Cost of a lookup before any sync (one Images.List and every manifest read, uncached),
    // then on the warm index.
    let cold = connect(&ctd.socket());
    let t = Instant::now();
    let s = cold.subjects("localhost/rt/multi:1").await.expect("cold");
    eprintln!(
        "containerd {version}: cold subjects() {:?} (synced: {})",
        t.elapsed(),
        cold.is_synced()
    );
    assert_eq!(
        s.candidates[0],
        rt.subjects("localhost/rt/multi:1")
            .await
            .expect("warm")
            .candidates[0]
    );
    drop(cold);
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        rt.subjects("localhost/rt/multi:1").await.expect("warm");
    }
    eprintln!(
        "containerd {version}: warm subjects() {:?} per lookup ({} records)",
        t.elapsed() / n,
        rt.index().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_of_imported_images_21() {
    subjects_of_imported_images("2.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_of_imported_images_17() {
    subjects_of_imported_images("1.7").await;
}

/// The next event for `name` of that kind (all are collected into `seen`).
async fn event_for(
    events: &mut (impl Stream<Item = ImageEvent> + Unpin),
    name: &str,
    kind: ImageEventKind,
    seen: &mut Vec<ImageEvent>,
) -> ImageEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} event for {name}; saw {seen:#?}"))
            .expect("event stream ended");
        seen.push(ev.clone());
        if ev.name == name && ev.kind == kind {
            return ev;
        }
    }
}

async fn events_and_restarts(version: &'static str) {
    // The reconnect logs, shown with --nocapture (RUST_LOG=image_compat=debug for more).
    // The subscriber is process-wide, set once by whichever test comes first; the test writer
    // puts each event in the output of the test whose thread logged it, never another's.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "image_compat=info".into()),
        )
        .with_test_writer()
        .try_init();
    if let Some(why) = unavailable(version) {
        eprintln!("SKIPPED: containerd {version}: {why}");
        return;
    }
    // The runtime comes first, with no containerd behind its socket yet.
    let dir = tempfile::Builder::new()
        .prefix("icrt-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let rt = connect(&dir.path().join("containerd.sock"));
    let e = rt.subjects("localhost/rt/ev:1").await.unwrap_err();
    assert!(e.is_unavailable(), "before containerd: {e}");
    assert!(!rt.is_synced());

    let ctd = Containerd { dir };
    ctd.sh(&format!("ic_containerd_start \"$D\" {version}"))
        .await;
    let t = Instant::now();
    assert!(
        rt.wait_synced(WAIT).await,
        "no sync after containerd came up"
    );
    eprintln!(
        "containerd {version}: synced {:?} after ic_containerd_start returned",
        t.elapsed()
    );
    let mut events = Box::pin(rt.watch_images());
    let mut seen = Vec::new();

    let first = ctd.import("localhost/rt/ev:1", "e1", false).await;
    let ev = event_for(
        &mut events,
        "localhost/rt/ev:1",
        ImageEventKind::Created,
        &mut seen,
    )
    .await;
    assert_eq!(
        ev.target.as_ref().map(|t| t.digest.to_string()),
        Some(first.target.clone())
    );
    assert_eq!(
        ev.config.as_ref().map(Digest::to_string),
        Some(first.config.clone())
    );
    // Applied before it was passed on.
    let s = rt.subjects("localhost/rt/ev:1").await.expect("after event");
    assert_eq!(s.image.target.digest.to_string(), first.target);

    // The same name, another image: an update with the new target.
    let second = ctd.import("localhost/rt/ev:1", "e2", true).await;
    let ev = event_for(
        &mut events,
        "localhost/rt/ev:1",
        ImageEventKind::Updated,
        &mut seen,
    )
    .await;
    assert_eq!(
        ev.target.map(|t| t.digest.to_string()),
        Some(second.target.clone())
    );
    let s = rt
        .subjects("localhost/rt/ev:1")
        .await
        .expect("after update");
    assert_eq!(s.manifest.digest.to_string(), second.manifest);
    // CRI relabels every image it sees (an update of the same target): not passed on.
    let relabels: Vec<_> = seen
        .iter()
        .filter(|e| e.kind == ImageEventKind::Updated)
        .filter(|e| e.target.as_ref().map(|t| t.digest.to_string()) == Some(first.target.clone()))
        .collect();
    assert!(relabels.is_empty(), "{relabels:#?}");

    ctd.sh("ic_ctr \"$D\" images rm localhost/rt/ev:1 >/dev/null")
        .await;
    event_for(
        &mut events,
        "localhost/rt/ev:1",
        ImageEventKind::Deleted,
        &mut seen,
    )
    .await;
    assert!(rt
        .subjects("localhost/rt/ev:1")
        .await
        .unwrap_err()
        .is_not_found());
    let topics: Vec<String> = seen
        .iter()
        .map(|e| format!("{:?} {}", e.kind, e.name))
        .collect();
    eprintln!("containerd {version}: events seen: {topics:#?}");

    // containerd goes away: lookups say so (no stale answers), then it comes back.
    ctd.sh("pid=$(cat \"$D/containerd.pid\"); ic_kill_wait \"$pid\" 15")
        .await;
    let t = Instant::now();
    while rt.is_synced() {
        assert!(t.elapsed() < WAIT, "still synced with containerd gone");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = rt.subjects("localhost/rt/single:1").await.unwrap_err();
    assert!(e.is_unavailable(), "containerd down: {e}");
    ctd.sh("ic_containerd_launch \"$D\"").await;
    let t = Instant::now();
    assert!(
        rt.wait_synced(WAIT).await,
        "no resync after containerd came back"
    );
    eprintln!(
        "containerd {version}: resynced {:?} after it was back",
        t.elapsed()
    );

    // The same event stream carries on, and lookups answer.
    let third = ctd.import("localhost/rt/ev:3", "e3", false).await;
    event_for(
        &mut events,
        "localhost/rt/ev:3",
        ImageEventKind::Created,
        &mut seen,
    )
    .await;
    let s = rt
        .subjects("localhost/rt/ev:3")
        .await
        .expect("after restart");
    assert_eq!(s.image.target.digest.to_string(), third.target);

    // A restart through the harness; an image imported right after it is found at once,
    // whether or not the index has caught up (a miss asks containerd).
    ctd.sh("ic_containerd_restart \"$D\"").await;
    let fourth = ctd.import("localhost/rt/ev:4", "e4", false).await;
    let s = rt
        .subjects("localhost/rt/ev:4")
        .await
        .expect("right after restart");
    assert_eq!(s.image.target.digest.to_string(), fourth.target);
    assert!(rt.wait_synced(WAIT).await);
    // A live event, or the resync's account of what changed while disconnected.
    let ev = event_for(
        &mut events,
        "localhost/rt/ev:4",
        ImageEventKind::Created,
        &mut seen,
    )
    .await;
    assert_eq!(ev.target.map(|t| t.digest.to_string()), Some(fourth.target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_restarts_21() {
    events_and_restarts("2.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_restarts_17() {
    events_and_restarts("1.7").await;
}

/// The annotation CRI writes for a pod's image, for each way of asking.
async fn cri_annotation(version: &'static str) {
    if cri_binary().is_none() && unavailable(version).is_none() {
        eprintln!(
            "SKIPPED: containerd {version} CRI: examples/cri not built (cargo build --example cri)"
        );
        return;
    }
    let Some(ctd) = Containerd::start(version).await else {
        return;
    };
    let _registry = RegistryGuard(&ctd);
    // An index and its amd64 manifest pushed under two repositories, both pulled by tag.
    let port = ctd.sh("ic_free_port").await;
    let reg = format!("127.0.0.1:{port}");
    let script = format!(
        r#"ic_registry_start "$D/registry" {port} >&2
        ic_containerd_plain_http "$D" {reg}
        ic_build_index "$D/l-multi" x c >/dev/null; ic_push_image "$D/l-multi" {reg}/t/multi:1
        ic_build_image "$D/l-app" x c >/dev/null; ic_push_image "$D/l-app" {reg}/o/app:2
        ic_cri "$D" pull {reg}/t/multi:1 >/dev/null; ic_cri "$D" pull {reg}/o/app:2 >/dev/null
        ic_layout_digest "$D/l-multi""#
    );
    let index_digest = ctd.sh(&script).await;
    let multi = Layout::read(&ctd.path().join("l-multi"), &index_digest);
    let (mm, mi) = (multi.manifest.clone(), multi.target.clone());

    let rt = connect(&ctd.socket());
    assert!(rt.wait_synced(WAIT).await);
    // CRI's records for a pull: tag, repo@digest, image id.
    let images = ctd.ctr_images().await;
    eprintln!("containerd {version} records after CRI pulls: {images:#?}");
    let ix = rt.index();
    for name in [
        format!("{reg}/t/multi:1"),
        format!("{reg}/t/multi@{mi}"),
        format!("{reg}/o/app:2"),
        format!("{reg}/o/app@{mm}"),
        multi.config.clone(),
    ] {
        assert!(ix.get(&name).is_some(), "no record {name} in {images:#?}");
    }

    let pod = ctd.sh("ic_cri \"$D\" run-pod rt | ic_json pod_id").await;
    let mut seen = Vec::new();
    for (n, (asked, raw)) in [
        (format!("{reg}/t/multi:1"), false),
        (format!("{reg}/t/multi:1"), true),
        (format!("{reg}/o/app:2"), false),
        (format!("{reg}/o/app:2"), true),
    ]
    .into_iter()
    .enumerate()
    {
        let flag = if raw { "--raw-image" } else { "" };
        let status = ctd
            .sh(&format!(
                "c=$(ic_cri \"$D\" create {pod} c{n} {flag} {asked} | ic_json container_id); ic_cri \"$D\" status $c"
            ))
            .await;
        let status: Value = serde_json::from_str(&status).expect("status json");
        let annotation = status["spec_annotations"]["io.kubernetes.cri.image-name"]
            .as_str()
            .expect("image-name annotation")
            .to_string();
        seen.push(format!(
            "asked {asked}{}: annotation {annotation}",
            if raw {
                " (no user_specified_image)"
            } else {
                ""
            }
        ));
        // Whatever name containerd wrote, the index and its manifest are both candidates,
        // each under the repository it was pushed to.
        let s = rt
            .subjects(&annotation)
            .await
            .expect("subjects of the annotation");
        let p = pairs(&s);
        for want in [
            m(&format!("{reg}/t/multi"), &mm),
            i(&format!("{reg}/t/multi"), &mi),
            m(&format!("{reg}/o/app"), &mm),
        ] {
            assert!(
                p.contains(&want),
                "{annotation}: {want:?} missing from {p:#?}"
            );
        }
        assert_eq!(
            p[0].0,
            format!("{}@{mm}", annotation.rsplit_once(':').map_or("", |x| x.0))
        );
        // What each version writes (see the module docs of image_compat::runtime).
        let expected = match (version, raw) {
            ("2.1", false) => asked.clone(),
            // The image's first sorted reference.
            _ => format!("{reg}/o/app:2"),
        };
        assert_eq!(
            annotation, expected,
            "containerd {version}, asked {asked}, raw {raw}"
        );
    }
    eprintln!("containerd {version} annotations: {seen:#?}");
}

/// Stops the test registry before containerd (the harness does both by directory).
struct RegistryGuard<'a>(&'a Containerd);

impl Drop for RegistryGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.command("ic_registry_stop \"$D/registry\"").status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_annotation_21() {
    cri_annotation("2.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_annotation_17() {
    cri_annotation("1.7").await;
}
