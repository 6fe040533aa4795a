//! What a runtime hands a hook: the container state on stdin and the bundle's config.json.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Spec, State};
use serde::Deserialize;

use super::image;
use crate::check::ImageIdentity;
use crate::untrusted::{read_bounded, Links};

/// Largest state document read from stdin: a state is a few KiB; anything bigger is not one.
pub const MAX_STATE_BYTES: usize = 1 << 20;
/// Largest config.json read: podman's are ~10 KiB, CRI-O's with many mounts and annotations
/// stay well under this.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the container state on stdin is not valid JSON: {0}")]
    StateSyntax(#[source] serde_json::Error),
    #[error("the container state on stdin has no {field} (is this run as an OCI hook, with the state on stdin?)")]
    StateMissing { field: &'static str },
    #[error("the container state on stdin is larger than {MAX_STATE_BYTES} bytes")]
    StateTooLarge,
    #[error("cannot read the bundle's config.json {path}: {source}")]
    ConfigIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the bundle's config.json {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    ConfigTooLarge { path: String },
    #[error("the bundle's config.json {path} is not a runtime spec: {message}")]
    ConfigSyntax { path: String, message: String },
}

/// The parts of the OCI state a hook uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookState {
    pub id: String,
    pub bundle: PathBuf,
    /// The status the runtime reports (`creating` at createRuntime and prestart).
    pub status: String,
    pub annotations: HashMap<String, String>,
}

/// The container being created, as far as its state and bundle tell.
#[derive(Debug, Clone)]
pub struct Container {
    /// The container ID from the state (empty when the state was unreadable).
    pub id: String,
    /// config.json's annotations, with the state's filling gaps (runc and crun repeat
    /// config.json's there).
    pub annotations: HashMap<String, String>,
    /// Why the container is not a workload to check (a pod sandbox), if it is not.
    pub sandbox: Option<String>,
    /// The image, or why it cannot be told (bad state, no bundle, nothing names it).
    pub image: Result<ImageIdentity, String>,
}

impl Container {
    /// Reads the state on stdin, the bundle's config.json, and finds the image.
    pub fn read(state: &[u8]) -> Container {
        let mut c = Container {
            id: String::new(),
            annotations: HashMap::new(),
            sandbox: None,
            image: Err(String::new()),
        };
        let state = match parse_state(state) {
            Ok(s) => s,
            Err(e) => {
                c.image = Err(e.to_string());
                return c;
            }
        };
        c.id = state.id.clone();
        let bundle = match read_bundle_config(&state.bundle) {
            Ok(b) => b,
            Err(e) => {
                c.annotations = state.annotations;
                c.image = Err(e.to_string());
                return c;
            }
        };
        c.annotations = state.annotations;
        c.annotations.extend(bundle.annotations);
        if image::is_sandbox(&c.annotations) {
            c.sandbox = Some("pod sandbox (infra) container".into());
        }
        c.image = image::identify(
            &state.id,
            &state.bundle,
            bundle.root.as_deref(),
            &c.annotations,
        )
        .map_err(|e| e.to_string());
        c
    }
}

/// Parses the state a runtime writes on a hook's stdin (OCI runtime spec, "State").
pub fn parse_state(bytes: &[u8]) -> Result<HookState, InputError> {
    if bytes.len() > MAX_STATE_BYTES {
        return Err(InputError::StateTooLarge);
    }
    let state: State = serde_json::from_slice(bytes).map_err(InputError::StateSyntax)?;
    // oci-spec defaults every field, so `{}` parses; a hook cannot work without these two.
    if state.id().is_empty() {
        return Err(InputError::StateMissing { field: "id" });
    }
    if state.bundle().as_os_str().is_empty() {
        return Err(InputError::StateMissing { field: "bundle" });
    }
    Ok(HookState {
        id: state.id().clone(),
        bundle: state.bundle().clone(),
        status: state.status().to_string(),
        annotations: state.annotations().clone().unwrap_or_default(),
    })
}

/// The parts of a bundle's config.json the hook uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleConfig {
    pub annotations: HashMap<String, String>,
    /// `root.path`, absolute (a relative one is joined to the bundle).
    pub root: Option<PathBuf>,
}

/// Reads `<bundle>/config.json`.
///
/// It is parsed as oci-spec's `Spec`. oci-spec is stricter than runtimes (its enums refuse,
/// e.g., a capability newer than the crate), and a hook must not fail a container over a field
/// it never looks at; so when `Spec` refuses the document, the two fields used here are read
/// from it alone, and only a document that is not a JSON object at all is an error.
pub fn read_bundle_config(bundle: &Path) -> Result<BundleConfig, InputError> {
    let path = bundle.join("config.json");
    let shown = path.display().to_string();
    let io = |source| InputError::ConfigIo {
        path: shown.clone(),
        source,
    };
    // A runtime's bundle may link config.json; a device or FIFO there is refused (its size
    // says nothing of what a read returns), and the read stops at the bound.
    let file = crate::untrusted::open_regular(&path, Links::Follow).map_err(io)?;
    let bytes = match read_bounded(file, MAX_CONFIG_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(InputError::ConfigTooLarge { path: shown })
        }
        Err(e) => return Err(io(e)),
    };
    parse_bundle_config(&bytes, bundle, &shown)
}

/// Parses the bytes of `<bundle>/config.json` (read from `shown`) as [`read_bundle_config`] does.
pub fn parse_bundle_config(
    bytes: &[u8],
    bundle: &Path,
    shown: &str,
) -> Result<BundleConfig, InputError> {
    let shown = shown.to_string();
    // serde reads a struct from a JSON array too (`[]` would be an empty spec): refuse what is
    // not an object before either parser sees it.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(InputError::ConfigSyntax {
            path: shown,
            message: "not a JSON object".into(),
        });
    }
    let (annotations, root) = match serde_json::from_slice::<Spec>(bytes) {
        Ok(spec) => (
            spec.annotations().clone().unwrap_or_default(),
            spec.root().as_ref().map(|r| r.path().clone()),
        ),
        Err(strict) => {
            let syntax = |message: String| InputError::ConfigSyntax {
                path: shown.clone(),
                message,
            };
            let value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| syntax(e.to_string()))?;
            let obj = value
                .as_object()
                .ok_or_else(|| syntax("not a JSON object".into()))?;
            let annotations = match obj.get("annotations") {
                None | Some(serde_json::Value::Null) => HashMap::new(),
                Some(a) => {
                    HashMap::deserialize(a).map_err(|e| syntax(format!("annotations: {e}")))?
                }
            };
            let root = obj
                .get("root")
                .and_then(|r| r.get("path"))
                .and_then(|p| p.as_str())
                .map(PathBuf::from);
            tracing::debug!(path = %shown, error = %strict, "config.json read without oci-spec's checks");
            (annotations, root)
        }
    };
    Ok(BundleConfig {
        annotations,
        root: root.map(|r| if r.is_absolute() { r } else { bundle.join(r) }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_fields() {
        let s = parse_state(
            br#"{"ociVersion":"1.0.2-dev","id":"abc","status":"creating","pid":42,"bundle":"/b","annotations":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(s.id, "abc");
        assert_eq!(s.bundle, PathBuf::from("/b"));
        assert_eq!(s.status, "creating");
        assert_eq!(s.annotations.get("k").map(String::as_str), Some("v"));
    }

    #[test]
    fn bad_states_say_what_is_wrong() {
        let e = parse_state(b"{not json").unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = parse_state(br#"{"id":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("no bundle"), "{e}");
        let e = parse_state(br#"{"bundle":"/b"}"#).unwrap_err().to_string();
        assert!(e.contains("no id"), "{e}");
        let e = parse_state(br#"[1]"#).unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn config_annotations_and_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"annotations":{"a":"b"}}"#,
        )
        .unwrap();
        let c = read_bundle_config(t.path()).unwrap();
        assert_eq!(c.annotations.get("a").map(String::as_str), Some("b"));
        assert_eq!(c.root, Some(t.path().join("rootfs")));
    }

    #[test]
    fn config_oci_spec_refuses_is_still_read() {
        let t = tempfile::tempdir().unwrap();
        // A capability oci-spec does not know: runtimes accept such names, oci-spec does not.
        std::fs::write(
            t.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_FROM_THE_FUTURE"]}},"root":{"path":"/r"},"annotations":{"a":"b"}}"#,
        )
        .unwrap();
        assert!(serde_json::from_slice::<Spec>(
            &std::fs::read(t.path().join("config.json")).unwrap()
        )
        .is_err());
        let c = read_bundle_config(t.path()).unwrap();
        assert_eq!(c.annotations.get("a").map(String::as_str), Some("b"));
        assert_eq!(c.root, Some(PathBuf::from("/r")));
    }

    #[test]
    fn config_errors() {
        let t = tempfile::tempdir().unwrap();
        let e = read_bundle_config(t.path()).unwrap_err().to_string();
        assert!(e.contains("cannot read the bundle's config.json"), "{e}");
        std::fs::write(t.path().join("config.json"), "[]").unwrap();
        let e = read_bundle_config(t.path()).unwrap_err().to_string();
        assert!(e.contains("is not a runtime spec"), "{e}");
    }
}
