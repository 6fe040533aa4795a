//! `image-compat oci-hook` as a runtime runs it: the state on stdin, a bundle on disk, a registry
//! (in-process) holding the images and their specs, a cache directory shared by runs.
//!
//! No root needed: the bundles are written by the test, as CRI-O, containerd and podman lay
//! them out. tests/stack/hook_runtimes.rs runs the same hook under real runc and podman.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::oci_server::TestRegistry;

const NEEDS_EXT4: &str = "version: v1alpha1\ncompatibilities:\n- description: runs where ext4 is loaded\n  rules:\n  - name: filesystem\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n        ext4: {op: Exists}\n";
const NEEDS_VFIO: &str = "version: v1alpha1\ncompatibilities:\n- description: needs vfio\n  rules:\n  - name: vfio driver\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n        vfio-pci: {op: Exists}\n";
const FEATURES: &str = r#"{"flags":{"kernel.loadedmodule":{"elements":{"ext4":{}}}}}"#;

struct Env {
    reg: TestRegistry,
    dir: tempfile::TempDir,
    /// Images in the registry: (reference by tag, manifest digest).
    compatible: (String, String),
    incompatible: (String, String),
    plain: (String, String),
}

async fn env() -> Env {
    let reg = TestRegistry::start().await;
    let mut images = Vec::new();
    for (repo, spec) in [
        ("hook/ok", Some(NEEDS_EXT4)),
        ("hook/bad", Some(NEEDS_VFIO)),
        ("hook/plain", None),
    ] {
        images.push(
            reg.push_image_with_spec(repo, "1", spec.map(str::as_bytes))
                .await,
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("features.json"), FEATURES).expect("write");
    let mut it = images.into_iter();
    let (compatible, incompatible, plain) = (
        it.next().expect("image"),
        it.next().expect("image"),
        it.next().expect("image"),
    );
    Env {
        reg,
        dir,
        compatible,
        incompatible,
        plain,
    }
}

impl Env {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A config file: this registry over plain HTTP, the features file, the cache dir, `extra`
    /// top-level YAML lines and `cache` keys (flow-map entries) added.
    fn config(&self, extra: &str) -> PathBuf {
        self.config_with(extra, "")
    }

    fn config_with(&self, extra: &str, cache: &str) -> PathBuf {
        let p = self.path("config.yaml");
        std::fs::write(
            &p,
            format!(
                "nodeName: test-node\nregistry: {{plainHttp: ['{}']}}\nfeatures: {{file: {}}}\ncache: {{dir: {}{cache}}}\n{extra}",
                self.reg.host,
                self.path("features.json").display(),
                self.path("cache").display(),
            ),
        )
        .expect("write config");
        p
    }

    /// A bundle whose config.json carries these annotations; returns the state JSON.
    fn bundle(&self, id: &str, annotations: serde_json::Value) -> String {
        let b = self.path(&format!("bundles/{id}"));
        std::fs::create_dir_all(&b).expect("mkdir");
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"cwd": "/", "args": ["/bin/sh"], "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "annotations": annotations,
        });
        std::fs::write(b.join("config.json"), config.to_string()).expect("write");
        serde_json::json!({"ociVersion": "1.0.2", "id": id, "status": "creating", "pid": 4242, "bundle": b}).to_string()
    }
}

/// Runs the hook with `state` on stdin, logs at info to stderr.
fn hook(config: &Path, state: &str) -> Output {
    hook_args(&["--config", &config.display().to_string()], state)
}

fn hook_args(args: &[&str], state: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_image-compat"))
        .args(["--log-level", "info", "oci-hook"])
        .args(args)
        .env_remove("IMAGE_COMPAT_CONFIG")
        .env_remove("IMAGE_COMPAT_LOG_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run image-compat");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        // A hook that exits before reading all of stdin is not an error here.
        let _ = stdin.write_all(state.as_bytes());
    }
    child.wait_with_output().expect("wait")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether the decision line has `name="value"`.
fn field(err: &str, name: &str, value: &str) -> bool {
    err.contains(&format!("{name}=\"{value}\""))
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Blocking process runs inside the registry's async test: on a worker of their own.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("join")
}

fn crio(name: &str) -> serde_json::Value {
    serde_json::json!({
        "io.kubernetes.cri-o.Image": name,
        "io.kubernetes.cri-o.ImageName": name,
        "io.kubernetes.cri-o.ImageRef": "84e0bad94bb6db570c1fa3b1cb62c41899683c26315f3e6a80cc8b89eb3495d4",
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.pod.namespace": "default",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_refuses_incompatible_allows_compatible_and_caches() {
    let e = env().await;
    let config = e.config("");
    let bad = e.bundle("c-bad", crio(&e.incompatible.0));
    let ok = e.bundle(
        "c-ok",
        serde_json::json!({"io.kubernetes.cri.image-name": e.compatible.0}),
    );
    let (c, b) = (config.clone(), bad.clone());
    let out = blocking(move || hook(&c, &b)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "the reason alone: {err}");
    assert!(
        err.contains(&format!(
            "image-compat: image {} ({}) is not compatible with node test-node",
            e.incompatible.0, e.incompatible.1
        )) && err.contains("vfio-pci"),
        "{err}"
    );
    let (c, o) = (config.clone(), ok.clone());
    let out = blocking(move || hook(&c, &o)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(field(&err, "verdict", "compatible"), "{err}");
    assert!(field(&err, "answer", "fetched"), "{err}");

    // Again: both answered from the cache, the registry not asked.
    e.reg.clear_log();
    for (state, want) in [(bad, 1), (ok, 0)] {
        let c = config.clone();
        let out = blocking(move || hook(&c, &state)).await;
        let err = stderr(&out);
        assert_eq!(code(&out), want, "{err}");
        // A refusal's stderr is the reason alone (the runtime shows it); the decision line is
        // logged only where logs do not go to stderr.
        assert!(want == 1 || field(&err, "answer", "cached"), "{err}");
    }
    assert!(
        e.reg.requests().is_empty(),
        "registry asked: {:?}",
        e.reg.requests()
    );
    // The cached spec is evaluated again on the node's current features.
    std::fs::write(
        e.path("features.json"),
        r#"{"flags":{"kernel.loadedmodule":{"elements":{"vfio-pci":{}}}}}"#,
    )
    .expect("write");
    let (c, b) = (config.clone(), e.bundle("c-bad2", crio(&e.incompatible.0)));
    let out = blocking(move || hook(&c, &b)).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_allows_and_logs_a_warning() {
    let e = env().await;
    let config = e.config("mode: audit\n");
    let state = e.bundle("c1", crio(&e.incompatible.0));
    let out = blocking(move || hook(&config, &state)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("WARN") && err.contains("incompatible") && err.contains("vfio-pci"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_bundle_found_through_containers_storage() {
    let e = env().await;
    let config = e.config("");
    // podman's layout: the bundle is the container's directory in the store, and
    // config.json names no image.
    let graph = e.path("storage");
    let cid = "f00dfeed".repeat(8);
    let image_id = "84e0bad94bb6db570c1fa3b1cb62c41899683c26315f3e6a80cc8b89eb3495d4";
    let bundle = graph.join(format!("overlay-containers/{cid}/userdata"));
    std::fs::create_dir_all(&bundle).expect("mkdir");
    std::fs::create_dir_all(graph.join("overlay-images")).expect("mkdir");
    let meta =
        serde_json::json!({"image-name": e.incompatible.0, "image-id": image_id, "name": "x"});
    std::fs::write(
        graph.join("overlay-containers/containers.json"),
        serde_json::json!([{"id": cid, "names": ["x"], "image": image_id, "layer": "l1", "metadata": meta.to_string()}]).to_string(),
    )
    .expect("write");
    std::fs::write(
        graph.join("overlay-images/images.json"),
        serde_json::json!([{"id": image_id, "digest": e.incompatible.1, "names": [e.incompatible.0], "big-data-names": [format!("manifest-{}", e.incompatible.1), "manifest"]}]).to_string(),
    )
    .expect("write");
    std::fs::write(
        bundle.join("config.json"),
        serde_json::json!({"ociVersion": "1.0.2-dev", "root": {"path": graph.join("overlay/l1/merged")}, "annotations": {"io.container.manager": "libpod", "io.podman.annotations.autoremove": "FALSE"}}).to_string(),
    )
    .expect("write");
    let state = serde_json::json!({"ociVersion": "1.0.2-dev", "id": cid, "status": "creating", "pid": 1, "bundle": bundle}).to_string();
    e.reg.clear_log();
    let out = blocking(move || hook(&config, &state)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("is not compatible") && err.contains("vfio-pci"),
        "{err}"
    );
    // Looked up by the digest the store recorded, not by the tag.
    let paths: Vec<String> = e.reg.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with(&format!("/manifests/{}", e.incompatible.1))),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.ends_with("/manifests/1")),
        "{paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_decided_by_on_unknown_image() {
    let e = env().await;
    let allow = e.config("");
    let no_image = e.bundle(
        "c-none",
        serde_json::json!({"io.kubernetes.pod.namespace": "default"}),
    );
    let missing_bundle = serde_json::json!({"ociVersion": "1.0.2", "id": "c-gone", "status": "creating", "bundle": e.path("no-such-bundle")}).to_string();
    let cases = [
        (
            "{\"ociVersion\":",
            "the container state on stdin is not valid JSON",
        ),
        ("{\"ociVersion\":\"1.0.2\",\"id\":\"x\"}", "has no bundle"),
        (
            missing_bundle.as_str(),
            "cannot read the bundle's config.json",
        ),
        (no_image.as_str(), "config.json has no image annotation"),
    ];
    for (state, why) in cases {
        let (c, s) = (allow.clone(), state.to_string());
        let out = blocking(move || hook(&c, &s)).await;
        let err = stderr(&out);
        assert_eq!(
            code(&out),
            0,
            "default onUnknownImage: allow, with a warning: {err}"
        );
        assert!(err.contains("WARN") && err.contains(why), "{why}: {err}");
    }
    let deny = e.config("onUnknownImage: deny\n");
    for (state, why) in cases {
        let (c, s) = (deny.clone(), state.to_string());
        let out = blocking(move || hook(&c, &s)).await;
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "{err}");
        assert!(
            err.contains("could not be checked on node test-node")
                && err.contains(why)
                && err.contains("(onUnknownImage: deny)"),
            "{why}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_cache_is_a_warning_not_a_failure() {
    let e = env().await;
    let file = e.path("a-file");
    std::fs::write(&file, "").expect("write");
    let config = e.path("config-nocache.yaml");
    std::fs::write(
        &config,
        format!(
            "nodeName: test-node\nregistry: {{plainHttp: ['{}']}}\nfeatures: {{file: {}}}\ncache: {{dir: {}}}\n",
            e.reg.host,
            e.path("features.json").display(),
            file.join("cache").display()
        ),
    )
    .expect("write");
    for (state, want) in [
        (e.bundle("c1", crio(&e.incompatible.0)), 1),
        (e.bundle("c2", crio(&e.compatible.0)), 0),
    ] {
        let c = config.clone();
        let out = blocking(move || hook(&c, &state)).await;
        let err = stderr(&out);
        assert_eq!(code(&out), want, "{err}");
        assert!(
            err.contains("checking without the cache") && err.contains("a-file/cache"),
            "{err}"
        );
    }
    // A corrupt entry is a warning and a registry round trip.
    let config = e.config("");
    let state = e.bundle("c3", crio(&e.compatible.0));
    let (c, s) = (config.clone(), state.clone());
    assert_eq!(code(&blocking(move || hook(&c, &s)).await), 0);
    let answers = e.path("cache/v2/answers");
    for f in std::fs::read_dir(&answers).expect("answers") {
        std::fs::write(f.expect("entry").path(), "{\"key\":").expect("write");
    }
    let out = blocking(move || hook(&config, &state)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("is not valid") && field(&err, "answer", "fetched"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_failures_follow_policy_and_are_remembered() {
    let e = env().await;
    // The registry is slower than the deadline.
    e.reg
        .behave(|b| b.delay = Some(("/v2/".into(), Duration::from_secs(5))));
    let config = e.config("deadline: 300ms\n");
    let state = e.bundle("c1", crio(&e.incompatible.0));
    let (c, s) = (config.clone(), state.clone());
    let started = Instant::now();
    let out = blocking(move || hook(&c, &s)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "onRegistryError: allow by default: {err}");
    assert!(err.contains("deadline-exceeded"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Within errorTtl the failure is the answer: no wait.
    let (c, s) = (config.clone(), state.clone());
    let started = Instant::now();
    let out = blocking(move || hook(&c, &s)).await;
    assert!(field(&stderr(&out), "answer", "cached"), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // onRegistryError: deny refuses, with the policy named (errorTtl 0s: asked again).
    let deny = e.config_with("deadline: 300ms\nonRegistryError: deny\n", ", errorTtl: 0s");
    let out = blocking(move || hook(&deny, &state)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("no answer from the registry within 300ms")
            && err.contains("(onRegistryError: deny)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_without_artifact_and_exemptions() {
    let e = env().await;
    let config = e.config("exemptImages: ['*/hook/bad:*']\n");
    let plain = e.bundle("c1", crio(&e.plain.0));
    let exempt = e.bundle("c2", crio(&e.incompatible.0));
    let out = blocking(move || hook(&config, &plain)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("no-artifact"), "{err}");
    let config = e.config("exemptImages: ['*/hook/bad:*']\n");
    let out = blocking(move || hook(&config, &exempt)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(err.contains("is exempt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hook_processes_share_the_cache() {
    let e = env().await;
    let config = e.config("");
    e.reg.clear_log();
    let states: Vec<(String, i32)> = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                (e.bundle(&format!("c{i}"), crio(&e.incompatible.0)), 1)
            } else {
                (e.bundle(&format!("c{i}"), crio(&e.compatible.0)), 0)
            }
        })
        .collect();
    let outs = blocking(move || {
        let children: Vec<_> = states
            .into_iter()
            .map(|(s, want)| {
                let c = config.clone();
                (std::thread::spawn(move || hook(&c, &s)), want)
            })
            .collect();
        children
            .into_iter()
            .map(|(h, want)| (h.join().expect("join"), want))
            .collect::<Vec<_>>()
    })
    .await;
    for (out, want) in outs {
        assert_eq!(code(&out), want, "{}", stderr(&out));
        assert!(!stderr(&out).contains("is not valid"), "{}", stderr(&out));
        // Opening the store at the same time as the others must not fail it.
        assert!(
            !stderr(&out).contains("without the cache"),
            "{}",
            stderr(&out)
        );
    }
    let entries: Vec<_> = std::fs::read_dir(e.path("cache/v2/answers"))
        .expect("answers")
        .map(|f| f.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "one entry per digest, no temporary files: {entries:?}"
    );
    // Twelve containers, two images: two registry lookups; the other hooks waited for them.
    let resolves: Vec<String> = e
        .reg
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.ends_with("/manifests/1"))
        .collect();
    assert_eq!(resolves.len(), 2, "{resolves:?}");
}

#[test]
fn config_errors_exit_2() {
    let t = tempfile::tempdir().expect("tempdir");
    let bad = t.path().join("bad.yaml");
    std::fs::write(&bad, "mode: block\n").expect("write");
    let out = hook(&bad, "{}");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("mode"), "{}", stderr(&out));
    let out = hook(&t.path().join("missing.yaml"), "{}");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.yaml"), "{}", stderr(&out));
}

/// The answer files under `cache/v2/answers`, with the key each holds.
fn entries(e: &Env) -> Vec<(PathBuf, serde_json::Value)> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(e.path("cache/v2/answers")).expect("answers") {
        let p = f.expect("entry").path();
        if let Ok(v) = serde_json::from_slice(&std::fs::read(&p).unwrap_or_default()) {
            out.push((p, v));
        }
    }
    out
}

/// The entry whose key names `image`.
fn entry_of(e: &Env, image: &str) -> (PathBuf, serde_json::Value) {
    entries(e)
        .into_iter()
        .find(|(_, v)| v["key"].as_str().is_some_and(|k| k.contains(image)))
        .unwrap_or_else(|| panic!("no cache entry for {image}"))
}

/// A cache directory someone else could have written is not used: another user's, or one that
/// group or others can write. The hook says so and decides without it, as with a clean cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_directory_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let e = env().await;
    let config = e.config("");
    let cache = e.path("cache");
    let mut cases = vec![
        (0o777, None, "others can write it"),
        (0o770, None, "others can write it"),
    ];
    if unsafe { libc::geteuid() } == 0 {
        cases.push((0o700, Some(65534), "belongs to uid 65534"));
    }
    for (mode, owner, why) in cases {
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::create_dir(&cache).expect("mkdir");
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(mode)).expect("chmod");
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&cache, Some(uid), Some(uid)).expect("chown");
        }
        for (image, want) in [(&e.incompatible.0, 1), (&e.compatible.0, 0)] {
            let (c, s) = (config.clone(), e.bundle("c-unsafe", crio(image)));
            let out = blocking(move || hook(&c, &s)).await;
            let err = stderr(&out);
            assert_eq!(code(&out), want, "mode {mode:o}: {err}");
            if want == 0 {
                assert!(
                    err.contains("checking without the cache") && err.contains(why),
                    "mode {mode:o}: {err}"
                );
            }
        }
        assert!(
            !cache.join("v2/answers").exists()
                || std::fs::read_dir(cache.join("v2/answers"))
                    .expect("ls")
                    .count()
                    == 0,
            "mode {mode:o}: an answer was written to an unsafe cache"
        );
    }
}

/// Entries planted in the cache: a symbolic link (to a file the hook must not touch, or to
/// /dev/zero), a device, and an answer written under other settings or for another image. None is
/// followed, read without bound, or served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_cache_entries_are_never_followed_or_served() {
    let e = env().await;
    let config = e.config("");
    let run = |image: &str| {
        let (c, s) = (config.clone(), e.bundle("c-planted", crio(image)));
        async move { blocking(move || hook(&c, &s)).await }
    };
    assert_eq!(code(&run(&e.compatible.0).await), 0);
    assert_eq!(code(&run(&e.incompatible.0).await), 1);
    let (ok_entry, ok_saved) = entry_of(&e, "hook/ok");
    let (bad_entry, bad_saved) = entry_of(&e, "hook/bad");

    // A link to a file someone cares about: not read, not written through, replaced.
    let precious = e.path("precious");
    std::fs::write(&precious, "root-owned contents").expect("write");
    std::fs::remove_file(&ok_entry).expect("rm");
    std::os::unix::fs::symlink(&precious, &ok_entry).expect("symlink");
    let out = run(&e.compatible.0).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("symbolic link") && field(&err, "answer", "fetched"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).expect("read"),
        "root-owned contents"
    );
    assert!(!std::fs::symlink_metadata(&ok_entry)
        .expect("entry")
        .file_type()
        .is_symlink());

    // A link to /dev/zero, and (as root) a character device in place of the entry: refused at
    // once, never read until memory runs out.
    let mut specials = vec!["link"];
    if unsafe { libc::geteuid() } == 0 {
        specials.push("device");
    }
    for special in specials {
        std::fs::remove_file(&ok_entry).expect("rm");
        if special == "link" {
            std::os::unix::fs::symlink("/dev/zero", &ok_entry).expect("symlink");
        } else {
            let c = std::ffi::CString::new(ok_entry.to_str().expect("utf-8")).expect("path");
            // SAFETY: a valid NUL-terminated path; mknod only creates the node (1,5: zero).
            assert_eq!(
                unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 5)) },
                0
            );
        }
        let started = Instant::now();
        let out = run(&e.compatible.0).await;
        let err = stderr(&out);
        assert_eq!(code(&out), 0, "{special}: {err}");
        assert!(field(&err, "answer", "fetched"), "{special}: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{special}");
    }

    // The compatible image's answer planted as the incompatible one's: under another scope
    // (the settings that wrote it), or under another key; both are misses, so the image is
    // refused as with a clean cache.
    for (field_name, value) in [
        ("scope", "someone else's settings"),
        ("key", "another/image@sha256:00"),
    ] {
        let mut planted = bad_saved.clone();
        planted["answer"] = ok_saved["answer"].clone();
        planted[field_name] = value.into();
        std::fs::write(&bad_entry, planted.to_string()).expect("plant");
        let out = run(&e.incompatible.0).await;
        assert_eq!(code(&out), 1, "planted {field_name}: {}", stderr(&out));
    }
    // The same file with the right scope and key is served (the plant above was real).
    let mut planted = bad_saved.clone();
    planted["answer"] = ok_saved["answer"].clone();
    std::fs::write(&bad_entry, planted.to_string()).expect("plant");
    let out = run(&e.incompatible.0).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// A bundle whose config.json is a FIFO nobody writes, or /dev/zero: refused at once (size 0 by
/// its metadata says nothing of what a read returns), decided by onUnknownImage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_json_that_is_not_a_file_never_blocks_the_hook() {
    let e = env().await;
    let deny = e.config("onUnknownImage: deny\n");
    for special in ["fifo", "dev-zero"] {
        let b = e.path(&format!("bundles/{special}"));
        std::fs::create_dir_all(&b).expect("mkdir");
        let config = b.join("config.json");
        if special == "fifo" {
            let c = std::ffi::CString::new(config.to_str().expect("utf-8")).expect("path");
            // SAFETY: a valid NUL-terminated path; mkfifo only creates the FIFO.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        } else {
            std::os::unix::fs::symlink("/dev/zero", &config).expect("symlink");
        }
        let state = serde_json::json!({"ociVersion": "1.0.2", "id": special, "status": "creating", "bundle": b}).to_string();
        let c = deny.clone();
        let started = Instant::now();
        let out = blocking(move || hook(&c, &state)).await;
        let err = stderr(&out);
        assert!(started.elapsed() < Duration::from_secs(10), "{special}");
        assert_eq!(code(&out), 1, "{special}: {err}");
        assert!(
            err.contains("cannot read the bundle's config.json")
                && err.contains("(onUnknownImage: deny)"),
            "{special}: {err}"
        );
    }
}

/// Text from the image author (a rule name with an escape sequence and a line break) reaches
/// the refusal the runtime shows escaped: one line, no terminal control sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_text_in_a_refusal_is_escaped() {
    let e = env().await;
    let spec = "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: \"vfio\\e[31m\\nimage-compat: FAKE all is fine\"\n    matchFeatures:\n    - feature: kernel.loadedmodule\n      matchExpressions:\n        vfio-pci: {op: Exists}\n";
    let (image, _) = e
        .reg
        .push_image_with_spec("hook/escape", "1", Some(spec.as_bytes()))
        .await;
    let (c, s) = (e.config(""), e.bundle("c-esc", crio(&image)));
    let out = blocking(move || hook(&c, &s)).await;
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(
        err.contains("vfio\\u{1b}[31m\\nimage-compat: FAKE"),
        "{err}"
    );
}
