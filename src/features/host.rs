//! Where discovery reads the host: NFD's host path prefixes, its unprefixed paths and the CPU probe.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Environment variable naming NFD's host mount prefix (e.g. `/host-`) for [`HostRoots::from_env`].
pub const HOST_PREFIX_ENV: &str = "IMAGE_COMPAT_HOST_PREFIX";

/// In a fixture tree, the file standing in for the CPU instructions (CPUID, getauxval).
pub const FIXTURE_CPU_FILE: &str = "image-compat/cpu.txt";

/// The directories discovery reads, as NFD's `pkg/utils/hostpath` names them.
///
/// NFD prefixes only some paths (`<sys>`, `<proc>`, ...); others it always reads from its own
/// view (`/proc/modules`, `/proc/sys/kernel/osrelease`, `/proc/config.gz`, features.d, ...).
/// Those go through `unprefixed`, which is `/` everywhere except in fixture trees, so a test
/// reads nothing of the machine it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoots {
    pub sys: PathBuf,
    pub proc: PathBuf,
    pub boot: PathBuf,
    pub etc: PathBuf,
    pub usr: PathBuf,
    pub lib: PathBuf,
    pub var: PathBuf,
    /// Root of the paths NFD never prefixes.
    pub unprefixed: PathBuf,
    /// Where CPU identification comes from.
    pub cpu: CpuProbe,
}

/// Source of the values NFD gets from CPU instructions rather than files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuProbe {
    /// Execute CPUID/XGETBV (x86_64) or call getauxval and read MIDR_EL1 (arm64) here.
    Native,
    /// Values recorded in a file (see `cpu::recorded` for the format), for fixture hosts.
    Recorded(PathBuf),
}

impl HostRoots {
    /// The plain host: `/sys`, `/proc`, ... (NFD built with `HOSTMOUNT_PREFIX=/`).
    pub fn host() -> Self {
        Self::with_prefix("/")
    }

    /// NFD's container layout for a mount prefix: `with_prefix("/host-")` reads `/host-sys`,
    /// `/host-proc`, ...; like NFD, the prefix is glued to the directory name as is.
    pub fn with_prefix(prefix: &str) -> Self {
        let dir = |name: &str| PathBuf::from(format!("{prefix}{name}"));
        HostRoots {
            sys: dir("sys"),
            proc: dir("proc"),
            boot: dir("boot"),
            etc: dir("etc"),
            usr: dir("usr"),
            lib: dir("lib"),
            var: dir("var"),
            unprefixed: PathBuf::from("/"),
            cpu: CpuProbe::Native,
        }
    }

    /// A recorded host under one directory: every path, prefixed or not, and the CPU values
    /// (from [`FIXTURE_CPU_FILE`]) come from under `root`.
    pub fn fixture(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref();
        HostRoots {
            sys: root.join("sys"),
            proc: root.join("proc"),
            boot: root.join("boot"),
            etc: root.join("etc"),
            usr: root.join("usr"),
            lib: root.join("lib"),
            var: root.join("var"),
            unprefixed: root.to_path_buf(),
            cpu: CpuProbe::Recorded(root.join(FIXTURE_CPU_FILE)),
        }
    }

    /// [`HostRoots::with_prefix`] with the value of `IMAGE_COMPAT_HOST_PREFIX` when it is set
    /// and not empty, else [`HostRoots::host`].
    pub fn from_env() -> Self {
        Self::from_prefix_var(std::env::var_os(HOST_PREFIX_ENV))
    }

    fn from_prefix_var(value: Option<OsString>) -> Self {
        match value {
            Some(v) if !v.is_empty() => Self::with_prefix(&v.to_string_lossy()),
            _ => Self::host(),
        }
    }

    /// A path NFD reads without prefix, e.g. `unprefixed_path("proc/modules")`.
    pub fn unprefixed_path(&self, relative: &str) -> PathBuf {
        self.unprefixed.join(relative)
    }
}

impl Default for HostRoots {
    fn default() -> Self {
        Self::host()
    }
}

/// A file's content with surrounding whitespace removed (Go's `strings.TrimSpace`).
pub(crate) fn read_trimmed(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim().to_string())
}

/// Entry names of a directory in byte order, as Go's `os.ReadDir` returns them.
pub(crate) fn read_dir_sorted(path: &Path) -> io::Result<Vec<String>> {
    let mut names = fs::read_dir(path)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_prefix_is_glued_to_names() {
        let r = HostRoots::with_prefix("/host-");
        assert_eq!(r.sys, PathBuf::from("/host-sys"));
        assert_eq!(r.proc, PathBuf::from("/host-proc"));
        assert_eq!(r.boot, PathBuf::from("/host-boot"));
        assert_eq!(r.etc, PathBuf::from("/host-etc"));
        assert_eq!(r.usr, PathBuf::from("/host-usr"));
        assert_eq!(r.lib, PathBuf::from("/host-lib"));
        assert_eq!(r.var, PathBuf::from("/host-var"));
        assert_eq!(r.unprefixed, PathBuf::from("/"));
        assert_eq!(r.cpu, CpuProbe::Native);
    }

    #[test]
    fn plain_host_paths() {
        let r = HostRoots::host();
        assert_eq!(r.sys, PathBuf::from("/sys"));
        assert_eq!(r.lib, PathBuf::from("/lib"));
        assert_eq!(
            r.unprefixed_path("proc/modules"),
            PathBuf::from("/proc/modules")
        );
    }

    #[test]
    fn fixture_puts_everything_under_root() {
        let r = HostRoots::fixture("/tmp/x");
        assert_eq!(r.sys, PathBuf::from("/tmp/x/sys"));
        assert_eq!(
            r.unprefixed_path("proc/modules"),
            PathBuf::from("/tmp/x/proc/modules")
        );
        assert_eq!(
            r.cpu,
            CpuProbe::Recorded(PathBuf::from("/tmp/x/image-compat/cpu.txt"))
        );
    }

    #[test]
    fn env_prefix() {
        assert_eq!(
            HostRoots::from_prefix_var(Some("/host-".into())),
            HostRoots::with_prefix("/host-")
        );
        assert_eq!(
            HostRoots::from_prefix_var(Some("".into())),
            HostRoots::host()
        );
        assert_eq!(HostRoots::from_prefix_var(None), HostRoots::host());
    }
}
