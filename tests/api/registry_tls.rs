//! TLS to a registry: unknown CAs refused, extra CA files and per-host skip-verify honoured.
//!
//! The server is `openssl s_server -WWW` serving a manifest file (or `-HTTP` serving whole
//! responses, for auth challenges); skipped without openssl.

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
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", "a".repeat(64)), "size": 2},
        "layers": []
    });
    start_serving("-WWW", &[("v2/app/manifests/v1", manifest.to_string())])
}

/// [`start`] with s_server's `mode` (`-WWW`: files are bodies; `-HTTP`: files are whole HTTP
/// responses) serving these files (path, content).
fn start_serving(mode: &str, files: &[(&str, String)]) -> Option<Server> {
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
    for (path, content) in files {
        let p = d.join(path);
        std::fs::create_dir_all(p.parent().expect("a file in a directory")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            mode,
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

/// An HTTPS registry whose bearer challenge names a plain-HTTP token service: the configured
/// credentials are not sent there (nothing even connects to it), and the error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_go_to_a_plain_http_realm() {
    use image_compat::registry::{Credentials, RegistryError};

    // Anything the client sent the realm would wait in this listener's backlog.
    let realm = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let realm_addr = realm.local_addr().expect("addr");
    realm.set_nonblocking(true).expect("nonblocking");
    let challenge = format!(
        "HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{realm_addr}/token\",service=\"reg\",scope=\"repository:app:pull\"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let Some(server) = start_serving("-HTTP", &[("v2/app/manifests/v1", challenge)]) else {
        return;
    };
    let r = Reference::parse(&format!("{}/app:v1", server.host)).expect("ref");
    let mut cfg = RegistryConfig {
        request_timeout: Duration::from_secs(5),
        ca_files: vec![server.dir.path().join("ca.pem")],
        ..RegistryConfig::without_credential_files()
    };
    cfg.credentials.insert(
        server.host.clone(),
        Credentials::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        },
    );
    let err = Client::new(cfg)
        .expect("client")
        .resolve(&r, &Platform::parse("linux/amd64").expect("platform"))
        .await
        .expect_err("refused");
    assert!(matches!(err, RegistryError::InsecureRealm { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(err.to_string().contains("clear text"), "{err}");
    assert!(realm.accept().is_err(), "the client connected to the realm");
}
