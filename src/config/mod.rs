//! The program's settings: the config file (YAML) the plugin and the hook read, every key with
//! its default, and the command line's overrides of it as data.

mod overrides;

pub use overrides::Overrides;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::yaml;

/// What happens to a container whose image is not compatible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse to create it, with the reason.
    #[default]
    Enforce,
    /// Let it start, annotated, with a warning log line.
    Audit,
}

/// What to do when the check cannot give an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailAction {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    /// The image has no compatibility artifact: most images have none.
    pub on_missing_artifact: FailAction,
    /// The registry could not be reached or answered wrongly, or the decision deadline
    /// passed before the artifact arrived.
    pub on_registry_error: FailAction,
    /// The artifact's spec is invalid, or NFD's evaluation rejects it on this node.
    pub on_invalid_spec: FailAction,
    /// The image name could not be turned into a digest (not in the runtime's image store).
    pub on_unknown_image: FailAction,
    /// A Proposal F artifact needs a group or key the node declares nothing about.
    pub on_unknown: FailAction,
    /// Pods in these namespaces are never checked.
    pub exempt_namespaces: Vec<String>,
    /// Images matching these glob patterns (`registry.k8s.io/pause:*`) are never checked.
    pub exempt_images: Vec<String>,
    /// Only the compatibility sets with these tags count; empty means all sets.
    pub tags: Vec<String>,
    /// Refuse a spec for any invalid expression anywhere in it (`onInvalidSpec`), as
    /// `validate-spec` does; false (default): as NFD, an invalid expression fails the
    /// evaluation only where it is reached, and is reported as a warning elsewhere.
    pub strict_specs: bool,
    /// The node's name in messages; default `$NODE_NAME`, else the host name.
    pub node_name: Option<String>,
    /// Longest time a container creation waits for a decision; default 1s, capped at half
    /// the runtime's request timeout (which Configure reports).
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    pub registry: RegistrySettings,
    pub cache: CacheSettings,
    pub features: FeatureSettings,
    pub containerd: ContainerdSettings,
    pub nri: NriSettings,
    pub metrics: MetricsSettings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrySettings {
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub plain_http: Vec<String>,
    /// Registries whose TLS certificate is not verified.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) trusted besides the system roots.
    pub ca_files: Vec<PathBuf>,
    /// containerd `hosts.toml` directory (mirrors, per-host CA, plain HTTP), e.g.
    /// /etc/containerd/certs.d.
    pub hosts_dir: Option<PathBuf>,
    /// Docker config file with credentials (default: $DOCKER_CONFIG/config.json,
    /// ~/.docker/config.json); containers' auth.json is read too.
    pub auth_file: Option<PathBuf>,
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    pub max_spec_bytes: Option<u64>,
    pub max_manifest_bytes: Option<u64>,
}

impl RegistrySettings {
    /// The registry client's configuration for these settings; unset knobs keep the client's
    /// defaults. The CLI's registry flags fill the same struct, so both read registries alike.
    pub fn client_config(&self) -> crate::registry::RegistryConfig {
        let mut c = crate::registry::RegistryConfig {
            plain_http: self.plain_http.clone(),
            insecure_skip_verify: self.insecure.clone(),
            ca_files: self.ca_files.clone(),
            hosts_dir: self.hosts_dir.clone(),
            ..Default::default()
        };
        if let Some(f) = &self.auth_file {
            c.docker_config = Some(f.clone());
        }
        if let Some(t) = self.timeout {
            c.request_timeout = t;
        }
        if let Some(n) = self.max_spec_bytes {
            c.max_spec_bytes = n;
        }
        if let Some(n) = self.max_manifest_bytes {
            c.max_manifest_bytes = n;
        }
        c
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheSettings {
    /// Images remembered (by digest).
    pub max_entries: usize,
    /// How long a fetched artifact (or its absence) is trusted before it is fetched again.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long a registry failure is remembered before the next try.
    #[serde(with = "humantime_serde")]
    pub error_ttl: Duration,
    /// How long an answer looked up by image name (a tag: no digest known) is trusted before the
    /// name is looked up again, since the tag may move. The plugin knows digests from
    /// containerd's image store; the hook from CRI-O and podman, not from containerd's
    /// annotation, which holds only a name.
    #[serde(with = "humantime_serde")]
    pub name_ttl: Duration,
    /// OCI hook only: the directory of the cache its processes share on disk (registry answers,
    /// image names, this node's features); None is [`DEFAULT_HOOK_CACHE_DIR`].
    pub dir: Option<PathBuf>,
}

/// Where the OCI hook keeps its cache by default: /run is a tmpfs cleared at boot, private to
/// root, and where runtimes keep their own state.
pub const DEFAULT_HOOK_CACHE_DIR: &str = "/run/image-compat";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureSettings {
    /// Evaluate against this saved features file instead of discovering the node (tests,
    /// what-if runs).
    pub file: Option<PathBuf>,
    /// Rediscover the node's features (or read `file` again) this often, then re-check the
    /// running containers (0 = only at start). The OCI hook, which has
    /// no start, also rediscovers after a reboot, a kernel change, or a change of the loaded
    /// modules, PCI or USB devices or features.d files.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// Host path prefix when running in a container with NFD's mounts (`/host-`).
    pub host_prefix: Option<String>,
    /// Feature sources to discover (default all): cpu, kernel, memory, network, pci, usb,
    /// storage, system, local, and image-compat's own compat.
    pub sources: Vec<String>,
    /// Where the node's admin declares Proposal F compatibility groups (`*.json`, the
    /// artifacts' shape); None is [`DEFAULT_COMPAT_DIR`], under `hostPrefix` when set.
    pub compat_dir: Option<PathBuf>,
}

/// The admin's compatibility declarations by default.
pub const DEFAULT_COMPAT_DIR: &str = "/etc/image-compat/compat.d";

/// Where the declarations are read when no directory is given: the host's, under the host
/// prefix when there is one (a pod reads the host's /etc/image-compat/compat.d mounted at
/// /host-etc/image-compat/compat.d, as the DaemonSet does).
pub fn default_compat_dir(host_prefix: Option<&str>) -> PathBuf {
    match host_prefix {
        Some(p) if !p.is_empty() && p != "/" => {
            PathBuf::from(format!("{p}{}", DEFAULT_COMPAT_DIR.trim_start_matches('/')))
        }
        _ => PathBuf::from(DEFAULT_COMPAT_DIR),
    }
}

/// The node's features could not be had as configured.
#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    #[error("features.sources: {0}")]
    Sources(#[from] crate::features::SourceError),
    #[error("features.file: {0}")]
    File(#[from] crate::features::file::FeaturesFileError),
}

impl FeatureSettings {
    /// The discovery these settings ask for: host paths under `hostPrefix` (or
    /// `$IMAGE_COMPAT_HOST_PREFIX`), the listed sources. The plugin and the hook both use it.
    pub fn discover_options(&self) -> Result<crate::features::DiscoverOptions, FeaturesError> {
        use crate::features::{DiscoverOptions, HostRoots, Source};
        let roots = match self.host_prefix.as_deref() {
            Some(p) if !p.is_empty() && p != "/" => HostRoots::with_prefix(p),
            _ => HostRoots::from_env(),
        };
        let mut opts = DiscoverOptions::new(roots).with_compat_dir(
            self.compat_dir
                .clone()
                .unwrap_or_else(|| default_compat_dir(self.host_prefix.as_deref())),
        );
        if !self.sources.is_empty() {
            opts = opts.with_sources(Source::parse_list(&self.sources.join(","))?);
        }
        Ok(opts)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerdSettings {
    /// containerd's gRPC socket, to resolve image names to digests.
    pub socket: PathBuf,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct NriSettings {
    /// The runtime's NRI socket (external mode).
    pub socket: PathBuf,
    pub name: String,
    /// Plugin index: the order among NRI plugins (two digits).
    pub index: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address of the /metrics and /healthz endpoint; off when empty (e.g. 127.0.0.1:9464).
    pub listen: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Enforce,
            on_missing_artifact: FailAction::Allow,
            on_registry_error: FailAction::Allow,
            on_invalid_spec: FailAction::Deny,
            on_unknown_image: FailAction::Allow,
            on_unknown: FailAction::Allow,
            exempt_namespaces: vec!["kube-system".into()],
            exempt_images: Vec::new(),
            tags: Vec::new(),
            strict_specs: false,
            node_name: None,
            deadline: Duration::from_secs(1),
            registry: RegistrySettings::default(),
            cache: CacheSettings::default(),
            features: FeatureSettings::default(),
            containerd: ContainerdSettings::default(),
            nri: NriSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_entries: 4096,
            ttl: Duration::from_secs(3600),
            error_ttl: Duration::from_secs(30),
            name_ttl: Duration::from_secs(60),
            dir: None,
        }
    }
}

impl Default for ContainerdSettings {
    fn default() -> Self {
        ContainerdSettings {
            socket: "/run/containerd/containerd.sock".into(),
            namespace: "k8s.io".into(),
        }
    }
}

impl Default for NriSettings {
    fn default() -> Self {
        NriSettings {
            socket: "/var/run/nri/nri.sock".into(),
            name: "image-compat".into(),
            index: "10".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Io {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not valid YAML: {source}")]
    Syntax {
        origin: String,
        #[source]
        source: yaml::YamlError,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Config {
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            origin: origin.clone(),
            source,
        })?;
        Config::parse(&text, &origin)
    }

    /// Parses a config document; an empty one gives the defaults. Unknown keys are errors:
    /// a misspelt `onRegistryError` must not silently fall back to a default.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let syntax = |source| ConfigError::Syntax {
            origin: origin.to_string(),
            source,
        };
        let Some(root) = yaml::load(text).map_err(syntax)? else {
            return Ok(Config::default());
        };
        let value = yaml::to_json(&root).map_err(syntax)?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Invalid {
                origin: origin.to_string(),
                message: if path == "." {
                    e.inner().to_string()
                } else {
                    format!("{path}: {}", e.inner())
                },
            }
        })?;
        config.check(origin)?;
        Ok(config)
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        };
        if self.deadline.is_zero() {
            return Err(invalid("deadline must be greater than 0".into()));
        }
        if self.cache.max_entries == 0 {
            return Err(invalid("cache.maxEntries must be at least 1".into()));
        }
        if let Some(n) = self.registry.max_spec_bytes {
            if n > crate::spec::MAX_BYTES as u64 {
                return Err(invalid(format!(
                    "registry.maxSpecBytes: {n} is more than {} (256 KiB), the largest spec \
                     image-compat reads; it may only lower that",
                    crate::spec::MAX_BYTES
                )));
            }
        }
        for p in &self.exempt_images {
            globset::Glob::new(p)
                .map_err(|e| invalid(format!("exemptImages: bad pattern {p:?}: {e}")))?;
        }
        Ok(())
    }

    /// How specs are read before they are evaluated.
    pub fn reading(&self) -> crate::spec::Reading {
        if self.strict_specs {
            crate::spec::Reading::Strict
        } else {
            crate::spec::Reading::Nfd
        }
    }

    /// The node's name for messages.
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .unwrap_or_else(|| "this node".into())
    }

    /// The defaults as a commented YAML document, for `--print-config`.
    pub fn defaults_yaml() -> String {
        include_str!("../../nri-config/image-compat.yaml").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compat_dir_follows_the_host_prefix() {
        let dir = |prefix: Option<&str>| default_compat_dir(prefix).display().to_string();
        assert_eq!(dir(None), "/etc/image-compat/compat.d");
        assert_eq!(dir(Some("/")), "/etc/image-compat/compat.d");
        assert_eq!(dir(Some("/host-")), "/host-etc/image-compat/compat.d");
        assert_eq!(dir(Some("/rootfs/")), "/rootfs/etc/image-compat/compat.d");
        let settings = FeatureSettings {
            host_prefix: Some("/host-".into()),
            ..FeatureSettings::default()
        };
        let opts = settings.discover_options().unwrap();
        assert!(
            format!("{opts:?}").contains("/host-etc/image-compat/compat.d"),
            "{opts:?}"
        );
    }

    #[test]
    fn empty_document_gives_defaults() {
        assert_eq!(Config::parse("", "c").unwrap(), Config::default());
        assert_eq!(
            Config::parse("# nothing\n", "c").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn keys_and_durations() {
        let c = Config::parse(
            "mode: audit\nonRegistryError: deny\ndeadline: 750ms\nexemptNamespaces: []\n\
             registry: {plainHttp: ['127.0.0.1:5000'], hostsDir: /etc/containerd/certs.d}\n\
             cache: {ttl: 10m, nameTtl: 5m, dir: /var/cache/image-compat}\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Audit);
        assert_eq!(c.on_registry_error, FailAction::Deny);
        assert_eq!(c.deadline, Duration::from_millis(750));
        assert!(c.exempt_namespaces.is_empty());
        assert_eq!(c.registry.plain_http, vec!["127.0.0.1:5000"]);
        assert_eq!(c.cache.ttl, Duration::from_secs(600));
        assert_eq!(c.cache.max_entries, 4096);
        assert_eq!(c.cache.name_ttl, Duration::from_secs(300));
        assert_eq!(c.cache.dir, Some(PathBuf::from("/var/cache/image-compat")));
    }

    #[test]
    fn mistakes_are_errors_with_the_key() {
        let err = Config::parse("onRegistryErorr: deny\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.yaml") && err.contains("onRegistryErorr"),
            "{err}"
        );
        let err = Config::parse("mode: block\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mode") && err.contains("block"), "{err}");
        let err = Config::parse("cache: {ttl: soon}\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cache.ttl"), "{err}");
        let err = Config::parse("deadline: 0s\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("deadline"), "{err}");
        let err = Config::parse("registry: {maxSpecBytes: 1048576}\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("registry.maxSpecBytes: 1048576"), "{err}");
        assert!(Config::parse("registry: {maxSpecBytes: 4096}\n", "c.yaml").is_ok());
        let err = Config::parse("exemptImages: ['[']\n", "c.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exemptImages"), "{err}");
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let c = Config::parse(&Config::defaults_yaml(), "nri-config/image-compat.yaml").unwrap();
        assert_eq!(c, Config::default());
    }
}
