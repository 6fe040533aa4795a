//! Plain Rust views of the NRI objects the handler sees, and their conversions from/to the wire.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::api;

/// A runtime lifecycle event a plugin can subscribe to (NRI's `Event`, same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    RunPodSandbox = 1,
    StopPodSandbox = 2,
    RemovePodSandbox = 3,
    CreateContainer = 4,
    PostCreateContainer = 5,
    StartContainer = 6,
    PostStartContainer = 7,
    UpdateContainer = 8,
    PostUpdateContainer = 9,
    StopContainer = 10,
    RemoveContainer = 11,
    /// NRI >= 0.10.
    UpdatePodSandbox = 12,
    /// NRI >= 0.10.
    PostUpdatePodSandbox = 13,
    /// NRI >= 0.10.
    ValidateContainerAdjustment = 14,
}

impl Event {
    /// Every event, in wire order.
    pub const ALL: [Event; 14] = [
        Event::RunPodSandbox,
        Event::StopPodSandbox,
        Event::RemovePodSandbox,
        Event::CreateContainer,
        Event::PostCreateContainer,
        Event::StartContainer,
        Event::PostStartContainer,
        Event::UpdateContainer,
        Event::PostUpdateContainer,
        Event::StopContainer,
        Event::RemoveContainer,
        Event::UpdatePodSandbox,
        Event::PostUpdatePodSandbox,
        Event::ValidateContainerAdjustment,
    ];

    /// The event for a wire value, if it is one a plugin can subscribe to.
    pub fn from_wire(value: i32) -> Option<Event> {
        Event::ALL.into_iter().find(|e| *e as i32 == value)
    }

    /// The NRI method name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Event::RunPodSandbox => "RunPodSandbox",
            Event::StopPodSandbox => "StopPodSandbox",
            Event::RemovePodSandbox => "RemovePodSandbox",
            Event::CreateContainer => "CreateContainer",
            Event::PostCreateContainer => "PostCreateContainer",
            Event::StartContainer => "StartContainer",
            Event::PostStartContainer => "PostStartContainer",
            Event::UpdateContainer => "UpdateContainer",
            Event::PostUpdateContainer => "PostUpdateContainer",
            Event::StopContainer => "StopContainer",
            Event::RemoveContainer => "RemoveContainer",
            Event::UpdatePodSandbox => "UpdatePodSandbox",
            Event::PostUpdatePodSandbox => "PostUpdatePodSandbox",
            Event::ValidateContainerAdjustment => "ValidateContainerAdjustment",
        }
    }
}

/// A set of events, encoded on the wire as ConfigureResponse.events: bit (event - 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventSet(i32);

impl EventSet {
    /// No events. Note that an empty set must never be sent: the runtime reads 0 as "all".
    pub const EMPTY: EventSet = EventSet(0);

    /// The events every NRI runtime knows (before 0.10: RunPodSandbox..RemoveContainer).
    pub fn legacy() -> EventSet {
        Event::ALL[..11].iter().copied().collect()
    }

    /// Every event of the newest API.
    pub fn all() -> EventSet {
        Event::ALL.iter().copied().collect()
    }

    /// The wire mask.
    pub fn bits(self) -> i32 {
        self.0
    }

    /// The set for a wire mask, ignoring bits this API does not know.
    pub fn from_bits(bits: i32) -> EventSet {
        EventSet(bits & EventSet::all().0)
    }

    pub fn with(mut self, event: Event) -> EventSet {
        self.0 |= 1 << (event as i32 - 1);
        self
    }

    pub fn contains(self, event: Event) -> bool {
        self.0 & (1 << (event as i32 - 1)) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn intersection(self, other: EventSet) -> EventSet {
        EventSet(self.0 & other.0)
    }

    pub fn difference(self, other: EventSet) -> EventSet {
        EventSet(self.0 & !other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Event> {
        Event::ALL.into_iter().filter(move |e| self.contains(*e))
    }

    /// Event names joined by commas, for logs.
    pub fn names(self) -> String {
        self.iter().map(Event::name).collect::<Vec<_>>().join(",")
    }
}

impl FromIterator<Event> for EventSet {
    fn from_iter<I: IntoIterator<Item = Event>>(iter: I) -> Self {
        iter.into_iter().fold(EventSet::EMPTY, EventSet::with)
    }
}

/// What the runtime told the plugin in Configure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigureInfo {
    /// The plugin's drop-in configuration; only pre-launched plugins get one, else empty.
    pub config: String,
    pub runtime_name: String,
    pub runtime_version: String,
    /// The runtime's NRI version, sent from NRI 0.12 on.
    pub nri_version: Option<String>,
    /// Sent from NRI 0.7 on (containerd 1.7.24's NRI 0.6.1 sends none).
    pub registration_timeout: Option<Duration>,
    /// Time the runtime gives the plugin per request; sent from NRI 0.7 on.
    pub request_timeout: Option<Duration>,
}

impl ConfigureInfo {
    /// NRI's default per-request timeout, in force when the runtime does not say.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

    /// The per-request budget to plan with: the runtime's value or NRI's default.
    pub fn effective_request_timeout(&self) -> Duration {
        self.request_timeout
            .unwrap_or(Self::DEFAULT_REQUEST_TIMEOUT)
    }

    pub(crate) fn from_wire(req: &api::ConfigureRequest) -> ConfigureInfo {
        let millis = |ms: i64| {
            u64::try_from(ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
        };
        ConfigureInfo {
            config: req.config.clone(),
            runtime_name: req.runtime_name.clone(),
            runtime_version: req.runtime_version.clone(),
            nri_version: Some(req.nri_version.clone()).filter(|v| !v.is_empty()),
            registration_timeout: millis(req.registration_timeout),
            request_timeout: millis(req.request_timeout),
        }
    }

    /// The events this runtime accepts in a subscription. Runtimes before NRI 0.10 fail the
    /// whole registration when asked for an event they do not know, so when in doubt this
    /// answers the legacy set.
    pub fn supported_events(&self) -> EventSet {
        if let Some(v) = self.nri_version.as_deref().and_then(parse_version) {
            return if v >= (0, 10, 0) {
                EventSet::all()
            } else {
                EventSet::legacy()
            };
        }
        // NRI 0.10 shipped with containerd 2.2.0 and CRI-O 1.34.0 (upstream's own
        // runtime -> NRI version table, pkg/api/version.go).
        let first_with_010 = match self.runtime_name.as_str() {
            "containerd" => (2, 2, 0),
            "cri-o" => (1, 34, 0),
            _ => return EventSet::legacy(),
        };
        match parse_version(&self.runtime_version) {
            Some(v) if v >= first_with_010 => EventSet::all(),
            _ => EventSet::legacy(),
        }
    }
}

/// The annotation the runtime's default validator (NRI >= 0.12) reads to let a pod or container
/// be created while the image-compat plugin is absent (`tolerate_missing_plugins_annotation`,
/// value `true`): the plugin's own DaemonSet pod carries it (nri-config/, deploy/).
pub const TOLERATION_ANNOTATION: &str = "tolerate-missing-plugins.image-compat.io";

/// The NRI API this plugin speaks: proto/nri/api.proto follows upstream's v0.12.2 wire format
/// (what it leaves out, protobuf skips). Sent in RegisterPlugin, which runtimes log ("registered
/// ... with NRI version").
pub const NRI_API_VERSION: &str = "v0.12.2";

impl ConfigureInfo {
    /// The NRI protocol the plugin and this runtime talk: the older of the runtime's version
    /// and [`NRI_API_VERSION`]. Runtimes before NRI 0.12 do not send theirs; it is then told
    /// from the runtime's version, as [`ConfigureInfo::supported_events`] does, and marked
    /// `inferred`.
    pub fn protocol(&self) -> String {
        let ours = parse_version(NRI_API_VERSION).expect("NRI_API_VERSION is a version");
        if let Some(v) = self.nri_version.as_deref().and_then(parse_version) {
            let (major, minor, patch) = v.min(ours);
            return format!("v{major}.{minor}.{patch}");
        }
        if self
            .supported_events()
            .contains(Event::ValidateContainerAdjustment)
        {
            "v0.10 or v0.11 (inferred from the runtime's version)".to_string()
        } else {
            "v0.9 or older (inferred from the runtime's version)".to_string()
        }
    }
}

/// Parses "v1.2.3", "1.2.3-rc.1", "2.1.9~ds1" and the like into (major, minor, patch).
pub(crate) fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let text = text.trim().trim_start_matches('v');
    let core = text
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// A pod as the runtime describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSandbox {
    pub id: String,
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub runtime_handler: String,
    pub pid: u32,
    pub ips: Vec<String>,
    pub cgroup_parent: String,
}

/// A container's state as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerState {
    #[default]
    Unknown,
    Created,
    Paused,
    Running,
    Stopped,
}

/// A mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    pub destination: String,
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// The container's image as NRI >= 0.12.2 names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageRef {
    /// The reference the container was created from.
    pub name: String,
    /// Index or manifest digest.
    pub digest: String,
    /// Platform-specific config digest.
    pub config_digest: String,
}

/// User and groups the container runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// A container as the runtime describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    pub id: String,
    pub pod_sandbox_id: String,
    pub name: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub mounts: Vec<Mount>,
    pub pid: u32,
    /// Unix nanoseconds; 0 when not sent.
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub status_reason: String,
    pub status_message: String,
    pub cdi_devices: Vec<String>,
    pub user: Option<User>,
    /// Only from runtimes with NRI >= 0.12.2; older ones leave the image to annotations.
    pub image: Option<ImageRef>,
}

/// What the plugin wants changed in a container being created.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Adjustment {
    /// Annotations to add or overwrite; a key starting with "-" asks the runtime to remove
    /// the annotation named by the rest of the key.
    pub annotations: BTreeMap<String, String>,
    /// Other containers the runtime should stop.
    pub evictions: Vec<Eviction>,
}

impl Adjustment {
    /// Adds an annotation.
    pub fn annotate(mut self, key: impl Into<String>, value: impl Into<String>) -> Adjustment {
        self.annotations.insert(key.into(), value.into());
        self
    }
}

/// A request to stop an existing container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Eviction {
    pub container_id: String,
    pub reason: String,
}

/// A plugin taking part in a container creation (ValidateContainerAdjustment).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginRef {
    pub name: String,
    pub index: String,
}

/// A ValidateContainerAdjustment request (NRI >= 0.10): the container as requested and what
/// all plugins together want to change in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Validation {
    pub pod: PodSandbox,
    pub container: Container,
    /// Annotations the plugins add (or, with a "-" key prefix, remove).
    pub annotations: BTreeMap<String, String>,
    /// Environment entries the plugins set ("KEY=VALUE").
    pub env: Vec<String>,
    /// Plugins consulted for this container.
    pub plugins: Vec<PluginRef>,
}

fn sorted(map: &HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl From<&api::PodSandbox> for PodSandbox {
    fn from(pod: &api::PodSandbox) -> Self {
        PodSandbox {
            id: pod.id.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            labels: sorted(&pod.labels),
            annotations: sorted(&pod.annotations),
            runtime_handler: pod.runtime_handler.clone(),
            pid: pod.pid,
            ips: pod.ips.clone(),
            cgroup_parent: pod
                .linux
                .as_ref()
                .map(|l| l.cgroup_parent.clone())
                .unwrap_or_default(),
        }
    }
}

impl From<i32> for ContainerState {
    fn from(value: i32) -> Self {
        match api::ContainerState::try_from(value) {
            Ok(api::ContainerState::ContainerCreated) => ContainerState::Created,
            Ok(api::ContainerState::ContainerPaused) => ContainerState::Paused,
            Ok(api::ContainerState::ContainerRunning) => ContainerState::Running,
            Ok(api::ContainerState::ContainerStopped) => ContainerState::Stopped,
            _ => ContainerState::Unknown,
        }
    }
}

impl From<&api::Container> for Container {
    fn from(ctr: &api::Container) -> Self {
        Container {
            id: ctr.id.clone(),
            pod_sandbox_id: ctr.pod_sandbox_id.clone(),
            name: ctr.name.clone(),
            state: ContainerState::from(ctr.state),
            labels: sorted(&ctr.labels),
            annotations: sorted(&ctr.annotations),
            args: ctr.args.clone(),
            env: ctr.env.clone(),
            mounts: ctr
                .mounts
                .iter()
                .map(|m| Mount {
                    destination: m.destination.clone(),
                    kind: m.r#type.clone(),
                    source: m.source.clone(),
                    options: m.options.clone(),
                })
                .collect(),
            pid: ctr.pid,
            created_at: ctr.created_at,
            started_at: ctr.started_at,
            finished_at: ctr.finished_at,
            exit_code: ctr.exit_code,
            status_reason: ctr.status_reason.clone(),
            status_message: ctr.status_message.clone(),
            cdi_devices: ctr.cdi_devices.iter().map(|d| d.name.clone()).collect(),
            user: ctr.user.as_ref().map(|u| User {
                uid: u.uid,
                gid: u.gid,
                additional_gids: u.additional_gids.clone(),
            }),
            image: ctr
                .image
                .as_ref()
                .filter(|i| {
                    !(i.name.is_empty() && i.digest.is_empty() && i.config_digest.is_empty())
                })
                .map(|i| ImageRef {
                    name: i.name.clone(),
                    digest: i.digest.clone(),
                    config_digest: i.config_digest.clone(),
                }),
        }
    }
}

impl From<&api::ValidateContainerAdjustmentRequest> for Validation {
    fn from(req: &api::ValidateContainerAdjustmentRequest) -> Self {
        let adjust = req.adjust.as_ref();
        Validation {
            pod: req.pod.as_ref().map(PodSandbox::from).unwrap_or_default(),
            container: req
                .container
                .as_ref()
                .map(Container::from)
                .unwrap_or_default(),
            annotations: adjust.map(|a| sorted(&a.annotations)).unwrap_or_default(),
            env: adjust
                .map(|a| {
                    a.env
                        .iter()
                        .map(|kv| format!("{}={}", kv.key, kv.value))
                        .collect()
                })
                .unwrap_or_default(),
            plugins: req
                .plugins
                .iter()
                .map(|p| PluginRef {
                    name: p.name.clone(),
                    index: p.index.clone(),
                })
                .collect(),
        }
    }
}

impl Adjustment {
    pub(crate) fn into_wire(self) -> api::CreateContainerResponse {
        let adjust = (!self.annotations.is_empty()).then(|| api::ContainerAdjustment {
            annotations: self.annotations.into_iter().collect(),
            ..Default::default()
        });
        api::CreateContainerResponse {
            adjust,
            update: Vec::new(),
            evict: self
                .evictions
                .into_iter()
                .map(|e| api::ContainerEviction {
                    container_id: e.container_id,
                    reason: e.reason,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn event_bits_follow_the_wire_numbering() {
        let set: EventSet = [Event::CreateContainer, Event::ValidateContainerAdjustment]
            .into_iter()
            .collect();
        assert_eq!(set.bits(), (1 << 3) | (1 << 13));
        assert!(set.contains(Event::CreateContainer));
        assert!(!set.contains(Event::RunPodSandbox));
        assert_eq!(EventSet::legacy().bits(), (1 << 11) - 1);
        assert_eq!(EventSet::all().bits(), (1 << 14) - 1);
        assert_eq!(
            set.difference(EventSet::legacy())
                .iter()
                .collect::<Vec<_>>(),
            [Event::ValidateContainerAdjustment]
        );
        assert_eq!(
            Event::from_wire(14),
            Some(Event::ValidateContainerAdjustment)
        );
        assert_eq!(Event::from_wire(15), None);
        assert_eq!(Event::from_wire(0), None);
    }

    #[test]
    fn versions_parse_loosely() {
        assert_eq!(parse_version("v2.1.9"), Some((2, 1, 9)));
        assert_eq!(parse_version("2.1.9~ds1"), Some((2, 1, 9)));
        assert_eq!(parse_version("1.34.0-rc.1"), Some((1, 34, 0)));
        assert_eq!(parse_version("v0.12"), Some((0, 12, 0)));
        assert_eq!(parse_version("unknown"), None);
        assert_eq!(parse_version(""), None);
    }

    fn info(name: &str, version: &str, nri: Option<&str>) -> ConfigureInfo {
        ConfigureInfo {
            runtime_name: name.into(),
            runtime_version: version.into(),
            nri_version: nri.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn validation_is_only_offered_to_runtimes_that_know_it() {
        let v = Event::ValidateContainerAdjustment;
        assert!(!info("containerd", "2.1.9", None)
            .supported_events()
            .contains(v));
        assert!(!info("containerd", "v1.7.24", None)
            .supported_events()
            .contains(v));
        assert!(info("containerd", "v2.2.0", None)
            .supported_events()
            .contains(v));
        assert!(info("cri-o", "1.34.1", None).supported_events().contains(v));
        assert!(!info("cri-o", "1.33.9", None).supported_events().contains(v));
        assert!(!info("something", "9.9.9", None)
            .supported_events()
            .contains(v));
        assert!(info("something", "", Some("v0.12.2"))
            .supported_events()
            .contains(v));
        assert!(!info("containerd", "v9.0.0", Some("v0.9.0"))
            .supported_events()
            .contains(v));
        assert!(info("containerd", "v2.2.1", Some("unknown"))
            .supported_events()
            .contains(v));
    }

    #[test]
    fn the_protocol_is_the_older_of_both_sides() {
        assert_eq!(
            info("containerd", "v2.3.4", Some("v0.12.0")).protocol(),
            "v0.12.0"
        );
        assert_eq!(info("x", "", Some("v0.13.1")).protocol(), "v0.12.2");
        assert!(info("containerd", "v2.2.0", None)
            .protocol()
            .starts_with("v0.10 or v0.11 (inferred"));
        assert!(info("containerd", "2.1.9~ds1", None)
            .protocol()
            .starts_with("v0.9 or older (inferred"));
    }

    #[test]
    fn configure_info_maps_zero_timeouts_to_none() {
        let req = api::ConfigureRequest {
            config: "x: 1".into(),
            runtime_name: "containerd".into(),
            runtime_version: "v1.7.24".into(),
            registration_timeout: 0,
            request_timeout: 0,
            nri_version: String::new(),
        };
        let info = ConfigureInfo::from_wire(&req);
        assert_eq!(info.request_timeout, None);
        assert_eq!(info.effective_request_timeout(), Duration::from_secs(2));
        let req = api::ConfigureRequest {
            request_timeout: 1500,
            registration_timeout: 5000,
            ..req
        };
        let info = ConfigureInfo::from_wire(&req);
        assert_eq!(info.request_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(info.registration_timeout, Some(Duration::from_secs(5)));
    }

    #[test]
    fn container_image_only_when_sent() {
        let mut wire = api::Container {
            id: "c1".into(),
            ..Default::default()
        };
        assert_eq!(Container::from(&wire).image, None);
        wire.image = Some(api::Image {
            name: "registry.example/app:1".into(),
            digest: "sha256:aa".into(),
            config_digest: "sha256:bb".into(),
        });
        let image = Container::from(&wire).image.expect("image sent");
        assert_eq!(image.digest, "sha256:aa");
        assert_eq!(image.config_digest, "sha256:bb");
    }

    #[test]
    fn unknown_fields_from_newer_runtimes_are_skipped() {
        // A Container with our id (1) and name (3), then field 11 (linux, not in our subset)
        // and a made-up field 99, both length-delimited, as a newer runtime could send.
        let mut bytes = api::Container {
            id: "c1".into(),
            name: "app".into(),
            ..Default::default()
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[(11 << 3) | 2, 3, 0x0a, 1, b'x']);
        bytes.extend_from_slice(&[0x9a, 0x06, 2, b'h', b'i']); // field 99, wire type 2
        let ctr = api::Container::decode(bytes.as_slice()).expect("unknown fields are skipped");
        assert_eq!(ctr.id, "c1");
        assert_eq!(ctr.name, "app");
    }

    #[test]
    fn adjustment_goes_on_the_wire_as_annotations_and_evictions() {
        let mut adj = Adjustment::default().annotate("a", "1");
        adj.evictions.push(Eviction {
            container_id: "c9".into(),
            reason: "why".into(),
        });
        let wire = adj.into_wire();
        let annotations = wire.adjust.expect("adjustment present").annotations;
        assert_eq!(annotations.get("a").map(String::as_str), Some("1"));
        assert_eq!(wire.evict[0].container_id, "c9");
        assert!(Adjustment::default().into_wire().adjust.is_none());
    }
}
