//! Command-line overrides of the config: data applied over any config, the file's or the one a
//! runtime passes a pre-launched plugin.

use std::path::PathBuf;

use super::{Config, Mode};

/// Settings given on the command line; each set field replaces the config's value (lists are
/// added to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub mode: Option<Mode>,
    pub nri_socket: Option<PathBuf>,
    pub nri_name: Option<String>,
    pub nri_index: Option<String>,
    pub containerd_socket: Option<PathBuf>,
    pub hosts_dir: Option<PathBuf>,
    /// Registries added to `registry.plainHttp`.
    pub plain_http: Vec<String>,
    /// Replaces `tags`.
    pub tags: Option<Vec<String>>,
    pub features_file: Option<PathBuf>,
    pub metrics_listen: Option<String>,
    pub host_prefix: Option<String>,
}

impl Overrides {
    /// `config` with these overrides applied.
    pub fn apply(&self, mut config: Config) -> Config {
        if let Some(m) = self.mode {
            config.mode = m;
        }
        if let Some(s) = &self.nri_socket {
            config.nri.socket = s.clone();
        }
        if let Some(n) = &self.nri_name {
            config.nri.name = n.clone();
        }
        if let Some(i) = &self.nri_index {
            config.nri.index = i.clone();
        }
        if let Some(s) = &self.containerd_socket {
            config.containerd.socket = s.clone();
        }
        if let Some(d) = &self.hosts_dir {
            config.registry.hosts_dir = Some(d.clone());
        }
        for h in &self.plain_http {
            if !config.registry.plain_http.contains(h) {
                config.registry.plain_http.push(h.clone());
            }
        }
        if let Some(t) = &self.tags {
            config.tags = t.clone();
        }
        if let Some(f) = &self.features_file {
            config.features.file = Some(f.clone());
        }
        if let Some(m) = &self.metrics_listen {
            config.metrics.listen = Some(m.clone());
        }
        if let Some(p) = &self.host_prefix {
            config.features.host_prefix = Some(p.clone());
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_fields_replace_lists_add() {
        let base = Config {
            tags: vec!["a".into()],
            ..Config::default()
        };
        let mut base = base;
        base.registry.plain_http = vec!["r:1".into()];
        let o = Overrides {
            mode: Some(Mode::Audit),
            plain_http: vec!["r:1".into(), "r:2".into()],
            tags: Some(vec!["b".into()]),
            ..Overrides::default()
        };
        let c = o.apply(base.clone());
        assert_eq!(c.mode, Mode::Audit);
        assert_eq!(c.registry.plain_http, vec!["r:1", "r:2"]);
        assert_eq!(c.tags, vec!["b"]);
        assert_eq!(Overrides::default().apply(base.clone()), base);
    }
}
