//! The Kubernetes manifests of deploy/: every document parses, and the DaemonSet mounts, probes and runs what the plugin config says.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use image_compat::config::{Config, Mode};
use image_compat::features::HostRoots;
use image_compat::metrics::{parse_listen, HEALTH_PATH};
use image_compat::yaml;
use serde_json::Value;

const OVERLAYS: [(&str, Mode); 2] = [("audit", Mode::Audit), ("enforce", Mode::Enforce)];
/// NFD reads its features.d at this fixed path, never host-prefixed (FEATURES.md).
const FEATURES_D: &str = "/etc/kubernetes/node-feature-discovery/features.d";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// The YAML documents of a file: split on `---` lines, each read by the project's loader.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    split_documents(&text)
        .into_iter()
        .filter_map(|doc| {
            yaml::load(&doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .map(|node| {
                    yaml::to_json(&node).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                })
        })
        .collect()
}

fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

/// A plugin config (the configMapGenerator sources), as opposed to a Kubernetes object.
fn is_plugin_config(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "config.yaml")
}

fn plugin_config(p: &Path) -> Config {
    Config::from_file(p).unwrap_or_else(|e| panic!("{e}"))
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .filter(|k| !k.is_empty())
        .fold(v, |v, k| match k.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[k],
        })
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path}: not a string in {v}"))
}

fn array<'a>(v: &'a Value, path: &str) -> &'a Vec<Value> {
    get(v, path)
        .as_array()
        .unwrap_or_else(|| panic!("{path}: not a list"))
}

/// Every Kubernetes object of the base, by kind.
fn base_objects() -> BTreeMap<String, Value> {
    let kustomization = &documents(&deploy().join("base/kustomization.yaml"))[0];
    let mut objects = BTreeMap::new();
    for r in array(kustomization, "resources") {
        let file = deploy().join("base").join(r.as_str().unwrap());
        for doc in documents(&file) {
            let kind = text(&doc, "kind").to_string();
            assert!(
                objects.insert(kind.clone(), doc).is_none(),
                "two {kind} objects in the base"
            );
        }
    }
    objects
}

fn daemonset() -> Value {
    base_objects()
        .remove("DaemonSet")
        .expect("the base has a DaemonSet")
}

fn container(ds: &Value) -> &Value {
    let containers = array(ds, "spec.template.spec.containers");
    assert_eq!(containers.len(), 1, "one container: the plugin");
    &containers[0]
}

fn volume<'a>(ds: &'a Value, name: &str) -> &'a Value {
    array(ds, "spec.template.spec.volumes")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// Where a path inside the container comes from: the deepest volume mount holding it, the
/// volume, and the rest of the path below the mount point.
fn mounted_at<'a>(ds: &'a Value, path: &Path) -> Option<(&'a Value, &'a Value, PathBuf)> {
    array(container(ds), "volumeMounts")
        .iter()
        .filter_map(|m| {
            let rest = path.strip_prefix(text(m, "mountPath")).ok()?;
            Some((m, volume(ds, text(m, "name")), rest.to_path_buf()))
        })
        .max_by_key(|(m, _, _)| Path::new(text(m, "mountPath")).components().count())
}

/// The host path behind a path inside the container (None: not a host path).
fn host_path_of(ds: &Value, path: &Path) -> Option<PathBuf> {
    let (_, vol, rest) = mounted_at(ds, path)?;
    let host = vol["hostPath"]["path"].as_str()?;
    Some(if rest.as_os_str().is_empty() {
        PathBuf::from(host)
    } else {
        Path::new(host).join(rest)
    })
}

fn assert_host_backed(ds: &Value, in_container: &Path, on_host: &Path, what: &str) {
    assert_eq!(
        host_path_of(ds, in_container).as_deref(),
        Some(on_host),
        "{what}: the config reads {} in the container; it must be the host's {}",
        in_container.display(),
        on_host.display()
    );
}

/// The value following `flag` in the container's args.
fn arg_value<'a>(args: &'a [Value], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.as_str()
}

#[test]
fn every_document_under_deploy_parses() {
    let mut files = Vec::new();
    yaml_files(&deploy(), &mut files);
    assert!(files.len() >= 9, "{files:?}");
    for f in &files {
        if is_plugin_config(f) {
            plugin_config(f);
            continue;
        }
        let docs = documents(f);
        assert!(!docs.is_empty(), "{}: no document", f.display());
        for d in docs {
            let kind = text(&d, "kind");
            assert!(!text(&d, "apiVersion").is_empty(), "{}", f.display());
            if kind != "Kustomization" {
                assert!(
                    !text(&d, "metadata.name").is_empty(),
                    "{}: {kind} without a name",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn kustomizations_name_files_that_exist() {
    let mut files = Vec::new();
    yaml_files(&deploy(), &mut files);
    let kustomizations: Vec<_> = files
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "kustomization.yaml"))
        .collect();
    assert_eq!(kustomizations.len(), 3, "base + 2 overlays");
    for k in kustomizations {
        let dir = k.parent().unwrap();
        let doc = &documents(k)[0];
        assert_eq!(text(doc, "kind"), "Kustomization");
        for r in array(doc, "resources") {
            let p = dir.join(r.as_str().unwrap());
            assert!(p.exists(), "{}: {} is missing", k.display(), p.display());
        }
        for g in get(doc, "configMapGenerator")
            .as_array()
            .into_iter()
            .flatten()
        {
            for f in array(g, "files") {
                let p = dir.join(f.as_str().unwrap());
                assert!(p.is_file(), "{}: {} is missing", k.display(), p.display());
            }
        }
    }
}

#[test]
fn every_path_the_config_reads_is_mounted_from_the_host() {
    let ds = daemonset();
    let config = plugin_config(&deploy().join("base/config.yaml"));

    // Sockets: their directories, so a runtime restart's new socket is seen.
    for (socket, what) in [
        (&config.nri.socket, "nri.socket"),
        (&config.containerd.socket, "containerd.socket"),
    ] {
        assert_host_backed(&ds, socket, socket, what);
        let (m, vol, _) = mounted_at(&ds, socket).unwrap();
        assert_eq!(
            Path::new(text(m, "mountPath")),
            socket.parent().unwrap(),
            "{what}: mount the socket's directory, not the socket"
        );
        assert!(
            matches!(
                vol["hostPath"]["type"].as_str(),
                Some("Directory" | "DirectoryOrCreate")
            ),
            "{what}"
        );
    }

    // NFD's host mounts under the config's prefix, the paths discovery reads.
    let prefix = config
        .features
        .host_prefix
        .as_deref()
        .expect("features.hostPrefix is set in a container");
    let roots = HostRoots::with_prefix(prefix);
    let host = HostRoots::host();
    for (in_container, on_host, what) in [
        (roots.sys.clone(), host.sys.clone(), "sysfs"),
        (
            roots.boot.clone(),
            host.boot.clone(),
            "/boot (kernel config)",
        ),
        (
            roots.etc.join("os-release"),
            host.etc.join("os-release"),
            "system.osrelease",
        ),
        (roots.usr.join("lib"), host.usr.join("lib"), "/usr/lib"),
        (roots.lib.clone(), host.lib.clone(), "/lib"),
        (
            roots.lib.join("modules"),
            host.lib.join("modules"),
            "modules.builtin (kernel.enabledmodule)",
        ),
        (
            roots.proc.join("swaps"),
            host.proc.join("swaps"),
            "memory.swap",
        ),
        (
            roots.proc.join("cpuinfo"),
            host.proc.join("cpuinfo"),
            "compat.io.archspec (archspec reads the CPU from cpuinfo)",
        ),
    ] {
        assert_host_backed(&ds, &in_container, &on_host, what);
    }
    assert_host_backed(
        &ds,
        Path::new(FEATURES_D),
        Path::new(FEATURES_D),
        "features.d",
    );

    // Registry settings.
    let hosts_dir = config.registry.hosts_dir.as_ref().expect("hostsDir");
    assert_host_backed(&ds, hosts_dir, hosts_dir, "registry.hostsDir");
    let auth = config.registry.auth_file.as_ref().expect("authFile");
    let (m, vol, rest) = mounted_at(&ds, auth).expect("registry.authFile is mounted");
    assert_eq!(Path::new(text(m, "mountPath")), auth.parent().unwrap());
    assert_eq!(vol["secret"]["optional"], true, "credentials are optional");
    let items = array(vol, "secret.items");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["key"], ".dockerconfigjson",
        "a dockerconfigjson Secret"
    );
    assert_eq!(Path::new(text(&items[0], "path")), rest);

    // The config itself.
    let args = array(container(&ds), "args");
    let config_path = PathBuf::from(arg_value(args, "--config").expect("--config"));
    let (_, vol, rest) = mounted_at(&ds, &config_path).expect("--config is mounted");
    assert_eq!(text(vol, "configMap.name"), "image-compat-config");
    assert_eq!(rest, Path::new("config.yaml"), "the generator's key");

    // Nothing on the host is writable from the plugin.
    for m in array(container(&ds), "volumeMounts") {
        assert_eq!(m["readOnly"], true, "{} must be read-only", m["name"]);
    }
    for v in array(&ds, "spec.template.spec.volumes") {
        if let Some(p) = v["hostPath"]["path"].as_str() {
            let p = Path::new(p);
            assert!(p.is_absolute(), "{}", p.display());
            assert!(
                !p.components().any(|c| c == Component::ParentDir),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn probes_reach_the_endpoint_the_config_serves() {
    let ds = daemonset();
    let config = plugin_config(&deploy().join("base/config.yaml"));
    let listen = parse_listen(
        config
            .metrics
            .listen
            .as_deref()
            .expect("metrics.listen is set"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let host_network = get(&ds, "spec.template.spec.hostNetwork") == &Value::Bool(true);
    let c = container(&ds);
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(text(get, "path"), HEALTH_PATH, "{probe}");
        assert_eq!(get["port"], listen.port(), "{probe}");
        if listen.ip().is_loopback() {
            // The kubelet probes from the node: only the host network shares its loopback.
            assert!(
                host_network,
                "{probe}: a loopback endpoint needs hostNetwork"
            );
            assert_eq!(text(get, "host"), listen.ip().to_string(), "{probe}");
        } else {
            assert!(
                listen.ip().is_unspecified() || get["host"] == listen.ip().to_string(),
                "{probe}: the kubelet would probe an address the endpoint does not listen on"
            );
        }
    }
    let ports = array(c, "ports");
    assert!(ports.iter().any(|p| p["containerPort"] == listen.port()));
}

/// Where the runtime fails closed (nri-config/'s default validator), the plugin's own pod must
/// still start while no plugin runs: it tolerates the plugin's absence.
#[test]
fn the_pod_tolerates_the_plugins_absence() {
    let ds = daemonset();
    let annotations = get(&ds, "spec.template.metadata.annotations");
    assert_eq!(
        annotations[image_compat::nri::TOLERATION_ANNOTATION],
        "true",
        "{annotations}"
    );
}

#[test]
fn the_container_runs_the_plugin_of_this_package() {
    let ds = daemonset();
    let c = container(&ds);
    let containerfile = std::fs::read_to_string(root().join("Containerfile")).unwrap();
    let command = array(c, "command");
    let binary = command[0].as_str().unwrap();
    assert_eq!(command.len(), 1);
    assert!(
        containerfile.contains(&format!("ENTRYPOINT [\"{binary}\"]")),
        "the Containerfile installs and runs {binary}"
    );
    let args = array(c, "args");
    assert_eq!(args[0], "nri-plugin");
    // External mode: the runtime's pre-launch variable is never set here.
    assert!(get(c, "env")
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["name"] != "NRI_PLUGIN_SOCKET"));
    let node_name = array(c, "env")
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME");
    assert_eq!(
        text(node_name, "valueFrom.fieldRef.fieldPath"),
        "spec.nodeName"
    );
    let config = plugin_config(&deploy().join("base/config.yaml"));
    assert_eq!(
        config.node_name, None,
        "the config leaves the name to $NODE_NAME"
    );

    // The image is the one the kustomization sets, tagged with this package's version.
    let k = &documents(&deploy().join("base/kustomization.yaml"))[0];
    let image = array(k, "images")
        .iter()
        .find(|i| i["name"] == c["image"])
        .expect("kustomization images[] sets the container's image");
    assert_eq!(text(image, "newTag"), env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_command_line_flags_exist_in_the_binary() {
    let ds = daemonset();
    let args = array(container(&ds), "args");
    let out = Command::new(env!("CARGO_BIN_EXE_image-compat"))
        .args(["nri-plugin", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unrecognized subcommand"),
            "nri-plugin --help failed: {err}"
        );
        eprintln!(
            "SKIPPED: this build has no nri-plugin subcommand yet: {}",
            err.trim()
        );
        return;
    }
    for flag in args
        .iter()
        .filter_map(|a| a.as_str())
        .filter(|a| a.starts_with("--"))
    {
        assert!(
            help.contains(flag),
            "nri-plugin --help has no {flag}:\n{help}"
        );
    }
}

#[test]
fn the_pod_is_node_critical_everywhere_and_confined() {
    let objects = base_objects();
    let ds = &objects["DaemonSet"];
    let spec = get(ds, "spec.template.spec");
    assert_eq!(spec["priorityClassName"], "system-node-critical");
    let tolerations = array(spec, "tolerations");
    assert!(
        tolerations.iter().any(|t| t["operator"] == "Exists"
            && t.get("key").is_none()
            && t.get("effect").is_none()),
        "tolerate every taint: {tolerations:?}"
    );
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(
        spec["serviceAccountName"],
        objects["ServiceAccount"]["metadata"]["name"]
    );
    let sc = &container(ds)["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    for key in ["hostPID", "hostIPC"] {
        assert!(spec.get(key).is_none_or(|v| v == false), "{key}");
    }

    let res = &container(ds)["resources"];
    let mib = |q: &Value| -> u64 {
        let q = q.as_str().unwrap();
        q.strip_suffix("Mi").unwrap().parse().unwrap()
    };
    let request = mib(&res["requests"]["memory"]);
    let limit = mib(&res["limits"]["memory"]);
    assert!(request >= 16 && limit >= 2 * request, "{res}");
    assert!(res["requests"]["cpu"].is_string());

    // The namespace exists, is privileged for Pod Security, and is exempt from the plugin.
    let k = &documents(&deploy().join("base/kustomization.yaml"))[0];
    let ns = text(k, "namespace");
    assert_eq!(objects["Namespace"]["metadata"]["name"], ns);
    assert_eq!(
        objects["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let config = plugin_config(&deploy().join("base/config.yaml"));
    for exempt in [ns, "kube-system"] {
        assert!(
            config.exempt_namespaces.iter().any(|n| n == exempt),
            "exemptNamespaces lacks {exempt}"
        );
    }
    let quota = &objects["ResourceQuota"];
    assert_eq!(
        quota["spec"]["scopeSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["system-node-critical"])
    );
}

#[test]
fn each_overlay_sets_its_mode_and_nothing_else() {
    let base = plugin_config(&deploy().join("base/config.yaml"));
    for (name, mode) in OVERLAYS {
        let dir = deploy().join("overlays").join(name);
        let k = &documents(&dir.join("kustomization.yaml"))[0];
        assert_eq!(array(k, "resources"), &vec![Value::from("../../base")]);
        let generator = &array(k, "configMapGenerator")[0];
        assert_eq!(generator["name"], "image-compat-config");
        assert_eq!(generator["behavior"], "replace");
        assert_eq!(array(generator, "files"), &vec![Value::from("config.yaml")]);
        let mut config = plugin_config(&dir.join("config.yaml"));
        assert_eq!(config.mode, mode, "overlay {name}");
        config.mode = base.mode;
        assert_eq!(
            config, base,
            "overlay {name} differs from the base beyond its mode"
        );
    }
}

/// The overlays as kustomize builds them, when kubectl is on this machine.
#[test]
fn kustomize_builds_each_overlay() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: kubectl is not installed; the overlays were checked file by file");
        return;
    }
    for (name, mode) in OVERLAYS {
        let dir = deploy().join("overlays").join(name);
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let rendered = String::from_utf8(out.stdout).unwrap();
        let docs: Vec<Value> = split_documents(&rendered)
            .iter()
            .filter_map(|d| yaml::load(d).unwrap().map(|n| yaml::to_json(&n).unwrap()))
            .collect();
        let of_kind =
            |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
        let cms = of_kind("ConfigMap");
        assert_eq!(cms.len(), 1);
        let config = Config::parse(cms[0]["data"]["config.yaml"].as_str().unwrap(), name)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.mode, mode);
        let ds = of_kind("DaemonSet");
        assert_eq!(ds.len(), 1);
        let cm_name = cms[0]["metadata"]["name"].as_str().unwrap();
        assert!(
            cm_name.starts_with("image-compat-config-"),
            "a hashed name: {cm_name}"
        );
        assert_eq!(volume(ds[0], "config")["configMap"]["name"], cm_name);
        for d in &docs {
            if d["kind"] != "Namespace" {
                assert_eq!(d["metadata"]["namespace"], "image-compat", "{}", d["kind"]);
            }
        }
        let image = text(container(ds[0]), "image");
        assert!(
            image.ends_with(&format!("/image-compat:{}", env!("CARGO_PKG_VERSION"))),
            "{image}"
        );
    }
}
