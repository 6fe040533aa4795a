//! TLS to a registry: unknown CAs refused, extra CA files and per-host skip-verify honoured.
//!
//! The server is `openssl s_server -WWW` serving a manifest file; skipped without openssl.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use image_compat::registry::{Client, ErrorKind, Platform, Reference, RegistryConfig};

struct Server {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and s_server serving `v2/app/...`.
fn start() -> Option<Server> {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=image-compat test CA",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ];
    for step in steps {
        if !openssl(d, step) {
            eprintln!("SKIPPED: openssl is unavailable or failed ({step:?})");
            return None;
        }
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", "a".repeat(64)), "size": 2},
        "layers": []
    });
    std::fs::create_dir_all(d.join("v2/app/manifests")).expect("mkdir");
    std::fs::write(d.join("v2/app/manifests/v1"), manifest.to_string()).expect("write");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-WWW",
            "-cert",
            "server.pem",
            "-key",
            "server.key",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let host = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&host).is_err() {
        if Instant::now() > deadline {
            eprintln!("SKIPPED: openssl s_server did not start");
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Server { child, host, dir })
}

#[tokio::test]
async fn tls_verification_ca_files_and_skip_verify() {
    let Some(server) = start() else { return };
    let r = Reference::parse(&format!("{}/app:v1", server.host)).expect("ref");
    let platform = Platform::parse("linux/amd64").expect("platform");
    let base = || RegistryConfig {
        request_timeout: Duration::from_secs(5),
        ..RegistryConfig::without_credential_files()
    };

    let err = Client::new(base())
        .expect("client")
        .resolve(&r, &platform)
        .await
        .expect_err("unknown CA");
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let ca = server.dir.path().join("ca.pem");
    let with_ca = Client::new(RegistryConfig {
        ca_files: vec![ca],
        ..base()
    })
    .expect("client");
    let resolved = with_ca
        .resolve(&r, &platform)
        .await
        .expect("trusted through the CA file");
    assert!(resolved.index.is_none());

    let insecure = Client::new(RegistryConfig {
        insecure_skip_verify: vec![server.host.clone()],
        ..base()
    })
    .expect("client");
    insecure.resolve(&r, &platform).await.expect("skip verify");

    // hosts.toml `ca`, relative to the hosts.toml file.
    let hosts = tempfile::tempdir().expect("tempdir");
    let host_dir = hosts.path().join(server.host.replace(':', "_") + "_");
    std::fs::create_dir_all(&host_dir).expect("mkdir");
    std::fs::copy(server.dir.path().join("ca.pem"), host_dir.join("my-ca.pem")).expect("copy");
    std::fs::write(
        host_dir.join("hosts.toml"),
        format!("server = \"https://{}\"\nca = \"my-ca.pem\"\n", server.host),
    )
    .expect("write");
    let via_hosts = Client::new(RegistryConfig {
        hosts_dir: Some(hosts.path().to_path_buf()),
        ..base()
    })
    .expect("client");
    via_hosts
        .resolve(&r, &platform)
        .await
        .expect("trusted through hosts.toml ca");
}
