//! Keeps the image index in step with containerd: list, then follow image events; reconnects.

use std::sync::Arc;
use std::time::Duration;

use containerd_client::services::v1::{ImageCreate, ImageDelete, ImageUpdate};
use containerd_client::tonic::codec::Streaming;
use containerd_client::types::Envelope;
use prost014::Message;
use tokio_util::sync::CancellationToken;

use super::index::{ImageIndex, Resolution};
use super::{ImageEvent, ImageEventKind, Inner, RuntimeError};

pub(crate) const TOPIC_CREATE: &str = "/images/create";
pub(crate) const TOPIC_UPDATE: &str = "/images/update";
pub(crate) const TOPIC_DELETE: &str = "/images/delete";

/// How a session with containerd ended.
enum End {
    Stopped,
    Failed {
        /// The index was installed: the next session is a reconnect.
        was_live: bool,
        /// The session worked for a while (events came, or it outlived the longest backoff):
        /// its end is news and the next attempt comes quickly. A session that fails at once
        /// over and over (containerd down, a subscription it refuses) backs off quietly.
        healthy: bool,
        error: RuntimeError,
    },
}

/// The background task: one session after another until `stop`, with exponential backoff
/// between failed attempts.
pub(crate) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let opts = inner.options.clone();
    let mut backoff = opts.reconnect_min;
    let mut went_live = 0u64;
    let mut failed_attempts = 0u64;
    loop {
        let end = tokio::select! {
            _ = stop.cancelled() => End::Stopped,
            end = session(&inner, &stop, went_live) => end,
        };
        inner.set_live(false);
        let End::Failed {
            was_live,
            healthy,
            error,
        } = end
        else {
            return;
        };
        if was_live {
            went_live += 1;
        }
        if healthy {
            failed_attempts = 0;
            backoff = opts.reconnect_min;
            tracing::warn!(socket = %inner.client.socket().display(), %error,
                "lost containerd's image events; lookups use direct calls until reconnected");
        } else {
            failed_attempts += 1;
            // The first failure of a series is news; the rest (containerd down for a while,
            // or not started yet) would flood the log.
            if failed_attempts == 1 {
                tracing::warn!(socket = %inner.client.socket().display(), %error,
                    retry_in = ?backoff, "cannot follow containerd's image events; retrying");
            } else {
                tracing::debug!(%error, attempt = failed_attempts, retry_in = ?backoff,
                    "still cannot follow containerd's image events");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(opts.reconnect_max);
    }
}

/// Aborts the subscription task when the session ends, whichever way.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn session(inner: &Arc<Inner>, stop: &CancellationToken, previous: u64) -> End {
    let started = tokio::time::Instant::now();
    let mut got_event = false;
    let outlived_backoff = inner.options.reconnect_max;
    let failed = |was_live: bool, got_event: bool, error| End::Failed {
        was_live,
        healthy: was_live && (got_event || started.elapsed() >= outlived_backoff),
        error,
    };
    let filter = format!(
        r#"namespace=="{}",topic~="^/images/""#,
        inner.namespace.replace('"', "")
    );
    // Subscribe before listing so no change falls between the two. containerd answers the
    // subscription only with its first event, so it runs alongside; the resync after
    // `settle` covers changes made before containerd registered it.
    let mut subscription = AbortOnDrop(tokio::spawn(inner.client.subscribe(vec![filter])));
    let index = match inner.build_index().await {
        Ok(i) => i,
        Err(e) => return failed(false, false, e),
    };
    let records = index.len();
    let changes = inner.install(index, true);
    // After a reconnect, changes made while disconnected are news for watchers; the very
    // first listing is not.
    if previous > 0 {
        for ev in changes {
            inner.emit(ev);
        }
        tracing::info!(records, "reconnected to containerd; image index resynced");
    } else {
        tracing::info!(records, namespace = %inner.namespace, "image index synced; following image events");
    }

    let settle = tokio::time::sleep(inner.options.settle);
    tokio::pin!(settle);
    let mut settled = false;
    let mut stream: Option<Streaming<Envelope>> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return End::Stopped,
            _ = &mut settle, if !settled => {
                settled = true;
                match inner.build_index().await {
                    Ok(index) => {
                        for ev in inner.install(index, true) {
                            inner.emit(ev);
                        }
                    }
                    Err(e) => return failed(true, got_event, e),
                }
            }
            joined = &mut subscription.0, if stream.is_none() => match joined {
                Ok(Ok(s)) => stream = Some(s),
                Ok(Err(e)) => return failed(true, got_event, e),
                Err(e) => return failed(true, got_event, RuntimeError::Unavailable {
                    socket: inner.client.socket().to_path_buf(),
                    message: format!("event subscription task: {e}"),
                }),
            },
            message = next(&mut stream), if stream.is_some() => match message {
                Ok(Some(envelope)) => {
                    got_event = true;
                    if let Err(e) = handle(inner, envelope).await {
                        return failed(true, got_event, e);
                    }
                }
                Ok(None) => {
                    inner.client.connection_lost();
                    return failed(true, got_event, RuntimeError::Unavailable {
                        socket: inner.client.socket().to_path_buf(),
                        message: "containerd closed the event stream".to_string(),
                    });
                }
                Err(status) => {
                    inner.client.connection_lost();
                    return failed(true, got_event, inner.client.unavailable(&status));
                }
            },
        }
    }
}

async fn next(
    stream: &mut Option<Streaming<Envelope>>,
) -> Result<Option<Envelope>, containerd_client::tonic::Status> {
    match stream {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

/// Applies one image event to the index and passes it on to watchers. Only transport
/// failures are errors (the session restarts); a bad event is logged and skipped.
async fn handle(inner: &Arc<Inner>, envelope: Envelope) -> Result<(), RuntimeError> {
    if envelope.namespace != inner.namespace {
        return Ok(());
    }
    let Some(any) = envelope.event else {
        return Ok(());
    };
    let bytes = any.value.as_slice();
    let decoded = match envelope.topic.as_str() {
        TOPIC_CREATE => ImageCreate::decode(bytes).map(|e| (ImageEventKind::Created, e.name)),
        TOPIC_UPDATE => ImageUpdate::decode(bytes).map(|e| (ImageEventKind::Updated, e.name)),
        TOPIC_DELETE => ImageDelete::decode(bytes).map(|e| (ImageEventKind::Deleted, e.name)),
        other => {
            tracing::trace!(topic = other, "ignoring event");
            return Ok(());
        }
    };
    let (kind, name) = match decoded {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(topic = %envelope.topic, type_url = %any.type_url, error = %e,
                "undecodable image event");
            return Ok(());
        }
    };
    tracing::debug!(topic = %envelope.topic, image = %name, "image event");
    if kind == ImageEventKind::Deleted {
        inner.remove(&name);
        inner.emit(ImageEvent {
            kind,
            name,
            target: None,
            config: None,
        });
        return Ok(());
    }
    // The event carries the name only: the target comes from the record itself.
    match inner.fetch_record(&name).await {
        Ok(Some((record, resolution))) => {
            let config = match &resolution {
                Resolution::Resolved(r) => Some(r.config.clone()),
                Resolution::Unresolved(_) => None,
            };
            let target = Some(record.target.clone());
            let previous = inner.insert(record, resolution);
            // CRI relabels records it sees (io.cri-containerd.image=managed): an update that
            // leaves the target alone is no news for watchers.
            if kind == ImageEventKind::Updated
                && previous.as_ref().map(|p| &p.target) == target.as_ref()
            {
                return Ok(());
            }
            inner.emit(ImageEvent {
                kind,
                name,
                target,
                config,
            });
            Ok(())
        }
        // Gone again before we looked (a delete event follows).
        Ok(None) => {
            inner.remove(&name);
            Ok(())
        }
        Err(e @ (RuntimeError::Unavailable { .. } | RuntimeError::Timeout { .. })) => Err(e),
        Err(e) => {
            tracing::warn!(image = %name, error = %e, "cannot read an image named in an event");
            Ok(())
        }
    }
}

/// What changed from `old` to `new`, as events (for resyncs after a reconnect).
pub(crate) fn diff(old: &ImageIndex, new: &ImageIndex) -> Vec<ImageEvent> {
    let mut out = Vec::new();
    let mut created_or_updated: Vec<_> = new
        .records()
        .filter_map(|(rec, res)| {
            let kind = match old.get(&rec.name) {
                None => ImageEventKind::Created,
                Some((o, _)) if o.target != rec.target => ImageEventKind::Updated,
                Some(_) => return None,
            };
            let config = match res {
                Resolution::Resolved(r) => Some(r.config.clone()),
                Resolution::Unresolved(_) => None,
            };
            Some(ImageEvent {
                kind,
                name: rec.name.clone(),
                target: Some(rec.target.clone()),
                config,
            })
        })
        .collect();
    created_or_updated.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(created_or_updated);
    let mut deleted: Vec<_> = old
        .records()
        .filter(|(rec, _)| new.get(&rec.name).is_none())
        .map(|(rec, _)| ImageEvent {
            kind: ImageEventKind::Deleted,
            name: rec.name.clone(),
            target: None,
            config: None,
        })
        .collect();
    deleted.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(deleted);
    out
}

/// Delay before the first resync; exposed for the options' default.
pub(crate) const DEFAULT_SETTLE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{media, Descriptor, Digest};
    use crate::runtime::ImageRecord;

    fn rec(name: &str, n: u8) -> ImageRecord {
        let d = Digest::parse(&format!("sha256:{}", hex::encode([n; 32]))).unwrap();
        ImageRecord {
            name: name.to_string(),
            target: Descriptor::new(media::OCI_MANIFEST, d, 1),
        }
    }

    #[test]
    fn resync_diff_reports_what_changed_only() {
        let unresolved = || Resolution::Unresolved("test".into());
        let mut old = ImageIndex::new();
        old.insert(rec("localhost/a:1", 1), unresolved());
        old.insert(rec("localhost/b:1", 2), unresolved());
        old.insert(rec("localhost/gone:1", 3), unresolved());
        let mut new = ImageIndex::new();
        new.insert(rec("localhost/a:1", 1), unresolved());
        new.insert(rec("localhost/b:1", 4), unresolved());
        new.insert(rec("localhost/new:1", 5), unresolved());
        let got: Vec<(ImageEventKind, String, Option<Digest>)> = diff(&old, &new)
            .into_iter()
            .map(|e| (e.kind, e.name, e.target.map(|t| t.digest)))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    ImageEventKind::Updated,
                    "localhost/b:1".into(),
                    Some(rec("", 4).target.digest)
                ),
                (
                    ImageEventKind::Created,
                    "localhost/new:1".into(),
                    Some(rec("", 5).target.digest)
                ),
                (ImageEventKind::Deleted, "localhost/gone:1".into(), None),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
