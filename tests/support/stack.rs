//! The real registry stack for tests: docker-registry and oras via integration/lib/install.sh.
//!
//! The prefix comes from `IMAGE_COMPAT_STACK` when set; each test gets its own registry on a
//! free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Binaries of the real stack.
pub struct Stack {
    pub registry: PathBuf,
    pub oras: PathBuf,
}

/// The stack, or `None` after printing why the calling test is skipped.
pub fn stack() -> Option<&'static Stack> {
    static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();
    match STACK.get_or_init(find_stack) {
        Ok(s) => Some(s),
        Err(why) => {
            eprintln!("SKIPPED: real registry stack unavailable: {why}");
            None
        }
    }
}

fn find_stack() -> Result<Stack, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("integration/lib/install.sh"))
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run integration/lib/install.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "integration/lib/install.sh failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let prefix = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    let prefix = PathBuf::from(prefix);
    let stack = Stack {
        registry: prefix.join("registry/usr/bin/docker-registry"),
        oras: prefix.join("oras/usr/bin/oras"),
    };
    for b in [&stack.registry, &stack.oras] {
        if !b.is_file() {
            return Err(format!("{} is missing", b.display()));
        }
    }
    Ok(stack)
}

/// A docker-registry (Distribution 2.8) on 127.0.0.1, deletes enabled, killed on drop.
pub struct DockerRegistry {
    pub host: String,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl DockerRegistry {
    pub fn start(stack: &Stack) -> Self {
        Self::start_with(stack, None)
    }

    /// A registry that wants Basic credentials: `htpasswd` is one `user:bcrypt-hash` line.
    pub fn start_with_htpasswd(stack: &Stack, htpasswd: &str) -> Self {
        Self::start_with(stack, Some(htpasswd))
    }

    fn start_with(stack: &Stack, htpasswd: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some(line) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{line}\n")).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(&stack.registry)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = DockerRegistry { host, child, dir };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!(
            "docker-registry did not listen on {} in time; log:\n{log}",
            self.host
        );
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The oras CLI with a private HOME (no docker config of the machine).
pub struct Oras {
    bin: PathBuf,
    pub home: tempfile::TempDir,
}

impl Oras {
    pub fn new(stack: &Stack) -> Self {
        Oras {
            bin: stack.oras.clone(),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn try_run(&self, args: &[&str], cwd: &Path) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(cwd)
            .env("HOME", self.home.path())
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run oras")
    }

    /// Runs oras and returns stdout; panics with stderr when it fails.
    pub fn run(&self, args: &[&str], cwd: &Path) -> String {
        let out = self.try_run(args, cwd);
        assert!(
            out.status.success(),
            "oras {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn run_json(&self, args: &[&str], cwd: &Path) -> serde_json::Value {
        let out = self.run(args, cwd);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("oras {args:?}: not JSON ({e}): {out}"))
    }
}

/// Content for tests, put in place with oras (every helper runs in `dir`, the test's files).
impl Oras {
    /// Pushes a one-layer linux image for `arch` to `reference`; returns its manifest digest.
    pub fn push_image(&self, reference: &str, arch: &str, dir: &Path) -> String {
        let config = format!("config-{arch}.json");
        std::fs::write(
            dir.join(&config),
            format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#),
        )
        .expect("write");
        let layer = format!("layer-{arch}.txt");
        std::fs::write(dir.join(&layer), format!("files for {arch}\n")).expect("write");
        self.run(
            &[
                "push",
                "--plain-http",
                reference,
                "--config",
                &format!("{config}:application/vnd.oci.image.config.v1+json"),
                &format!("{layer}:application/vnd.oci.image.layer.v1.tar"),
            ],
            dir,
        );
        self.digest_of(reference, dir)
    }

    /// The digest `reference` points at.
    pub fn digest_of(&self, reference: &str, dir: &Path) -> String {
        let desc = self.run_json(
            &[
                "manifest",
                "fetch",
                "--plain-http",
                "--descriptor",
                reference,
            ],
            dir,
        );
        desc["digest"].as_str().expect("digest").to_string()
    }

    /// `oras attach` of `content`, written to `file` under `dir`, as the one layer of type
    /// `layer_type`; returns the artifact's digest.
    pub fn attach(
        &self,
        reference: &str,
        artifact_type: &str,
        (file, content): (&str, &str),
        layer_type: &str,
        dir: &Path,
    ) -> String {
        std::fs::write(dir.join(file), content).expect("write");
        let out = self.run_json(
            &[
                "attach",
                "--plain-http",
                "--format",
                "json",
                "--artifact-type",
                artifact_type,
                reference,
                &format!("{file}:{layer_type}"),
            ],
            dir,
        );
        out["digest"].as_str().expect("digest").to_string()
    }

    /// (digest, artifactType) of the referrers `oras discover` lists, sorted.
    pub fn referrers(&self, reference: &str, dir: &Path) -> Vec<(String, String)> {
        let out = self.run_json(
            &["discover", "--plain-http", "--format", "json", reference],
            dir,
        );
        let mut list: Vec<(String, String)> = out["referrers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        (
                            r["digest"].as_str().unwrap_or_default().to_string(),
                            r["artifactType"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        list.sort();
        list
    }
}

/// What a real-registry test starts from: its own registry, oras, and a scratch directory.
pub struct RegistryEnv {
    pub reg: DockerRegistry,
    pub oras: Oras,
    pub work: tempfile::TempDir,
}

impl RegistryEnv {
    /// `None` (after printing why) when the stack is unavailable.
    pub fn start() -> Option<Self> {
        let stack = stack()?;
        Some(RegistryEnv {
            reg: DockerRegistry::start(stack),
            oras: Oras::new(stack),
            work: tempfile::tempdir().expect("tempdir"),
        })
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }

    /// `HOST/name` in this registry.
    pub fn r(&self, name: &str) -> String {
        format!("{}/{name}", self.reg.host)
    }

    /// A linux/amd64 + linux/arm64 index at `repo:tag` (its images tagged `linux-amd64` and
    /// `linux-arm64`); returns the (index, amd64, arm64) digests.
    pub fn push_index(&self, repo: &str, tag: &str) -> (String, String, String) {
        let amd =
            (self.oras).push_image(&self.r(&format!("{repo}:linux-amd64")), "amd64", self.dir());
        let arm =
            (self.oras).push_image(&self.r(&format!("{repo}:linux-arm64")), "arm64", self.dir());
        let index = self.r(&format!("{repo}:{tag}"));
        self.oras.run(
            &[
                "manifest",
                "index",
                "create",
                "--plain-http",
                &index,
                "linux-amd64",
                "linux-arm64",
            ],
            self.dir(),
        );
        (self.oras.digest_of(&index, self.dir()), amd, arm)
    }
}
