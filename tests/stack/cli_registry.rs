//! The registry commands as a user runs them, against the real docker-registry 2.8 and oras.
//!
//! NFD's walkthrough (write a spec, attach it, validate the node, discover, remove) done with
//! image-compat alone while oras checks every step, then each kind of bad input. Skipped, with
//! a message, when integration/lib/install.sh cannot provide the binaries.

use crate::support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::Digest as _;
use support::stack::{stack, DockerRegistry, Oras, RegistryEnv};

const ARTIFACT_TYPE: &str = "application/vnd.nfd.image-compatibility.v1alpha1";
const SPEC_LAYER: &str = "application/vnd.nfd.image-compatibility.spec.v1alpha1+yaml";
const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1";
/// NFD's documented example spec (vfio-pci, ip_tables, Intel/AMD with AVX, one of two NICs).
const SPEC: &str = "examples/vfio-cpu-nic.yaml";
/// A node that has all of it, and one that lacks vfio-pci and the NICs.
const MATCHING_NODE: &str = "examples/features/intel-vfio-nic.json";
const OTHER_NODE: &str = "examples/features/intel-vm.json";

type Env = RegistryEnv;

fn env() -> Option<Env> {
    RegistryEnv::start()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs image-compat in the project root with no ambient credentials or settings, feeding
/// `stdin` when given.
fn run_ic(args: &[&str], home: &Path, stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_image-compat"));
    cmd.args(args)
        .current_dir(root())
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("IMAGE_COMPAT_LOG")
        .env_remove("IMAGE_COMPAT_HOST_PREFIX")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("the binary runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("the binary runs")
}

/// The exit code, failing the test with both streams when it is not `expected`.
fn expect_code(out: &Output, expected: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(expected),
        "{what}: stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

impl RegistryEnv {
    /// `image-compat CMD --plain-http=HOST --image REF EXTRA...`
    fn ic(&self, cmd: &str, image: &str, extra: &[&str]) -> Output {
        let plain = format!("--plain-http={}", self.reg.host);
        let reference = self.r(image);
        let mut args = vec![cmd, plain.as_str(), "--image", reference.as_str()];
        args.extend_from_slice(extra);
        run_ic(&args, self.dir(), None)
    }

    fn oras(&self, args: &[&str]) -> String {
        self.oras.run(args, self.dir())
    }

    fn push_image(&self, name: &str) -> String {
        self.oras.push_image(&self.r(name), "amd64", self.dir())
    }

    fn referrers(&self, name: &str) -> Vec<(String, String)> {
        self.oras.referrers(&self.r(name), self.dir())
    }

    /// `oras attach` of (file name, content) as the one layer, of type `layer`.
    fn oras_attach(&self, name: &str, kind: &str, file: (&str, &str), layer: &str) -> String {
        let r = self.r(name);
        self.oras.attach(&r, kind, file, layer, self.dir())
    }

    /// Whether the registry still has the manifest `digest` in repository `repo`.
    fn has_manifest(&self, repo: &str, digest: &str) -> bool {
        self.oras
            .try_run(
                &[
                    "manifest",
                    "fetch",
                    "--plain-http",
                    &self.r(&format!("{repo}@{digest}")),
                ],
                self.dir(),
            )
            .status
            .success()
    }

    fn tags(&self, repo: &str) -> Vec<String> {
        let mut tags: Vec<String> = self
            .oras(&["repo", "tags", "--plain-http", &self.r(repo)])
            .lines()
            .map(String::from)
            .collect();
        tags.sort();
        tags
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

#[test]
fn nfd_walkthrough_attach_validate_discover_remove() {
    let Some(env) = env() else { return };
    let image = env.push_image("app:v1");

    // Attach: the digest on stdout, nothing on stderr (the spec has no warnings).
    let out = env.ic("attach-spec", "app:v1", &[SPEC]);
    expect_code(&out, 0, "attach-spec");
    assert_eq!(text(&out.stderr), "");
    let artifact = text(&out.stdout).trim().to_string();
    assert!(artifact.starts_with("sha256:"), "{artifact}");

    // oras sees exactly that artifact, with our spec as its layer.
    assert_eq!(
        env.referrers("app:v1"),
        vec![(artifact.clone(), ARTIFACT_TYPE.to_string())]
    );
    let manifest = env.oras.run_json(
        &[
            "manifest",
            "fetch",
            "--plain-http",
            &env.r(&format!("app@{artifact}")),
        ],
        env.dir(),
    );
    assert_eq!(manifest["subject"]["digest"], image.as_str());
    assert_eq!(manifest["layers"][0]["mediaType"], SPEC_LAYER);
    assert_eq!(
        manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "vfio-cpu-nic.yaml"
    );
    let pulled = env.dir().join("pulled");
    env.oras(&[
        "pull",
        "--plain-http",
        "-o",
        pulled.to_str().expect("utf-8 path"),
        &env.r(&format!("app@{artifact}")),
    ]);
    assert_eq!(
        std::fs::read(pulled.join("vfio-cpu-nic.yaml")).expect("pulled spec"),
        std::fs::read(root().join(SPEC)).expect("spec")
    );

    // A matching node: exit 0, the report names the image, its digest and the artifact.
    let out = env.ic("validate-node", "app:v1", &["--features", MATCHING_NODE]);
    expect_code(&out, 0, "validate-node on a matching node");
    let report = text(&out.stdout);
    assert!(
        report.starts_with(&format!(
            "image:    {} ({image})\nartifact: {artifact}\nverdict:  COMPATIBLE",
            env.r("app:v1")
        )),
        "{report}"
    );

    // A node that is not: exit 1 and the failing rule with what the node has instead.
    let out = env.ic("validate-node", "app:v1", &["--features", OTHER_NODE]);
    expect_code(&out, 1, "validate-node on another node");
    let report = text(&out.stdout);
    assert!(
        report.contains("verdict:  NOT COMPATIBLE: set \"my image requirements\" rule \"kernel and cpu\": kernel.loadedmodule: vfio-pci Exists did not match (vfio-pci is not present)"),
        "{report}"
    );
    let out = env.ic(
        "validate-node",
        "app:v1",
        &["--features", OTHER_NODE, "--output", "json"],
    );
    expect_code(&out, 1, "validate-node --output json");
    let v = json(&out);
    assert_eq!(v["compatible"], false);
    assert_eq!(v["image"], env.r("app:v1"));
    assert_eq!(v["digest"], image.as_str());
    assert_eq!(v["artifact"], artifact.as_str());

    // NFD's flag prints NFD's array, the same bytes as evaluating the file itself.
    let from_registry = env.ic(
        "validate-node",
        "app:v1",
        &["--features", OTHER_NODE, "--output-json"],
    );
    let from_file = run_ic(
        &[
            "evaluate",
            "--spec",
            SPEC,
            "--features",
            OTHER_NODE,
            "--output",
            "nfd-json",
        ],
        env.dir(),
        None,
    );
    expect_code(&from_file, 1, "evaluate");
    assert_eq!(from_registry.status.code(), from_file.status.code());
    assert_eq!(text(&from_registry.stdout), text(&from_file.stdout));

    // This node's own discovery agrees with evaluating a saved copy of it.
    let features = run_ic(&["features"], env.dir(), None);
    expect_code(&features, 0, "features");
    let saved = env.dir().join("this-node.json");
    std::fs::write(&saved, &features.stdout).expect("write");
    let saved = saved.to_str().expect("utf-8 path");
    let live = env.ic("validate-node", "app:v1", &[]);
    let offline = run_ic(
        &["evaluate", "--spec", SPEC, "--features", saved],
        env.dir(),
        None,
    );
    assert!(
        matches!(live.status.code(), Some(0 | 1)),
        "{}",
        text(&live.stderr)
    );
    assert_eq!(live.status.code(), offline.status.code());
    let verdict = |o: &Output| {
        text(&o.stdout)
            .lines()
            .find(|l| l.starts_with("verdict:"))
            .map(String::from)
    };
    assert_eq!(verdict(&live), verdict(&offline));
    assert!(verdict(&live).is_some());

    // discover: one artifact, used, on the image's manifest, found through the tag schema.
    let out = env.ic("discover", "app:v1", &[]);
    expect_code(&out, 0, "discover");
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with(&artifact))
        .unwrap_or_else(|| panic!("no row for {artifact}: {table}"));
    assert!(
        row.contains("manifest") && row.contains("tag-schema") && row.ends_with("<- used"),
        "{row}"
    );
    let out = env.ic("discover", "app:v1", &["--output", "json"]);
    let v = json(&out);
    assert_eq!(v["digest"], image.as_str());
    let list = v["artifacts"].as_array().expect("artifacts");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["digest"], artifact.as_str());
    assert_eq!(list[0]["subject"], image.as_str());
    assert_eq!(list[0]["subjectKind"], "platform-manifest");
    assert_eq!(list[0]["discovery"], "tag-schema");
    assert_eq!(list[0]["selected"], true);

    // validate-spec --image checks the artifact and its spec.
    let out = env.ic("validate-spec", "app:v1", &[]);
    expect_code(&out, 0, "validate-spec --image");
    assert!(
        text(&out.stdout).ends_with(&format!(
            "artifact {artifact}: valid nfd (1 compatibility set, 0 warnings)\n"
        )),
        "{}",
        text(&out.stdout)
    );

    // remove-spec: gone for image-compat and for oras; the image stays.
    let out = env.ic("remove-spec", "app:v1", &["--artifact", &artifact]);
    expect_code(&out, 0, "remove-spec");
    assert_eq!(text(&out.stdout), format!("removed {artifact}\n"));
    assert!(env.referrers("app:v1").is_empty());
    assert!(!env.has_manifest("app", &artifact));
    assert_eq!(env.oras.digest_of(&env.r("app:v1"), env.dir()), image);
    let out = env.ic("discover", "app:v1", &[]);
    assert!(
        text(&out.stdout).ends_with("no compatibility artifacts\n"),
        "{}",
        text(&out.stdout)
    );
    let out = env.ic("validate-node", "app:v1", &["--features", MATCHING_NODE]);
    expect_code(&out, 2, "validate-node after removal");
    assert!(
        text(&out.stderr).contains("no compatibility artifact"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn oras_attached_spec_is_used_and_other_referrers_survive_removal() {
    let Some(env) = env() else { return };
    let image = env.push_image("app:v1");
    let signature = env.oras_attach(
        "app:v1",
        SIGNATURE_TYPE,
        ("sig.txt", "signed\n"),
        "application/octet-stream",
    );
    let spec = std::fs::read_to_string(root().join(SPEC)).expect("spec");
    let by_oras = env.oras_attach("app:v1", ARTIFACT_TYPE, ("spec.yaml", &spec), SPEC_LAYER);

    let out = env.ic("validate-node", "app:v1", &["--features", MATCHING_NODE]);
    expect_code(&out, 0, "validate-node with the oras artifact");
    assert!(
        text(&out.stdout).contains(&format!("artifact: {by_oras}\n")),
        "{}",
        text(&out.stdout)
    );

    // Ours is newer (sub-second created vs oras's whole seconds): it wins. One dated in the
    // past by --annotation loses to both.
    let out = env.ic(
        "attach-spec",
        "app:v1",
        &["examples/preferred-fallback.yaml"],
    );
    expect_code(&out, 0, "attach-spec");
    let ours = text(&out.stdout).trim().to_string();
    let out = env.ic(
        "attach-spec",
        "app:v1",
        &[
            "--annotation",
            "org.opencontainers.image.created=2001-02-03T04:05:06Z",
            SPEC,
        ],
    );
    expect_code(&out, 0, "attach-spec --annotation");
    let old = text(&out.stdout).trim().to_string();
    let mut expected = vec![
        (signature.clone(), SIGNATURE_TYPE.to_string()),
        (by_oras.clone(), ARTIFACT_TYPE.to_string()),
        (ours.clone(), ARTIFACT_TYPE.to_string()),
        (old.clone(), ARTIFACT_TYPE.to_string()),
    ];
    expected.sort();
    assert_eq!(env.referrers("app:v1"), expected);
    let v = json(&env.ic("discover", "app:v1", &["-o", "json"]));
    let listed: Vec<(String, bool)> = v["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| {
            (
                a["digest"].as_str().unwrap_or_default().to_string(),
                a["selected"] == true,
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (ours.clone(), true),
            (by_oras.clone(), false),
            (old.clone(), false)
        ]
    );
    let created: Vec<&str> = v["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["created"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(created[2], "2001-02-03T04:05:06Z");

    // --all takes every compatibility artifact, and only them.
    let out = env.ic("remove-spec", "app:v1", &["--all", "-o", "json"]);
    expect_code(&out, 0, "remove-spec --all");
    let mut removed: Vec<String> = json(&out)["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(|d| d.as_str().unwrap_or_default().to_string())
        .collect();
    removed.sort();
    let mut all = vec![ours.clone(), by_oras.clone(), old.clone()];
    all.sort();
    assert_eq!(removed, all);
    assert_eq!(
        env.referrers("app:v1"),
        vec![(signature.clone(), SIGNATURE_TYPE.to_string())]
    );
    assert!(env.has_manifest("app", &signature));
    for gone in [&ours, &by_oras, &old] {
        assert!(!env.has_manifest("app", gone), "{gone} is still there");
    }
    assert_eq!(env.oras.digest_of(&env.r("app:v1"), env.dir()), image);
    // The fallback index still holds the signature under the subject's tag.
    assert_eq!(env.tags("app"), vec![image.replace(':', "-"), "v1".into()]);
}

#[test]
fn platform_attach_on_a_multi_platform_index() {
    let Some(env) = env() else { return };
    let (_, _, arm) = env.push_index("app", "v1");
    let out = env.ic(
        "attach-spec",
        "app:v1",
        &["--platform", "linux/arm64", SPEC, "--output", "json"],
    );
    expect_code(&out, 0, "attach-spec --platform");
    let v = json(&out);
    assert_eq!(v["subject"], arm.as_str());
    assert_eq!(v["subjectKind"], "platform-manifest");
    assert_eq!(v["discovery"], "tag-schema");
    let artifact = v["digest"].as_str().expect("digest").to_string();
    assert_eq!(
        env.referrers(&format!("app@{arm}")),
        vec![(artifact.clone(), ARTIFACT_TYPE.to_string())]
    );

    let out = env.ic(
        "validate-node",
        "app:v1",
        &["--platform", "linux/arm64", "--features", MATCHING_NODE],
    );
    expect_code(&out, 0, "validate-node --platform linux/arm64");
    assert!(text(&out.stdout).contains(&artifact));
    let out = env.ic(
        "validate-node",
        "app:v1",
        &["--platform", "linux/amd64", "--features", MATCHING_NODE],
    );
    expect_code(&out, 2, "validate-node for the platform without a spec");
    assert!(
        text(&out.stderr).contains("no compatibility artifact"),
        "{}",
        text(&out.stderr)
    );
    let out = env.ic(
        "validate-node",
        "app:v1",
        &["--platform", "linux/s390x", "--features", MATCHING_NODE],
    );
    expect_code(&out, 2, "validate-node for a platform the index lacks");
    assert!(
        text(&out.stderr).contains("no manifest for platform linux/s390x in the index (available: linux/amd64, linux/arm64)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn invalid_spec_is_refused_and_nothing_is_pushed() {
    let Some(env) = env() else { return };
    let image = env.push_image("app:v1");
    let bad = env.dir().join("bad.yaml");
    let content = "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: gpu\n    matchFeatures:\n    - feature: pci.device\n      matchExpressions:\n        vendor: {op: Inn, value: [10de]}\n";
    std::fs::write(&bad, content).expect("write");
    let out = env.ic("attach-spec", "app:v1", &[bad.to_str().expect("utf-8")]);
    expect_code(&out, 2, "attach-spec of an invalid spec");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:8:17: error: ") && stderr.contains("invalid Op \"Inn\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid (1 error): nothing attached"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "");
    // Nothing reached the registry: no referrer, no fallback tag, no spec blob.
    assert!(env.referrers("app:v1").is_empty());
    assert_eq!(env.tags("app"), vec!["v1".to_string()]);
    let blob = format!("sha256:{}", hex::encode(sha2::Sha256::digest(content)));
    let fetched = env.oras.try_run(
        &[
            "blob",
            "fetch",
            "--plain-http",
            "--descriptor",
            &env.r(&format!("app@{blob}")),
        ],
        env.dir(),
    );
    assert!(!fetched.status.success(), "the spec blob was pushed");

    // A YAML syntax error is refused the same way.
    std::fs::write(&bad, "version: v1alpha1\ncompatibilities: [\n").expect("write");
    let out = env.ic("attach-spec", "app:v1", &[bad.to_str().expect("utf-8")]);
    expect_code(&out, 2, "attach-spec of broken YAML");
    assert!(
        text(&out.stderr).contains("not valid YAML or JSON"),
        "{}",
        text(&out.stderr)
    );

    // Warnings are shown, and do not stop the attach.
    std::fs::write(
        &bad,
        "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: cfg\n    matchFeatures:\n    - feature: kernel.config\n      matchExpressions:\n        NO_HZ: {op: In, value: [y]}\n",
    )
    .expect("write");
    let out = env.ic("attach-spec", "app:v1", &[bad.to_str().expect("utf-8")]);
    expect_code(&out, 0, "attach-spec with a warning");
    assert!(
        text(&out.stderr).contains("bad.yaml:8:33: warning: "),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.referrers("app:v1").len(), 1);
    assert_eq!(env.oras.digest_of(&env.r("app:v1"), env.dir()), image);
}

#[test]
fn bad_artifacts_in_the_registry_are_clear_errors() {
    let Some(env) = env() else { return };
    let features = ["--features", MATCHING_NODE];

    // Wrong layer media type.
    env.push_image("wrongtype:v1");
    let artifact = env.oras_attach(
        "wrongtype:v1",
        ARTIFACT_TYPE,
        ("spec.txt", "version: v1alpha1\n"),
        "text/plain",
    );
    let out = env.ic("validate-node", "wrongtype:v1", &features);
    expect_code(&out, 2, "validate-node, wrong layer type");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("compatibility artifact {artifact}: layer media type check failed: expected {SPEC_LAYER}, got text/plain")),
        "{stderr}"
    );
    let out = env.ic("validate-spec", "wrongtype:v1", &[]);
    expect_code(&out, 2, "validate-spec --image, wrong layer type");
    assert!(
        text(&out.stdout).contains("layer media type check failed"),
        "{}",
        text(&out.stdout)
    );

    // Invalid YAML in the layer.
    env.push_image("badyaml:v1");
    let artifact = env.oras_attach(
        "badyaml:v1",
        ARTIFACT_TYPE,
        ("spec.yaml", "version: v1alpha1\ncompatibilities: [\n"),
        SPEC_LAYER,
    );
    let out = env.ic("validate-node", "badyaml:v1", &features);
    expect_code(&out, 2, "validate-node, invalid YAML");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "invalid compatibility spec: artifact {artifact}: not valid YAML or JSON"
        )),
        "{stderr}"
    );

    // A well-formed artifact whose spec is invalid: the errors with their place.
    env.push_image("badspec:v1");
    let artifact = env.oras_attach(
        "badspec:v1",
        ARTIFACT_TYPE,
        ("spec.yaml", "version: v1alpha1\ncompatibilities:\n- rules:\n  - name: cpu\n    matchFeatures:\n    - feature: cpu.cpuid\n      matchName: {op: Gt, value: [five]}\n"),
        SPEC_LAYER,
    );
    // NFD's evaluation reaches the broken expression on this node (it has cpu.cpuid), so
    // validate-node has no answer, as `nfd compat validate-node` has none; `--strict` refuses
    // it before evaluating, with its place, as validate-spec does.
    let out = env.ic("validate-node", "badspec:v1", &features);
    expect_code(&out, 2, "validate-node, invalid spec");
    assert!(
        text(&out.stderr).contains(&format!(
            "artifact {artifact}: compatibility set 0, rule \"cpu\", feature \"cpu.cpuid\": not a number"
        )),
        "{}",
        text(&out.stderr)
    );
    let out = env.ic(
        "validate-node",
        "badspec:v1",
        &[&features[..], &["--strict"]].concat(),
    );
    expect_code(&out, 2, "validate-node --strict, invalid spec");
    assert!(
        text(&out.stderr).contains(&format!("artifact {artifact}:7:18: error: ")),
        "{}",
        text(&out.stderr)
    );
    let out = env.ic("validate-spec", "badspec:v1", &[]);
    expect_code(&out, 2, "validate-spec --image, invalid spec");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("artifact {artifact}: ok: OCI image manifest")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("artifact {artifact}:7:18: error: "))
            && stdout.ends_with(&format!(
                "artifact {artifact}: invalid (1 error, 0 warnings)\n"
            )),
        "{stdout}"
    );
    // Files and an image in one run: each reported, the worst decides.
    let out = env.ic("validate-spec", "app:none", &[SPEC]);
    expect_code(&out, 2, "validate-spec FILE --image missing");
    assert!(text(&out.stdout).starts_with(&format!("{SPEC}: valid")));
    assert!(
        text(&out.stderr).contains("not found in the registry"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn registry_failures_exit_2_with_the_reason() {
    let Some(env) = env() else { return };
    env.push_image("app:v1");
    let features = ["--features", MATCHING_NODE];

    let out = env.ic("validate-node", "app:v2", &features);
    expect_code(&out, 2, "missing tag");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: not found in the registry", env.r("app:v2")))
            && stderr.contains("MANIFEST_UNKNOWN"),
        "{stderr}"
    );

    let out = env.ic("validate-node", "app:v1", &features);
    expect_code(&out, 2, "no artifact");
    assert!(
        text(&out.stderr).contains("no compatibility artifact"),
        "{}",
        text(&out.stderr)
    );

    let out = env.ic("attach-spec", "app:v1", &[SPEC]);
    let artifact = text(&out.stdout).trim().to_string();
    let unknown = format!("sha256:{}", "0".repeat(64));
    let out = env.ic("remove-spec", "app:v1", &["--artifact", &unknown]);
    expect_code(&out, 2, "unknown --artifact");
    assert!(
        text(&out.stderr).contains(&format!(
            "{unknown} is not a compatibility artifact of this image (it has {artifact})"
        )),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(env.referrers("app:v1").len(), 1, "nothing was removed");

    let out = env.ic("remove-spec", "app:v1", &[]);
    expect_code(&out, 2, "remove-spec without a choice");
    assert!(
        text(&out.stderr).contains("--artifact DIGEST") && text(&out.stderr).contains("--all"),
        "{}",
        text(&out.stderr)
    );

    // HTTPS to a plain-HTTP registry says what to add.
    let reference = env.r("app:v1");
    let out = run_ic(
        &["discover", "--image", &reference, "--timeout", "5s"],
        env.dir(),
        None,
    );
    expect_code(&out, 2, "HTTPS to a plain-HTTP registry");
    assert!(
        text(&out.stderr).contains("add --plain-http"),
        "{}",
        text(&out.stderr)
    );

    // The registry goes away: every command says it cannot reach it.
    let Env { reg, oras, work } = env;
    let host = reg.host.clone();
    drop(reg);
    let env_down = |cmd: &str, extra: &[&str]| {
        let plain = format!("--plain-http={host}");
        let reference = format!("{host}/app:v1");
        let mut args = vec![cmd, plain.as_str(), "--image", reference.as_str()];
        args.extend_from_slice(extra);
        run_ic(&args, work.path(), None)
    };
    for (cmd, extra) in [
        ("validate-node", &features[..]),
        ("discover", &[][..]),
        ("attach-spec", &[SPEC][..]),
        ("remove-spec", &["--all"][..]),
        ("validate-spec", &[][..]),
    ] {
        let out = env_down(cmd, extra);
        expect_code(&out, 2, cmd);
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("cannot reach the registry {host}"))
                && stderr.contains("Connection refused"),
            "{cmd}: {stderr}"
        );
    }
    drop(oras);
}

#[test]
fn password_from_stdin_reaches_a_registry_that_wants_one() {
    let Some(stack) = stack() else { return };
    // bcrypt of "s3cret pw" (docker-registry's htpasswd wants bcrypt).
    let reg = DockerRegistry::start_with_htpasswd(
        stack,
        "alice:$2b$04$GIgL0g.XRrpdz606/PB9XO.hakx4muXjj7RRc2DsPTQ/el03C78Ju",
    );
    let work = tempfile::tempdir().expect("tempdir");
    let oras = Oras::new(stack);
    let image = format!("{}/app:v1", reg.host);
    oras.run(
        &[
            "login",
            "--plain-http",
            "-u",
            "alice",
            "-p",
            "s3cret pw",
            &reg.host,
        ],
        work.path(),
    );
    oras.push_image(&image, "amd64", work.path());

    let plain = format!("--plain-http={}", reg.host);
    let attach = |stdin: Option<&str>, creds: &[&str]| {
        let mut args = vec!["attach-spec", plain.as_str(), "--image", image.as_str()];
        args.extend_from_slice(creds);
        args.push(SPEC);
        run_ic(&args, work.path(), stdin)
    };
    let out = attach(None, &[]);
    expect_code(&out, 2, "no credentials");
    assert!(
        text(&out.stderr).contains("requires credentials"),
        "{}",
        text(&out.stderr)
    );
    let login = ["--registry-username", "alice", "--registry-password-stdin"];
    let out = attach(Some("wrong\n"), &login);
    expect_code(&out, 2, "wrong password");
    assert!(
        text(&out.stderr).contains("refused access"),
        "{}",
        text(&out.stderr)
    );
    // echo's newline is not part of the password; the space inside is.
    let out = attach(Some("s3cret pw\n"), &login);
    expect_code(&out, 0, "right password");
    let artifact = text(&out.stdout).trim().to_string();
    let out = run_ic(
        &[
            "validate-node",
            &plain,
            "--image",
            &image,
            "--features",
            MATCHING_NODE,
            "--registry-username",
            "alice",
            "--registry-password-stdin",
        ],
        work.path(),
        Some("s3cret pw\r\n"),
    );
    expect_code(&out, 0, "validate-node with a password");
    assert!(text(&out.stdout).contains(&artifact));

    // Both secrets on one stdin cannot be told apart: refused before anything is read.
    let out = run_ic(
        &[
            "validate-node",
            &plain,
            "--image",
            &image,
            "--registry-username",
            "alice",
            "--registry-password-stdin",
            "--registry-token-stdin",
        ],
        work.path(),
        Some("x\n"),
    );
    expect_code(&out, 2, "both stdin flags");
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}
