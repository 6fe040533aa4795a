//! Platforms (`os/arch[/variant]`): parsing, the host's platform, and picking an index entry.

use std::fmt;
use std::str::FromStr;

/// Why a platform string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {input:?}: expected os/arch[/variant], e.g. linux/arm64/v8")]
pub struct PlatformError {
    pub input: String,
}

/// An OCI platform with Go's names (`linux`, `amd64`, `arm64`, variant `v8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(input: &str) -> Result<Self, PlatformError> {
        let err = || PlatformError {
            input: input.to_string(),
        };
        let parts: Vec<&str> = input.trim().split('/').collect();
        let ok =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(
                &os.to_ascii_lowercase(),
                &arch.to_ascii_lowercase(),
                None,
            )),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform::new(
                &os.to_ascii_lowercase(),
                &arch.to_ascii_lowercase(),
                Some(&variant.to_ascii_lowercase()),
            )),
            _ => Err(err()),
        }
    }

    /// Parses NFD's `--platform` syntax too: `os[/arch[/variant]]`, a missing arch being the
    /// host's (as `nfd compat validate-node` takes its own GOARCH). NFD's `:os_version` suffix
    /// only selects among Windows builds; it is refused rather than silently ignored.
    pub fn parse_nfd(input: &str) -> Result<Self, PlatformError> {
        let trimmed = input.trim();
        if trimmed.contains(':') {
            return Err(PlatformError {
                input: input.to_string(),
            });
        }
        if !trimmed.is_empty() && !trimmed.contains('/') {
            return Platform::parse(&format!("{trimmed}/{}", Platform::host().architecture));
        }
        Platform::parse(trimmed)
    }

    /// The platform this process runs on, with Go's architecture names.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            other => other,
        };
        // 32-bit arm hosts are v7 unless told otherwise, as containerd assumes.
        let variant = (arch == "arm").then_some("v7");
        Platform::new(std::env::consts::OS, arch, variant)
    }

    /// The variant with the defaults containerd normalises: arm64 is v8, arm is v7.
    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None | Some("v8")) => None,
            ("arm", None) => Some("v7"),
            (_, v) => v,
        }
    }

    /// Whether an index entry for `entry` can serve a request for `self`; a request without a
    /// variant accepts any variant (`rank` prefers the default one).
    pub fn matches(&self, entry: &Platform) -> bool {
        if self.os != entry.os || self.architecture != entry.architecture {
            return false;
        }
        match self.variant {
            None => true,
            Some(_) => self.normalized_variant() == entry.normalized_variant(),
        }
    }

    /// Lower is better among matching entries: exact normalised variant first.
    pub(crate) fn rank(&self, entry: &Platform) -> u8 {
        let want = if self.variant.is_none() {
            Platform {
                variant: None,
                ..self.clone()
            }
            .normalized_variant()
            .map(str::to_string)
        } else {
            self.normalized_variant().map(str::to_string)
        };
        if want.as_deref() == entry.normalized_variant() {
            0
        } else {
            1
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap(),
            Platform::new("linux", "arm64", Some("v8"))
        );
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        for bad in ["linux", "", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nfd_syntax_defaults_the_arch_to_the_host() {
        let host = Platform::host();
        assert_eq!(
            Platform::parse_nfd("linux").unwrap(),
            Platform::new("linux", &host.architecture, None)
        );
        assert_eq!(
            Platform::parse_nfd("linux/arm/v7").unwrap(),
            Platform::new("linux", "arm", Some("v7"))
        );
        for bad in ["", "/", "windows/amd64:10.0.17763", "linux/"] {
            assert!(Platform::parse_nfd(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_uses_go_names() {
        let h = Platform::host();
        assert_eq!(h.os, std::env::consts::OS);
        assert_ne!(h.architecture, "x86_64");
        assert_ne!(h.architecture, "aarch64");
    }

    #[test]
    fn variant_matching() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let arm64v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm64.matches(&arm64v8));
        assert!(arm64v8.matches(&arm64));
        let armv7 = Platform::parse("linux/arm/v7").unwrap();
        let armv6 = Platform::parse("linux/arm/v6").unwrap();
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(armv7.matches(&arm));
        assert!(!armv7.matches(&armv6));
        assert!(arm.matches(&armv6));
        assert!(arm.rank(&armv7) < arm.rank(&armv6));
        assert!(!Platform::parse("linux/amd64").unwrap().matches(&arm64));
        assert!(!Platform::parse("windows/amd64")
            .unwrap()
            .matches(&Platform::parse("linux/amd64").unwrap()));
    }
}
