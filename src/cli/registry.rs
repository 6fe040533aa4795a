//! Flags shared by the registry commands (image, platform, registry access) and their runtime.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use image_compat::config::RegistrySettings;
use image_compat::registry::{
    Client, Credentials, Discovery, ErrorKind, Platform, Reference, RegistryError, ResolvedImage,
    SubjectKind,
};

/// The image a command works on.
#[derive(Args, Clone)]
pub struct ImageArgs {
    /// The image (`registry/repository[:tag][@digest]`).
    #[arg(long, value_name = "REF")]
    pub image: String,
    #[command(flatten)]
    pub platform: PlatformArg,
}

#[derive(Args, Clone)]
pub struct PlatformArg {
    /// The platform whose manifest to use in a multi-platform image: os[/arch[/variant]]
    /// (default: this machine's; a missing arch is this machine's, as in NFD).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
}

impl PlatformArg {
    /// The platform asked for, else this machine's.
    pub fn platform(&self) -> anyhow::Result<Platform> {
        Ok(self.explicit()?.unwrap_or_else(Platform::host))
    }

    /// The platform asked for, if any.
    pub fn explicit(&self) -> anyhow::Result<Option<Platform>> {
        Ok(self
            .platform
            .as_deref()
            .map(Platform::parse_nfd)
            .transpose()?)
    }
}

impl ImageArgs {
    pub fn reference(&self) -> anyhow::Result<Reference> {
        Ok(Reference::parse(&self.image)?)
    }
}

/// How to reach registries. The same knobs as the plugin's `registry:` config section
/// (`RegistrySettings`), plus NFD's credential flags; secrets come only from stdin.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Registry access")]
pub struct RegistryArgs {
    /// Plain HTTP instead of HTTPS. Alone: for every registry (NFD's flag); `--plain-http=HOST`
    /// (with `=`, repeatable): for that host[:port] only.
    #[arg(
        long,
        value_name = "HOST",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "*"
    )]
    pub plain_http: Vec<String>,
    /// HTTPS without certificate verification for this host[:port] (repeatable; `*`: every host).
    #[arg(long, value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Trust the CA certificates (PEM) in FILE besides the system roots (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
    /// containerd registry config directory (`DIR/<host>/hosts.toml`: mirrors, CAs, plain
    /// HTTP), e.g. /etc/containerd/certs.d.
    #[arg(long, value_name = "DIR")]
    pub hosts_dir: Option<PathBuf>,
    /// Docker config file with credentials (default: $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json; containers' auth.json is read too).
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Registry user name; the password is read from stdin (--registry-password-stdin).
    #[arg(long, value_name = "NAME", requires = "registry_password_stdin")]
    pub registry_username: Option<String>,
    /// Read the registry password from stdin (with --registry-username).
    #[arg(
        long,
        requires = "registry_username",
        conflicts_with = "registry_token_stdin"
    )]
    pub registry_password_stdin: bool,
    /// Read a registry access token from stdin (sent as a bearer token).
    #[arg(long)]
    pub registry_token_stdin: bool,
    /// Time limit of each registry request, e.g. 10s or 500ms (default 30s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Time limit of the command's whole registry work, every request, page, mirror and
    /// artifact together, e.g. 1m (default 2m; audit: none unless given, each image has
    /// --image-deadline): a registry that answers each request just in time cannot hold the
    /// command for ever.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub deadline: Option<Duration>,
}

/// `--deadline` when not given: room for a few slow requests (each up to `--timeout`), pages
/// and mirrors, far less than a registry could take by answering one request at a time.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

impl RegistryArgs {
    /// The settings these flags describe, in the plugin config's shape.
    pub fn settings(&self) -> RegistrySettings {
        let mut plain_http = Vec::new();
        for host in &self.plain_http {
            // NFD's flag is a Go bool, so `--plain-http=true` / `=false` must keep their meaning.
            match host.as_str() {
                "true" => plain_http.push("*".to_string()),
                "false" => {}
                _ => plain_http.push(host.clone()),
            }
        }
        RegistrySettings {
            plain_http,
            insecure: self.insecure.clone(),
            ca_files: self.ca_file.clone(),
            hosts_dir: self.hosts_dir.clone(),
            auth_file: self.auth_file.clone(),
            timeout: self.timeout,
            ..RegistrySettings::default()
        }
    }

    /// A client for `image`'s registry; explicit credentials go to that registry only.
    pub fn client(&self, image: &Reference) -> anyhow::Result<Client> {
        let mut cfg = self.settings().client_config();
        let stdin_secret = || read_secret(std::io::stdin().lock());
        let credentials = match (&self.registry_username, self.registry_token_stdin) {
            (Some(username), _) if self.registry_password_stdin => Some(Credentials::Basic {
                username: username.clone(),
                password: stdin_secret().context("--registry-password-stdin")?,
            }),
            (_, true) => Some(Credentials::Bearer(
                stdin_secret().context("--registry-token-stdin")?,
            )),
            _ => None,
        };
        if let Some(c) = credentials {
            cfg.credentials.insert(image.registry().to_string(), c);
        }
        Ok(Client::new(cfg)?)
    }

    /// The command's overall registry deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline.unwrap_or(DEFAULT_DEADLINE)
    }

    /// Runs the command's registry calls (see [`block_on`]) under its `--deadline`.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> anyhow::Result<F::Output> {
        self.block_on_within(self.deadline(), fut)
    }

    /// Runs the registry calls under `--deadline` only when it is given: for a command whose
    /// work grows with its input and that bounds each item itself (audit: `--image-deadline`).
    pub fn block_on_if_asked<F: std::future::Future>(&self, fut: F) -> anyhow::Result<F::Output> {
        match self.deadline {
            Some(d) => self.block_on_within(d, fut),
            None => block_on(fut),
        }
    }

    fn block_on_within<F: std::future::Future>(
        &self,
        deadline: Duration,
        fut: F,
    ) -> anyhow::Result<F::Output> {
        block_on(async move {
            tokio::time::timeout(deadline, fut).await.map_err(|_| {
                anyhow::anyhow!(
                    "the registry work did not finish within {} (--deadline)",
                    humantime::format_duration(deadline)
                )
            })
        })?
    }
}

/// A secret piped on stdin, without the line end `echo` adds (NFD trims "\n", then "\r").
fn read_secret(mut input: impl Read) -> anyhow::Result<String> {
    let mut raw = String::new();
    input
        .read_to_string(&mut raw)
        .context("cannot read the secret from stdin")?;
    let secret = raw.strip_suffix('\n').unwrap_or(&raw);
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    anyhow::ensure!(!secret.is_empty(), "stdin is empty: no secret to use");
    Ok(secret.to_string())
}

/// Output of the listing commands (discover, attach-spec, remove-spec).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Lines for a person.
    #[default]
    Table,
    /// One JSON object, for scripts.
    Json,
}

/// Runs the registry calls of one command on a single-threaded runtime: a CLI run does one
/// thing at a time, and a thread pool would only add start-up time.
fn block_on<F: std::future::Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(fut))
}

/// A registry failure about `image`, led by what it means for the user.
pub fn registry_error(image: &Reference, e: RegistryError) -> anyhow::Error {
    let host = image.registry();
    let lead = match (&e, e.kind()) {
        // These name the image themselves.
        (RegistryError::NoMatchingPlatform { .. } | RegistryError::NotAnArtifactOfImage { .. }, _) => {
            return e.into()
        }
        (RegistryError::NotFound { .. }, _) => format!("{image}: not found in the registry"),
        (_, ErrorKind::Transport) if e.to_string().contains("https://") => format!(
            "{image}: cannot reach the registry {host} over HTTPS (for a plain-HTTP registry, add --plain-http)"
        ),
        (_, ErrorKind::Transport) => format!("{image}: cannot reach the registry {host}"),
        (_, ErrorKind::Timeout) => format!("{image}: the registry {host} is too slow"),
        (_, ErrorKind::Auth) => format!("{image}: the registry {host} refused access"),
        _ => image.to_string(),
    };
    anyhow::Error::new(e).context(lead)
}

/// Resolves the image, reporting a failure as a registry error about it.
pub async fn resolve(
    client: &Client,
    image: &Reference,
    platform: &Platform,
) -> anyhow::Result<ResolvedImage> {
    client
        .resolve(image, platform)
        .await
        .map_err(|e| registry_error(image, e))
}

/// `IMAGE (DIGEST)`, the image as resolved, for messages.
pub fn describe(image: &ResolvedImage) -> String {
    format!("{} ({})", image.reference, image.target().digest)
}

/// The names JSON output uses for a subject kind.
pub fn subject_kind(k: SubjectKind) -> &'static str {
    match k {
        SubjectKind::PlatformManifest => "platform-manifest",
        SubjectKind::Index => "index",
    }
}

/// The names JSON output uses for how an artifact is found.
pub fn discovery(d: Discovery) -> &'static str {
    match d {
        Discovery::ReferrersApi => "referrers-api",
        Discovery::TagSchema => "tag-schema",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        r: RegistryArgs,
        /// A positional after the flags, as attach-spec has.
        file: Option<String>,
    }

    fn parse(args: &[&str]) -> Result<T, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn plain_http_alone_means_every_host_and_with_a_value_one_host() {
        let t = parse(&["--plain-http", "spec.yaml"]).unwrap();
        assert_eq!(t.r.settings().plain_http, vec!["*"]);
        assert_eq!(t.file.as_deref(), Some("spec.yaml"));
        let t = parse(&["--plain-http=a:5000", "--plain-http=b"]).unwrap();
        assert_eq!(t.r.settings().plain_http, vec!["a:5000", "b"]);
        let t = parse(&["--plain-http=true"]).unwrap();
        assert_eq!(t.r.settings().plain_http, vec!["*"]);
        let t = parse(&["--plain-http=false"]).unwrap();
        assert!(t.r.settings().plain_http.is_empty());
        assert!(parse(&[]).unwrap().r.settings().plain_http.is_empty());
    }

    #[test]
    fn credential_flags_go_together_and_one_stdin_at_a_time() {
        assert!(parse(&["--registry-username", "u"]).is_err());
        assert!(parse(&["--registry-password-stdin"]).is_err());
        assert!(parse(&[
            "--registry-username",
            "u",
            "--registry-password-stdin",
            "--registry-token-stdin"
        ])
        .is_err());
        assert!(parse(&["--registry-username", "u", "--registry-password-stdin"]).is_ok());
        assert!(parse(&["--registry-token-stdin"]).is_ok());
    }

    #[test]
    fn settings_carry_every_flag() {
        let t = parse(&[
            "--insecure",
            "h:1",
            "--ca-file",
            "/ca.pem",
            "--hosts-dir",
            "/certs.d",
            "--auth-file",
            "/auth.json",
            "--timeout",
            "1500ms",
        ])
        .unwrap();
        let s = t.r.settings();
        assert_eq!(s.insecure, vec!["h:1"]);
        assert_eq!(s.ca_files, vec![PathBuf::from("/ca.pem")]);
        assert_eq!(s.hosts_dir, Some(PathBuf::from("/certs.d")));
        assert_eq!(s.auth_file, Some(PathBuf::from("/auth.json")));
        assert_eq!(s.timeout, Some(Duration::from_millis(1500)));
        let c = s.client_config();
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.docker_config, Some(PathBuf::from("/auth.json")));
    }

    #[test]
    fn the_deadline_defaults_and_ends_the_work() {
        assert_eq!(parse(&[]).unwrap().r.deadline(), DEFAULT_DEADLINE);
        let t = parse(&["--deadline", "50ms"]).unwrap();
        assert_eq!(t.r.deadline(), Duration::from_millis(50));
        let err =
            t.r.block_on(async { tokio::time::sleep(Duration::from_secs(5)).await })
                .unwrap_err();
        assert!(
            err.to_string().contains("within 50ms (--deadline)"),
            "{err}"
        );
        assert_eq!(t.r.block_on(async { 7 }).unwrap(), 7);
    }

    #[test]
    fn secrets_lose_one_line_end_only() {
        assert_eq!(read_secret(&b"pw\n"[..]).unwrap(), "pw");
        assert_eq!(read_secret(&b"pw\r\n"[..]).unwrap(), "pw");
        assert_eq!(read_secret(&b"pw \n\n"[..]).unwrap(), "pw \n");
        assert_eq!(read_secret(&b"pw"[..]).unwrap(), "pw");
        assert!(read_secret(&b"\n"[..]).is_err());
        assert!(read_secret(&b""[..]).is_err());
    }
}
