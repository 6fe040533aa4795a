//! The in-memory image index (name -> record, config digest -> records) and the subjects rule.

use std::collections::{BTreeSet, HashMap};

use super::name::{self, ImageName};
use super::RuntimeError;
use crate::registry::{media, Descriptor, Digest, Platform, Reference, SubjectKind};

/// One containerd image record: its name and the descriptor it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub name: String,
    /// What the name points at: an index (multi-platform) or an image manifest.
    pub target: Descriptor,
}

impl ImageRecord {
    /// Whether the target is a multi-platform index (or docker manifest list).
    pub fn is_index(&self) -> bool {
        media::is_index(&self.target.media_type)
    }
}

/// What a record's target comes to on this host's platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The image config digest: CRI's image id, shared by every name of the same image.
    pub config: Digest,
    /// The platform's image manifest (the target itself for a single-platform image).
    pub manifest: Descriptor,
    /// The manifest's platform as the index lists it; None when the target is a manifest.
    pub platform: Option<Platform>,
}

/// A record's state in the index: resolved, or why not (content missing, no manifest for this
/// platform, not an image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Resolved(Resolved),
    Unresolved(String),
}

/// A place where a compatibility artifact of the image may hang: a digest in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `registry/repository@digest`.
    pub reference: Reference,
    /// Whether the digest is the platform manifest or the index holding it.
    pub kind: SubjectKind,
    /// The image record the digest came from.
    pub record: String,
}

/// Everything the plugin needs to find an image's compatibility artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSubjects {
    /// The record found for the name asked.
    pub image: ImageRecord,
    pub config: Digest,
    pub manifest: Descriptor,
    pub platform: Option<Platform>,
    /// Where to look, in precedence order: the named image's platform manifest then its index
    /// under the name's repository, then the same for every other record of the same config.
    pub candidates: Vec<Candidate>,
    /// The other records sharing the config digest, in the order their candidates come.
    pub shared_with: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    record: ImageRecord,
    /// Set when the name is a registry reference as CRI writes one.
    repository: Option<Reference>,
    resolution: Resolution,
}

impl Entry {
    fn resolved(&self) -> Option<&Resolved> {
        match &self.resolution {
            Resolution::Resolved(r) => Some(r),
            Resolution::Unresolved(_) => None,
        }
    }
}

/// Image records of one namespace, indexed for lookups that cost no RPC. `Runtime` keeps one
/// up to date from containerd; it is public so the subjects rule can be tested and measured
/// on recorded data.
#[derive(Debug, Clone, Default)]
pub struct ImageIndex {
    entries: HashMap<String, Entry>,
    by_config: HashMap<Digest, BTreeSet<String>>,
    /// Target and platform manifest digests -> record names, for `repo@digest` names without
    /// a record of their own.
    by_digest: HashMap<Digest, BTreeSet<String>>,
}

impl ImageIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds or replaces a record; returns the one replaced.
    pub fn insert(&mut self, record: ImageRecord, resolution: Resolution) -> Option<ImageRecord> {
        let previous = self.remove(&record.name);
        let name = record.name.clone();
        let link = |map: &mut HashMap<Digest, BTreeSet<String>>, d: &Digest| {
            map.entry(d.clone()).or_default().insert(name.clone());
        };
        link(&mut self.by_digest, &record.target.digest);
        if let Resolution::Resolved(r) = &resolution {
            link(&mut self.by_config, &r.config);
            link(&mut self.by_digest, &r.manifest.digest);
        }
        let entry = Entry {
            repository: name::repository_of(&record.name),
            record,
            resolution,
        };
        self.entries.insert(name, entry);
        previous
    }

    /// Removes a record; returns it when it was there.
    pub fn remove(&mut self, record_name: &str) -> Option<ImageRecord> {
        let old = self.entries.remove(record_name)?;
        let unlink = |map: &mut HashMap<Digest, BTreeSet<String>>, d: &Digest| {
            if let Some(set) = map.get_mut(d) {
                set.remove(record_name);
                if set.is_empty() {
                    map.remove(d);
                }
            }
        };
        unlink(&mut self.by_digest, &old.record.target.digest);
        if let Resolution::Resolved(r) = &old.resolution {
            unlink(&mut self.by_config, &r.config);
            unlink(&mut self.by_digest, &r.manifest.digest);
        }
        Some(old.record)
    }

    pub fn get(&self, record_name: &str) -> Option<(&ImageRecord, &Resolution)> {
        self.entries
            .get(record_name)
            .map(|e| (&e.record, &e.resolution))
    }

    /// Every record, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = (&ImageRecord, &Resolution)> {
        self.entries.values().map(|e| (&e.record, &e.resolution))
    }

    /// The subjects of the image a name (as a pod or CRI writes it) refers to.
    pub fn subjects(&self, image_name: &str) -> Result<ImageSubjects, RuntimeError> {
        self.subjects_of(&self.parse_name(image_name)?, image_name)
    }

    /// Parses a name; one that is a record's name as CRI writes it (what 1.7 always annotates,
    /// and 2.1 for fully qualified pod images) reuses the record's parsed reference, which
    /// saves most of a lookup's time.
    pub(crate) fn parse_name(&self, image_name: &str) -> Result<ImageName, RuntimeError> {
        let trimmed = image_name.trim();
        if let Some(reference) = self
            .entries
            .get(trimmed)
            .and_then(|e| e.repository.as_ref())
        {
            return Ok(ImageName::Reference {
                key: trimmed.to_string(),
                reference: reference.clone(),
            });
        }
        name::parse(image_name)
    }

    pub(crate) fn subjects_of(
        &self,
        name: &ImageName,
        asked: &str,
    ) -> Result<ImageSubjects, RuntimeError> {
        let primary = self.find(name).ok_or_else(|| RuntimeError::NotFound {
            name: asked.trim().to_string(),
        })?;
        let resolved = match &primary.resolution {
            Resolution::Resolved(r) => r,
            Resolution::Unresolved(reason) => {
                return Err(RuntimeError::Unresolved {
                    name: primary.record.name.clone(),
                    reason: reason.clone(),
                })
            }
        };
        // The name's own repository comes first even when the record was found by digest
        // under another repository's name: the pod asked for that repository.
        let primary_repo = match name {
            ImageName::Reference { reference, .. } => Some(reference.clone()),
            ImageName::Id(_) => primary.repository.clone(),
        };
        let mut others: Vec<&Entry> = self
            .by_config
            .get(&resolved.config)
            .into_iter()
            .flatten()
            .filter(|n| **n != primary.record.name)
            .filter_map(|n| self.entries.get(n))
            .collect();
        // References first (their own repository is known), then ids and local names, whose
        // digests can only be tried under the repositories of the others. Names sort within
        // each group (the set is ordered), so the result is stable.
        others.sort_by_key(|e| e.repository.is_none());
        let mut repos: Vec<&Reference> = Vec::new();
        for r in primary_repo
            .iter()
            .chain(others.iter().filter_map(|e| e.repository.as_ref()))
        {
            if !repos.iter().any(|x| same_repository(x, r)) {
                repos.push(r);
            }
        }

        let mut out = Candidates::default();
        match &primary_repo {
            Some(r) => out.push_entry(r, primary),
            None => repos.iter().for_each(|r| out.push_entry(r, primary)),
        }
        for e in &others {
            match &e.repository {
                Some(r) => out.push_entry(r, e),
                None => repos.iter().for_each(|r| out.push_entry(r, e)),
            }
        }
        Ok(ImageSubjects {
            image: primary.record.clone(),
            config: resolved.config.clone(),
            manifest: resolved.manifest.clone(),
            platform: resolved.platform.clone(),
            candidates: out.list,
            shared_with: others.iter().map(|e| e.record.name.clone()).collect(),
        })
    }

    /// The record a name refers to: the record of that name, else (a `repo@digest` or an id
    /// without a record of its own) a record whose target, manifest or config is that digest.
    fn find(&self, name: &ImageName) -> Option<&Entry> {
        if let Some(e) = self.entries.get(&name.key()) {
            return Some(e);
        }
        let (digest, map, repo) = match name {
            ImageName::Reference { reference, .. } => {
                (reference.digest()?, &self.by_digest, Some(reference.name()))
            }
            ImageName::Id(d) => (d, &self.by_config, None),
        };
        let names = map.get(digest)?;
        let candidates = || names.iter().filter_map(|n| self.entries.get(n));
        // Prefer a record of the same repository, then a resolved one, then any.
        candidates()
            .find(|e| {
                e.resolved().is_some()
                    && repo.is_some()
                    && e.repository.as_ref().map(|r| r.name()) == repo
            })
            .or_else(|| candidates().find(|e| e.resolved().is_some()))
            .or_else(|| candidates().next())
    }
}

fn same_repository(a: &Reference, b: &Reference) -> bool {
    a.registry() == b.registry() && a.repository() == b.repository()
}

/// The list under construction; a handful of entries, so duplicates are found by a scan.
#[derive(Default)]
struct Candidates {
    list: Vec<Candidate>,
}

impl Candidates {
    fn push_entry(&mut self, repo: &Reference, e: &Entry) {
        let Some(r) = e.resolved() else { return };
        self.push(repo, &r.manifest.digest, SubjectKind::PlatformManifest, e);
        if e.record.target.digest != r.manifest.digest {
            self.push(repo, &e.record.target.digest, SubjectKind::Index, e);
        }
    }

    fn push(&mut self, repo: &Reference, digest: &Digest, kind: SubjectKind, e: &Entry) {
        let seen = self
            .list
            .iter()
            .any(|c| c.reference.digest() == Some(digest) && same_repository(&c.reference, repo));
        if !seen {
            self.list.push(Candidate {
                reference: repo.at_digest(digest.clone()),
                kind,
                record: e.record.name.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", hex::encode([n; 32]))).unwrap()
    }

    fn desc(mt: &str, n: u8) -> Descriptor {
        Descriptor::new(mt, dg(n), 100)
    }

    /// Config 9; index 1 holding platform manifest 2.
    fn shared() -> ImageIndex {
        let mut ix = ImageIndex::new();
        let via_index = Resolution::Resolved(Resolved {
            config: dg(9),
            manifest: desc(media::OCI_MANIFEST, 2),
            platform: Some(Platform::new("linux", "amd64", None)),
        });
        let direct = Resolution::Resolved(Resolved {
            config: dg(9),
            manifest: desc(media::OCI_MANIFEST, 2),
            platform: None,
        });
        let rec = |name: &str, target| ImageRecord {
            name: name.to_string(),
            target,
        };
        ix.insert(
            rec("localhost/t/multi:1", desc(media::OCI_INDEX, 1)),
            via_index.clone(),
        );
        ix.insert(
            rec("localhost/o/app:2", desc(media::OCI_MANIFEST, 2)),
            direct.clone(),
        );
        ix.insert(
            rec(
                &format!("sha256:{}", dg(9).hex()),
                desc(media::OCI_INDEX, 1),
            ),
            via_index,
        );
        ix
    }

    fn pairs(s: &ImageSubjects) -> Vec<(String, SubjectKind)> {
        s.candidates
            .iter()
            .map(|c| (c.reference.to_string(), c.kind))
            .collect()
    }

    fn at(repo: &str, n: u8) -> String {
        format!("{repo}@{}", dg(n))
    }

    #[test]
    fn index_name_then_the_manifest_name() {
        let s = shared().subjects("localhost/t/multi:1").unwrap();
        assert_eq!(s.image.name, "localhost/t/multi:1");
        assert_eq!(s.config, dg(9));
        assert_eq!(s.manifest.digest, dg(2));
        assert_eq!(
            pairs(&s),
            vec![
                (at("localhost/t/multi", 2), SubjectKind::PlatformManifest),
                (at("localhost/t/multi", 1), SubjectKind::Index),
                (at("localhost/o/app", 2), SubjectKind::PlatformManifest),
                // The id record's index digest, tried under the other reference's repository.
                (at("localhost/o/app", 1), SubjectKind::Index),
            ]
        );
        assert_eq!(
            s.shared_with,
            vec![
                "localhost/o/app:2".to_string(),
                format!("sha256:{}", dg(9).hex())
            ]
        );
    }

    #[test]
    fn manifest_name_then_the_index_name() {
        let s = shared().subjects("localhost/o/app:2").unwrap();
        assert_eq!(s.image.target.digest, dg(2));
        assert_eq!(
            pairs(&s),
            vec![
                (at("localhost/o/app", 2), SubjectKind::PlatformManifest),
                (at("localhost/t/multi", 2), SubjectKind::PlatformManifest),
                (at("localhost/t/multi", 1), SubjectKind::Index),
                (at("localhost/o/app", 1), SubjectKind::Index),
            ]
        );
    }

    #[test]
    fn by_id_and_by_digest_without_a_record() {
        let ix = shared();
        let s = ix.subjects(&format!("sha256:{}", dg(9).hex())).unwrap();
        assert_eq!(
            pairs(&s)[..2],
            [
                (at("localhost/o/app", 2), SubjectKind::PlatformManifest),
                (at("localhost/o/app", 1), SubjectKind::Index),
            ]
        );
        assert_eq!(pairs(&s).len(), 4);
        // By the platform manifest's digest, without a record of that name: found through the
        // digest, a record of the same repository preferred, that repository first.
        let s = ix.subjects(&at("localhost/t/multi", 2)).unwrap();
        assert_eq!(s.image.name, "localhost/t/multi:1");
        assert_eq!(
            pairs(&s)[0],
            (at("localhost/t/multi", 2), SubjectKind::PlatformManifest)
        );
        let s = ix.subjects(&at("localhost/x/y", 2)).unwrap();
        assert_eq!(
            pairs(&s)[0],
            (at("localhost/x/y", 2), SubjectKind::PlatformManifest)
        );
        assert!(pairs(&s).contains(&(at("localhost/t/multi", 1), SubjectKind::Index)));
        assert!(ix
            .subjects(&at("localhost/t/multi", 7))
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn not_found_unresolved_and_removal() {
        let mut ix = shared();
        assert!(matches!(
            ix.subjects("localhost/nope:1"),
            Err(RuntimeError::NotFound { name }) if name == "localhost/nope:1"
        ));
        ix.insert(
            ImageRecord {
                name: "localhost/arm/only:1".into(),
                target: desc(media::OCI_INDEX, 5),
            },
            Resolution::Unresolved("no linux/amd64 manifest".into()),
        );
        assert!(matches!(
            ix.subjects("localhost/arm/only:1"),
            Err(RuntimeError::Unresolved { .. })
        ));
        assert!(ix.remove("localhost/o/app:2").is_some());
        assert!(ix.remove("localhost/o/app:2").is_none());
        let s = ix.subjects("localhost/t/multi:1").unwrap();
        assert_eq!(s.candidates.len(), 2, "{:?}", pairs(&s));
        assert!(ix.by_config[&dg(9)].len() == 2);
    }

    #[test]
    fn unnormalised_names_and_single_images() {
        let mut ix = ImageIndex::new();
        ix.insert(
            ImageRecord {
                name: "docker.io/library/busybox:latest".into(),
                target: desc(media::OCI_MANIFEST, 3),
            },
            Resolution::Resolved(Resolved {
                config: dg(4),
                manifest: desc(media::OCI_MANIFEST, 3),
                platform: None,
            }),
        );
        let s = ix.subjects("busybox").unwrap();
        assert_eq!(
            pairs(&s),
            vec![(
                at("docker.io/library/busybox", 3),
                SubjectKind::PlatformManifest
            )]
        );
        assert!(s.shared_with.is_empty());
    }
}
