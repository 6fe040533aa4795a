//! Where a registry's requests go: its server and containerd `hosts.toml` mirrors, in order.
//!
//! Follows containerd's format (docs/hosts.md): `<dir>/<host>_<port>_/hosts.toml`, then
//! `<dir>/<host:port>/hosts.toml`, then `<dir>/_default/hosts.toml`; `[host."URL"]` entries are
//! tried in file order, `server` (default: the registry itself) last; capabilities default to
//! pull+resolve+push; `ca` paths are relative to the hosts.toml; a URL path gets `/v2` appended
//! unless `override_path`. Mirrors get `?ns=<registry>` like containerd sends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{ConfigError, RegistryConfig};

/// What a host may be used for (containerd's capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub pull: bool,
    pub resolve: bool,
    pub push: bool,
}

impl Capabilities {
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// One place to send a registry's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` as it goes in the URL.
    pub host: String,
    /// API root, normally `/v2`.
    pub path: String,
    pub capabilities: Capabilities,
    pub ca_files: Vec<PathBuf>,
    pub skip_verify: bool,
    pub headers: Vec<(String, String)>,
    pub dial_timeout: Option<Duration>,
    /// The registry namespace sent as `?ns=` (set for mirrors only).
    pub ns: Option<String>,
    /// The registry's own server (not a mirror): explicit credentials go only here.
    pub is_server: bool,
}

impl HostEndpoint {
    /// `scheme://host` of this endpoint.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// The URL of `<api root>/<repo>/<rest>`.
    pub fn url(&self, repo: &str, rest: &str) -> String {
        format!("{}{}/{}/{}", self.origin(), self.path, repo, rest)
    }
}

/// The default API host of a registry name (docker.io's API lives on registry-1.docker.io).
pub fn default_api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// The endpoints for `registry`, in the order they are tried.
pub fn endpoints(registry: &str, cfg: &RegistryConfig) -> Result<Vec<HostEndpoint>, ConfigError> {
    if let Some(dir) = &cfg.hosts_dir {
        if let Some(file) = find_hosts_file(dir, registry) {
            let text = std::fs::read_to_string(&file).map_err(|e| ConfigError::File {
                path: file.clone(),
                reason: e.to_string(),
            })?;
            let base = file.parent().unwrap_or(dir).to_path_buf();
            return parse_hosts_toml(&text, &file, &base, registry, cfg);
        }
    }
    Ok(vec![default_server(registry, cfg)])
}

fn default_server(registry: &str, cfg: &RegistryConfig) -> HostEndpoint {
    let host = default_api_host(registry).to_string();
    let plain = cfg.is_plain_http(registry) || cfg.is_plain_http(&host);
    HostEndpoint {
        scheme: if plain { "http" } else { "https" }.to_string(),
        skip_verify: cfg.is_insecure(registry) || cfg.is_insecure(&host),
        host,
        path: "/v2".to_string(),
        capabilities: Capabilities::ALL,
        ca_files: Vec::new(),
        headers: Vec::new(),
        dial_timeout: None,
        ns: None,
        is_server: true,
    }
}

fn find_hosts_file(dir: &Path, registry: &str) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some((host, port)) = registry.rsplit_once(':') {
        if !host.is_empty() && port.chars().all(|c| c.is_ascii_digit()) {
            candidates.push(format!("{host}_{port}_"));
        }
    }
    candidates.push(registry.to_string());
    candidates.push("_default".to_string());
    candidates
        .into_iter()
        .map(|c| dir.join(c).join("hosts.toml"))
        .find(|p| p.is_file())
}

fn parse_hosts_toml(
    text: &str,
    file: &Path,
    base: &Path,
    registry: &str,
    cfg: &RegistryConfig,
) -> Result<Vec<HostEndpoint>, ConfigError> {
    let bad = |reason: String| ConfigError::HostsToml {
        path: file.to_path_buf(),
        reason,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.to_string()))?;
    let mut out = Vec::new();
    if let Some(hosts) = table.get("host") {
        let hosts = hosts
            .as_table()
            .ok_or_else(|| bad("`host` must be a table of [host.\"URL\"] entries".into()))?;
        // preserve_order: the toml Table keeps file order, which is the order mirrors are tried.
        for (url, entry) in hosts {
            let entry = entry
                .as_table()
                .ok_or_else(|| bad(format!("[host.{url:?}] must be a table")))?;
            let ep = parse_entry(url, entry, base, registry, cfg, false).map_err(&bad)?;
            out.push(ep);
        }
    }
    let server = table.get("server").and_then(|v| v.as_str()).unwrap_or("");
    let server_url = if server.is_empty() {
        let host = default_api_host(registry);
        let scheme = if cfg.is_plain_http(registry) || cfg.is_plain_http(host) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    } else {
        server.to_string()
    };
    let mut server_ep =
        parse_entry(&server_url, &table, base, registry, cfg, true).map_err(&bad)?;
    server_ep.is_server = true;
    out.push(server_ep);
    Ok(out)
}

fn parse_entry(
    url: &str,
    entry: &toml::Table,
    base: &Path,
    registry: &str,
    cfg: &RegistryConfig,
    is_server: bool,
) -> Result<HostEndpoint, String> {
    let with_scheme = if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let parsed = reqwest::Url::parse(&with_scheme).map_err(|e| format!("host {url:?}: {e}"))?;
    let host_name = parsed
        .host_str()
        .ok_or_else(|| format!("host {url:?} has no host name"))?;
    let host = match parsed.port() {
        Some(p) => format!("{host_name}:{p}"),
        None => host_name.to_string(),
    };
    let override_path = entry
        .get("override_path")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let raw_path = parsed.path().trim_end_matches('/');
    let path = if raw_path.is_empty() {
        if override_path {
            String::new()
        } else {
            "/v2".to_string()
        }
    } else if raw_path.ends_with("/v2") || override_path {
        raw_path.to_string()
    } else {
        format!("{raw_path}/v2")
    };
    let capabilities = match entry.get("capabilities") {
        None => Capabilities::ALL,
        Some(v) => {
            let list = v
                .as_array()
                .ok_or_else(|| format!("host {url:?}: capabilities must be a list"))?;
            let mut caps = Capabilities {
                pull: false,
                resolve: false,
                push: false,
            };
            for c in list {
                match c.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("pull") => caps.pull = true,
                    Some("resolve") => caps.resolve = true,
                    Some("push") => caps.push = true,
                    _ => return Err(format!("host {url:?}: unknown capability {c}")),
                }
            }
            caps
        }
    };
    let ca_files = match entry.get("ca") {
        None => Vec::new(),
        Some(toml::Value::String(s)) => vec![abs(base, s)],
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| abs(base, s))
                    .ok_or_else(|| format!("host {url:?}: ca entries must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(format!(
                "host {url:?}: ca must be a path or a list of paths"
            ))
        }
    };
    if entry.contains_key("client") {
        // Client certificates would need a TLS identity per host; not supported yet, and
        // silently ignoring them would just fail later with a confusing TLS error.
        tracing::warn!(host = %host, "hosts.toml `client` certificates are not supported; ignored");
    }
    let skip_verify = entry
        .get("skip_verify")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
        || cfg.is_insecure(&host);
    let mut headers = Vec::new();
    if let Some(h) = entry.get("header") {
        let h = h
            .as_table()
            .ok_or_else(|| format!("host {url:?}: header must be a table"))?;
        for (k, v) in h {
            match v {
                toml::Value::String(s) => headers.push((k.clone(), s.clone())),
                toml::Value::Array(a) => {
                    for item in a {
                        let s = item.as_str().ok_or_else(|| {
                            format!("host {url:?}: header {k} values must be strings")
                        })?;
                        headers.push((k.clone(), s.to_string()));
                    }
                }
                _ => return Err(format!("host {url:?}: header {k} must be a string or list")),
            }
        }
    }
    let dial_timeout = match entry.get("dial_timeout").and_then(|v| v.as_str()) {
        None => None,
        Some(s) => Some(
            parse_go_duration(s).ok_or_else(|| format!("host {url:?}: bad dial_timeout {s:?}"))?,
        ),
    };
    let ns = (!is_server && host != registry).then(|| registry.to_string());
    Ok(HostEndpoint {
        scheme: parsed.scheme().to_string(),
        host,
        path,
        capabilities,
        ca_files,
        skip_verify,
        headers,
        dial_timeout,
        ns,
        is_server,
    })
}

fn abs(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// Parses the Go durations hosts.toml uses (`500ms`, `1s`, `1m30s`).
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_end] {
            "ns" => value / 1e9,
            "us" | "µs" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_end..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg_with(dir: &Path) -> RegistryConfig {
        RegistryConfig {
            hosts_dir: Some(dir.to_path_buf()),
            ..RegistryConfig::without_credential_files()
        }
    }

    #[test]
    fn no_config_means_the_registry_itself() {
        let cfg = RegistryConfig::without_credential_files();
        let eps = endpoints("docker.io", &cfg).unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].origin(), "https://registry-1.docker.io");
        assert!(eps[0].is_server);
        let cfg = RegistryConfig {
            plain_http: vec!["localhost:5000".into()],
            ..cfg
        };
        let eps = endpoints("localhost:5000", &cfg).unwrap();
        assert_eq!(
            eps[0].url("a/b", "manifests/x"),
            "http://localhost:5000/v2/a/b/manifests/x"
        );
    }

    #[test]
    fn mirrors_in_file_order_then_server() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("registry.example_5000_");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            r#"
server = "https://registry.example:5000"
ca = "server-ca.pem"

[host."http://zz-mirror.local:8080"]
  capabilities = ["pull", "resolve"]
  dial_timeout = "1s500ms"
[host."https://aa-mirror.local/prefix"]
  capabilities = ["pull"]
  skip_verify = true
  ca = ["/etc/ca1.pem", "rel.pem"]
  [host."https://aa-mirror.local/prefix".header]
    x-one = "1"
    x-many = ["a", "b"]
"#,
        )
        .unwrap();
        let eps = endpoints("registry.example:5000", &cfg_with(dir.path())).unwrap();
        let origins: Vec<_> = eps.iter().map(|e| e.origin()).collect();
        assert_eq!(
            origins,
            [
                "http://zz-mirror.local:8080",
                "https://aa-mirror.local",
                "https://registry.example:5000"
            ]
        );
        assert_eq!(
            eps[0].capabilities,
            Capabilities {
                pull: true,
                resolve: true,
                push: false
            }
        );
        assert_eq!(eps[0].dial_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(eps[0].ns.as_deref(), Some("registry.example:5000"));
        assert_eq!(eps[1].path, "/prefix/v2");
        assert!(eps[1].skip_verify);
        assert_eq!(
            eps[1].ca_files,
            [PathBuf::from("/etc/ca1.pem"), d.join("rel.pem")]
        );
        assert_eq!(eps[1].headers.len(), 3);
        assert!(eps[2].is_server);
        assert_eq!(eps[2].ns, None);
        assert_eq!(eps[2].capabilities, Capabilities::ALL);
        assert_eq!(eps[2].ca_files, [d.join("server-ca.pem")]);
    }

    #[test]
    fn default_dir_and_colon_dir() {
        let dir = tempfile::tempdir().unwrap();
        let def = dir.path().join("_default");
        std::fs::create_dir_all(&def).unwrap();
        std::fs::write(def.join("hosts.toml"), "[host.\"http://mirror:1\"]\n").unwrap();
        let colon = dir.path().join("other:5000");
        std::fs::create_dir_all(&colon).unwrap();
        std::fs::write(colon.join("hosts.toml"), "server = \"http://other:5000\"\n").unwrap();

        let eps = endpoints("quay.io", &cfg_with(dir.path())).unwrap();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].origin(), "http://mirror:1");
        assert_eq!(eps[1].origin(), "https://quay.io");

        let eps = endpoints("other:5000", &cfg_with(dir.path())).unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].origin(), "http://other:5000");
    }

    #[test]
    fn bad_files_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("r.example");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            "[host.\"https://m\"]\ncapabilities = [\"fly\"]\n",
        )
        .unwrap();
        let err = endpoints("r.example", &cfg_with(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hosts.toml") && err.contains("fly"), "{err}");
        std::fs::write(d.join("hosts.toml"), "server = [").unwrap();
        assert!(endpoints("r.example", &cfg_with(dir.path())).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("x"), None);
    }
}
