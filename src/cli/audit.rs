//! `image-compat audit`: images x nodes, a verdict per cell, for a person or a script.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use image_compat::audit::{self, Auditor, CellVerdict, ImageUse, Matrix, Node, Options};
use image_compat::check::{Checker, MemoryStore, NodeFeatures, Store};
use image_compat::config::{CacheSettings, Config};
use image_compat::features::{discover, Features};
use image_compat::hook::cache::DiskStore;
use image_compat::registry::Platform;
use image_compat::runtime::Runtime;
use image_compat::untrusted::escape;

use super::features::HostArgs;
use super::registry::{ListFormat, PlatformArg, RegistryArgs};
use super::{parse_tags, UnknownPolicy, EXIT_ERROR, EXIT_NOT_COMPATIBLE};

#[derive(Args)]
pub struct AuditArgs {
    /// Images to check (references).
    #[arg(value_name = "IMAGE")]
    images: Vec<String>,
    /// A file of image references, one per line (`-`: stdin; `#` starts a comment).
    #[arg(long, value_name = "FILE")]
    images_from: Option<PathBuf>,
    /// A pod list (`kubectl get pods -A -o json`; `-`: stdin): every container, init and
    /// ephemeral container image, with the pods using it.
    #[arg(long, value_name = "FILE")]
    pods: Option<PathBuf>,
    /// The images of this node's running containers, from containerd.
    #[arg(long)]
    containerd: bool,
    /// With --containerd: every image in containerd's store, running or not.
    #[arg(long, requires = "containerd")]
    all_images: bool,
    /// containerd's socket (default: the config's, else /run/containerd/containerd.sock).
    #[arg(long, value_name = "PATH")]
    containerd_socket: Option<PathBuf>,
    /// containerd namespace (default: the config's, else k8s.io).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Nodes to check against: a features file (`image-compat features -o json`, a
    /// NodeFeature object, `kubectl get nodefeatures -A -o json`) or a directory of them
    /// (repeatable). A node that does not exist yet is just a features file.
    #[arg(long, value_name = "PATH")]
    nodes: Vec<PathBuf>,
    /// Check against this node too (discovered); the default when no --nodes is given.
    #[arg(long)]
    this_node: bool,
    /// This node's name in the matrix (default: the config's nodeName, else $NODE_NAME, else
    /// the host name, as the plugin names it).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    platform: PlatformArg,
    /// Evaluate only the sets with these tags (as `validate-node --tags`).
    #[arg(long)]
    tags: Vec<String>,
    /// Registry lookups at once.
    #[arg(long, short = 'j', default_value_t = 8)]
    jobs: usize,
    /// Time allowed for one image's registry answer.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s")]
    image_deadline: Duration,
    /// The plugin's config file: its registry settings, cache lifetimes, tags, strictSpecs
    /// and containerd socket apply (flags add to them).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where registry answers are kept between runs (default:
    /// $XDG_CACHE_HOME/image-compat/audit, else ~/.cache/image-compat/audit).
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Keep no answers between runs.
    #[arg(long)]
    no_cache: bool,
    #[arg(long, short, value_enum, default_value_t)]
    output: ListFormat,
    /// Whether a cell without an answer (no artifact, an unknown Proposal F key) fails the
    /// run (exit 1) or not.
    #[arg(long, value_enum, default_value_t)]
    on_unknown: UnknownPolicy,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(a: AuditArgs) -> anyhow::Result<ExitCode> {
    let config = match &a.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    anyhow::ensure!(
        a.registry.registry_username.is_none() && !a.registry.registry_token_stdin,
        "audit reads credentials from the auth files only (--auth-file, ~/.docker/config.json): \
         its images may be in many registries"
    );
    let nodes = Arc::new(load_nodes(&a, &config)?);
    let tags = if a.tags.is_empty() {
        config.tags.clone()
    } else {
        parse_tags(&a.tags)?
    };
    let options = Options {
        jobs: a.jobs,
        tags,
        deadline: a.image_deadline,
    };
    let (matrix, load_warnings) = a.registry.block_on_if_asked(async {
        let images = load_images(&a, &config).await?;
        anyhow::ensure!(
            !images.is_empty(),
            "no images to audit: name some, or give --images-from, --pods or --containerd"
        );
        let mut warnings = Vec::new();
        let auditor = auditor(&a, &config, &nodes, &mut warnings);
        let bar = progress_bar(images.len() * platforms(&nodes));
        let progress = |done: usize, _total: usize| {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        };
        let m = auditor
            .run(&images, nodes.clone(), &options, &progress)
            .await;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok((m, warnings))
    })??;
    for w in load_warnings {
        eprintln!("image-compat: warning: {}", escape(&w));
    }
    // Buffered: stdout is line-buffered, and a fleet's JSON is hundreds of thousands of lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match a.output {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &matrix)?;
            writeln!(out)?;
        }
        ListFormat::Table => table(&mut out, &matrix)?,
    }
    out.flush()?;
    let s = &matrix.summary;
    Ok(if s.error_cells > 0 {
        ExitCode::from(EXIT_ERROR)
    } else if s.incompatible_cells > 0
        || (s.unknown_cells > 0 && a.on_unknown == UnknownPolicy::Deny)
    {
        ExitCode::from(EXIT_NOT_COMPATIBLE)
    } else {
        ExitCode::SUCCESS
    })
}

fn load_nodes(a: &AuditArgs, config: &Config) -> anyhow::Result<Vec<Node>> {
    let platform = a.platform.explicit()?;
    let mut nodes = Vec::new();
    for path in &a.nodes {
        nodes.extend(audit::nodes::load(path, platform.as_ref())?);
    }
    if a.this_node || a.nodes.is_empty() {
        let features: Features = discover(&a.host.discover_options());
        let name = a.node_name.clone().unwrap_or_else(|| config.node_name());
        nodes.push(Node {
            name,
            origin: "this node".into(),
            features,
            platform: platform.unwrap_or_else(Platform::host),
        });
    }
    audit::nodes::check_unique(&nodes)?;
    Ok(nodes)
}

/// The images named, listed, in the pod list and in containerd, once each.
async fn load_images(a: &AuditArgs, config: &Config) -> anyhow::Result<Vec<ImageUse>> {
    anyhow::ensure!(
        !(a.images_from.as_deref() == Some("-".as_ref())
            && a.pods.as_deref() == Some("-".as_ref())),
        "--images-from and --pods cannot both read stdin"
    );
    let mut uses: Vec<ImageUse> = a
        .images
        .iter()
        .map(|i| ImageUse {
            image: i.clone(),
            used_by: Vec::new(),
        })
        .collect();
    if let Some(path) = &a.images_from {
        uses.extend(audit::images::from_list(&read_input(path)?));
    }
    if let Some(path) = &a.pods {
        let text = read_input(path)?;
        uses.extend(audit::images::from_pods(
            &text,
            &path.display().to_string(),
        )?);
    }
    if a.containerd {
        let socket = a
            .containerd_socket
            .clone()
            .unwrap_or_else(|| config.containerd.socket.clone());
        let namespace = a
            .namespace
            .clone()
            .unwrap_or_else(|| config.containerd.namespace.clone());
        let rt = Runtime::connect(&socket, &namespace)?;
        if a.all_images {
            uses.extend(rt.image_names().await?.into_iter().map(|image| ImageUse {
                image,
                used_by: Vec::new(),
            }));
        } else {
            uses.extend(audit::images::from_containers(
                rt.container_images(true).await?,
            ));
        }
    }
    Ok(audit::images::merge(uses))
}

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
    }
    Ok(text)
}

/// The platforms the nodes run: one registry answer per image for each.
fn platforms(nodes: &[Node]) -> usize {
    let set: std::collections::BTreeSet<String> =
        nodes.iter().map(|n| n.platform.to_string()).collect();
    set.len()
}

/// One checker per platform, with the registry settings of the config and the flags, and a
/// cache on disk (of the user running the audit) unless --no-cache.
fn auditor(a: &AuditArgs, config: &Config, nodes: &[Node], warnings: &mut Vec<String>) -> Auditor {
    let mut settings = config.registry.clone();
    let flags = a.registry.settings();
    settings.plain_http.extend(flags.plain_http);
    settings.insecure.extend(flags.insecure);
    settings.ca_files.extend(flags.ca_files);
    settings.hosts_dir = flags.hosts_dir.or(settings.hosts_dir);
    settings.auth_file = flags.auth_file.or(settings.auth_file);
    settings.timeout = flags.timeout.or(settings.timeout);
    let cache: CacheSettings = config.cache.clone();
    let dir = if a.no_cache {
        None
    } else {
        a.cache_dir.clone().or_else(default_cache_dir)
    };
    let reading = config.reading();
    Auditor::new(nodes, |platform| {
        let scope = format!(
            "audit {platform} strict={} {settings:?}",
            config.strict_specs
        );
        let store: Arc<dyn Store> = match &dir {
            Some(d) => match DiskStore::open(d, &scope, cache.max_entries.max(10_000)) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    warnings.push(format!("{e}; answers are not kept between runs"));
                    Arc::new(MemoryStore::new(cache.max_entries.max(10_000)))
                }
            },
            None => Arc::new(MemoryStore::new(cache.max_entries.max(10_000))),
        };
        Arc::new(
            Checker::new(
                settings.client_config(),
                platform.clone(),
                Vec::new(),
                cache.clone(),
                NodeFeatures::new(Features::default()),
                store,
            )
            .with_reading(reading),
        )
    })
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("image-compat").join("audit"))
}

/// A progress bar on a terminal; nothing on a pipe.
fn progress_bar(total: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total == 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} images checked ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Images as rows, nodes as columns; a cell that is not `ok` points to a footnote with its
/// reason (the first failing rule), each distinct reason once.
fn table(out: &mut impl Write, m: &Matrix) -> std::io::Result<()> {
    // Short names as headers; many or long ones as n1, n2, ... with a legend.
    let named = m.nodes.len() <= 8 && m.nodes.iter().all(|n| n.name.chars().count() <= 16);
    let headers: Vec<String> = m
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if named {
                escape(&n.name).to_string()
            } else {
                format!("n{}", i + 1)
            }
        })
        .collect();
    if !named {
        for (h, n) in headers.iter().zip(&m.nodes) {
            writeln!(out, "{h:>4} = {} ({})", escape(&n.name), n.platform)?;
        }
        writeln!(out)?;
    }
    let mut notes: Vec<String> = Vec::new();
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for r in &m.images {
        let cells = r
            .cells
            .iter()
            .map(|c| {
                let mark = match c.verdict {
                    CellVerdict::Compatible => return "ok".to_string(),
                    CellVerdict::Incompatible => "NO",
                    CellVerdict::Unknown => "?",
                    CellVerdict::Error => "ERR",
                };
                let note = escape(&c.reason).to_string();
                let n = match notes.iter().position(|x| *x == note) {
                    Some(i) => i + 1,
                    None => {
                        notes.push(note);
                        notes.len()
                    }
                };
                format!("{mark}[{n}]")
            })
            .collect();
        rows.push((escape(&r.image).to_string(), cells));
    }
    let first = rows
        .iter()
        .map(|(i, _)| i.chars().count())
        .max()
        .unwrap_or(0)
        .max("IMAGE".len());
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|(_, c)| c[i].len())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(2)
        })
        .collect();
    // Columns padded to their width; no padding after the last one.
    let line = |first_cell: &str, cells: &[String]| {
        let mut l = format!("{first_cell:first$}");
        for (c, w) in cells.iter().zip(&widths) {
            l.push_str(&format!("  {c:w$}"));
        }
        l.trim_end().to_string()
    };
    writeln!(out, "{}", line("IMAGE", &headers))?;
    for (image, cells) in &rows {
        writeln!(out, "{}", line(image, cells))?;
    }
    if !notes.is_empty() {
        writeln!(out)?;
        for (i, n) in notes.iter().enumerate() {
            writeln!(out, "[{}] {n}", i + 1)?;
        }
    }
    let s = &m.summary;
    writeln!(out)?;
    writeln!(
        out,
        "{} images x {} nodes: {} compatible everywhere, {} nowhere, {} on some nodes only, {} unknown{}; {} registry answers fetched, {} from the cache",
        s.images,
        s.nodes,
        s.compatible_everywhere,
        s.compatible_nowhere,
        s.some_nodes,
        s.unknown,
        if s.error_cells > 0 {
            format!(" ({} cells could not be checked)", s.error_cells)
        } else {
            String::new()
        },
        s.fetched,
        s.cached
    )
}
