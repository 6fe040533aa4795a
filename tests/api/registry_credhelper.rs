//! Docker credential helpers (`credHelpers`, `credsStore` -> `docker-credential-<name> get`).
//!
//! The client finds helpers on PATH, which is process-wide, and the other tests of this binary
//! start programs concurrently: so the scenario runs in a child process, this test binary
//! running this one test alone, with the fake helper's directory first on the child's PATH.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use image_compat::registry::{
    Client, ErrorKind, Platform, Reference, RegistryConfig, RegistryError,
};
use serde_json::json;
use support::oci_server::{AuthMode, Behaviour, TestRegistry};

/// Set only in the child: the directory, first on its PATH, to write the fake helper into.
const HELPER_DIR: &str = "IMAGE_COMPAT_TEST_CREDHELPER_DIR";

#[test]
fn credential_helpers_and_stores() {
    match std::env::var_os(HELPER_DIR) {
        None => run_in_child(),
        Some(bin) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime builds")
            .block_on(credential_helpers_scenario(Path::new(&bin))),
    }
}

/// Runs `credential_helpers_and_stores` again, alone, in a child process with the helper's
/// directory on PATH; fails unless the child ran the scenario and it passed.
fn run_in_child() {
    let bin = tempfile::tempdir().expect("tempdir");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The test's name in this binary: its module path without the crate.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::credential_helpers_and_stores");
    let out = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env("PATH", path)
        .env(HELPER_DIR, bin.path())
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} in a child process ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn credential_helpers_scenario(bin: &Path) {
    let private = TestRegistry::start_with(Behaviour {
        auth: AuthMode::Basic {
            username: "carol".into(),
            password: "from-helper".into(),
        },
        ..Behaviour::default()
    })
    .await;
    let public = TestRegistry::start().await;
    private.push_image("app", Some("v1"), "linux", "amd64");
    public.push_image("app", Some("v1"), "linux", "amd64");

    let helper = bin.join("docker-credential-imgcompat-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread server\nif [ \"$server\" = \"{}\" ]; then\n  echo '{{\"ServerURL\":\"'$server'\",\"Username\":\"carol\",\"Secret\":\"from-helper\"}}'\nelse\n  echo 'credentials not found in native keychain'\n  exit 1\nfi\n",
            private.host
        ),
    )
    .expect("write helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let dir = tempfile::tempdir().expect("tempdir");
    let client_with = |config: serde_json::Value| {
        let file = dir
            .path()
            .join(format!("config-{}.json", rand_suffix(&config)));
        std::fs::write(&file, config.to_string()).expect("write config");
        Client::new(RegistryConfig {
            plain_http: vec![private.host.clone(), public.host.clone()],
            docker_config: Some(file),
            request_timeout: Duration::from_secs(5),
            ..RegistryConfig::without_credential_files()
        })
        .expect("client")
    };
    let platform = Platform::parse("linux/amd64").expect("platform");
    let private_ref = Reference::parse(&format!("{}/app:v1", private.host)).expect("ref");
    let public_ref = Reference::parse(&format!("{}/app:v1", public.host)).expect("ref");

    // credHelpers names the helper for one registry.
    let c = client_with(json!({"credHelpers": {private.host.clone(): "imgcompat-test"}}));
    assert!(c
        .fetch_spec(&private_ref, &platform)
        .await
        .expect("fetch")
        .is_none());
    assert!(private.requests().iter().any(|l| l.authorization.is_some()));

    // credsStore serves every registry; "credentials not found" means anonymous.
    let c = client_with(json!({"credsStore": "imgcompat-test"}));
    assert!(c
        .fetch_spec(&private_ref, &platform)
        .await
        .expect("fetch")
        .is_none());
    assert!(c
        .fetch_spec(&public_ref, &platform)
        .await
        .expect("fetch")
        .is_none());

    // A helper that cannot be run is a credentials error naming the config file.
    let c = client_with(json!({"credsStore": "not-installed-anywhere"}));
    let err = c
        .fetch_spec(&private_ref, &platform)
        .await
        .expect_err("no helper");
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(matches!(err, RegistryError::Credentials { .. }), "{err}");
    assert!(err.to_string().contains("config-"), "{err}");
}

fn rand_suffix(v: &serde_json::Value) -> String {
    image_compat::registry::Digest::sha256_of(v.to_string().as_bytes()).hex()[..8].to_string()
}
