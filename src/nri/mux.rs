//! NRI connection multiplexer: several ttrpc byte streams over the one NRI unix socket.
//!
//! Wire format (containerd/nri pkg/net/multiplex): frames of an 8-byte header, a big-endian u32
//! connection id then a big-endian u32 payload length, followed by the payload. Opening and
//! closing a connection is not signalled on the wire: both ends simply agree on the ids
//! ([`PLUGIN_SERVICE_CONN`], [`RUNTIME_SERVICE_CONN`]), and frames for an id that is not open
//! are dropped, as the Go peer does.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, PollSender};
use tracing::{debug, trace};

/// Identifies one logical connection inside the multiplexed socket.
pub type ConnId = u32;

/// Carries the plugin's ttrpc server: the runtime dials it.
pub const PLUGIN_SERVICE_CONN: ConnId = 1;
/// Carries the runtime's ttrpc server: the plugin dials it.
pub const RUNTIME_SERVICE_CONN: ConnId = 2;
/// Reserved by upstream; never opened.
const RESERVED_CONN: ConnId = 0;

/// Frame header length: connection id + payload length.
pub const HEADER_LEN: usize = 8;
/// Largest payload the Go multiplexer writes in one frame: a ttrpc message header (10 bytes)
/// plus ttrpc's maximum message size (4 MiB). Anything larger is a protocol violation.
pub const MAX_PAYLOAD: usize = 10 + (4 << 20);
/// Largest payload we put in one frame. The Go side hands each frame whole to a `Read` whose
/// buffer is at most 4 KiB when ttrpc's `bufio.Reader` is refilling, and fails with ENOMEM on a
/// bigger frame; frames up to 4096 bytes always fit.
pub const MAX_WRITE_PAYLOAD: usize = 4096;

/// Frames queued per connection before the socket reader waits for that connection's consumer.
const READ_QUEUE_FRAMES: usize = 256;
/// Frames queued for the socket writer before writers wait.
const WRITE_QUEUE_FRAMES: usize = 64;

/// Why the multiplexer stopped or refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    #[error("connection id {RESERVED_CONN} is reserved")]
    ReservedConnId,
    #[error("multiplexed connection {0} is already open")]
    AlreadyOpen(ConnId),
    #[error("the multiplexed socket is closed")]
    Closed,
    #[error(
        "frame for connection {conn} announces {len} bytes, more than the {MAX_PAYLOAD} allowed"
    )]
    OversizedFrame { conn: ConnId, len: usize },
    #[error("the peer closed the socket in the middle of a frame")]
    TruncatedFrame,
    #[error("reading the multiplexed socket failed: {0}")]
    Read(String),
    #[error("writing the multiplexed socket failed: {0}")]
    Write(String),
}

/// Encodes one frame: header followed by `payload` (at most [`MAX_PAYLOAD`] bytes).
pub fn encode_frame(conn: ConnId, payload: &[u8]) -> Vec<u8> {
    debug_assert!(
        payload.len() <= MAX_PAYLOAD,
        "frame payload over MAX_PAYLOAD"
    );
    let len = u32::try_from(payload.len()).expect("payload length is bounded by MAX_PAYLOAD");
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&conn.to_be_bytes());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Decodes a frame header into (connection id, payload length), rejecting oversized frames.
pub fn decode_header(header: &[u8; HEADER_LEN]) -> Result<(ConnId, usize), MuxError> {
    let conn = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(MuxError::OversizedFrame { conn, len });
    }
    Ok((conn, len))
}

struct Slot {
    token: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

struct Shared {
    conns: Mutex<HashMap<ConnId, Slot>>,
    next_token: AtomicU64,
    frames: mpsc::Sender<Vec<u8>>,
    stop: CancellationToken,
    /// Lets the socket reader start (see [`Mux::blocked`]).
    unblocked: CancellationToken,
    /// How the multiplexer ended: `None` for an orderly close or EOF.
    outcome: OnceLock<Option<MuxError>>,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, HashMap<ConnId, Slot>> {
        // A panic elsewhere while holding the lock leaves the map consistent (single inserts
        // and removes), so a poisoned lock is still safe to use.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the multiplexer once; the first reason wins. Dropping the queue senders lets each
    /// connection read what was already queued, then see end-of-stream.
    fn finish(&self, reason: Option<MuxError>) {
        if self.outcome.set(reason.clone()).is_ok() {
            match &reason {
                Some(err) => debug!(error = %err, "NRI multiplexer stopped"),
                None => debug!("NRI multiplexer closed"),
            }
        }
        self.stop.cancel();
        self.conns().clear();
    }

    fn error(&self) -> Option<MuxError> {
        self.outcome.get().cloned().flatten()
    }
}

/// A multiplexer over one socket. Dropping it closes the socket and all its connections.
pub struct Mux {
    shared: Arc<Shared>,
}

impl Mux {
    /// Starts multiplexing `trunk`. Must be called inside a tokio runtime.
    ///
    /// Frames that arrive for a connection not yet opened are dropped (as upstream does), so
    /// when the peer may send first use [`Mux::blocked`], open, then [`Mux::unblock`].
    pub fn new<T>(trunk: T) -> Mux
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let mux = Mux::blocked(trunk);
        mux.unblock();
        mux
    }

    /// Like [`Mux::new`], but reads nothing from `trunk` until [`Mux::unblock`]; writing
    /// works at once.
    pub fn blocked<T>(trunk: T) -> Mux
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(trunk);
        let (frames, frames_rx) = mpsc::channel(WRITE_QUEUE_FRAMES);
        let shared = Arc::new(Shared {
            conns: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            frames,
            stop: CancellationToken::new(),
            unblocked: CancellationToken::new(),
            outcome: OnceLock::new(),
        });
        tokio::spawn(read_task(reader, Arc::clone(&shared)));
        tokio::spawn(write_task(writer, frames_rx, Arc::clone(&shared)));
        Mux { shared }
    }

    /// Lets the socket reader start delivering frames.
    pub fn unblock(&self) {
        self.shared.unblocked.cancel();
    }

    /// Opens the logical connection `id`.
    pub fn open(&self, id: ConnId) -> Result<MuxConn, MuxError> {
        if id == RESERVED_CONN {
            return Err(MuxError::ReservedConnId);
        }
        if self.shared.stop.is_cancelled() {
            return Err(self.shared.error().unwrap_or(MuxError::Closed));
        }
        let (tx, rx) = mpsc::channel(READ_QUEUE_FRAMES);
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        {
            let mut conns = self.shared.conns();
            if conns.contains_key(&id) {
                return Err(MuxError::AlreadyOpen(id));
            }
            conns.insert(id, Slot { token, tx });
        }
        Ok(MuxConn {
            id,
            token,
            shared: Arc::clone(&self.shared),
            rx,
            pending: Vec::new(),
            pos: 0,
            tx: PollSender::new(self.shared.frames.clone()),
        })
    }

    /// Closes the socket and every connection on it.
    pub fn close(&self) {
        self.shared.finish(None);
    }

    /// Whether the multiplexer has stopped (closed here, by the peer, or on an error).
    pub fn is_closed(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// Resolves once the multiplexer has stopped, with the error that stopped it, if any.
    pub fn closed(&self) -> impl std::future::Future<Output = Option<MuxError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            shared.stop.cancelled().await;
            shared.error()
        }
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.shared.finish(None);
    }
}

/// Reads a header, or returns `Ok(false)` on a clean end-of-stream before its first byte.
async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    header: &mut [u8; HEADER_LEN],
) -> Result<bool, MuxError> {
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = reader
            .read(&mut header[filled..])
            .await
            .map_err(|e| MuxError::Read(e.to_string()))?;
        if n == 0 {
            return if filled == 0 {
                Ok(false)
            } else {
                Err(MuxError::TruncatedFrame)
            };
        }
        filled += n;
    }
    Ok(true)
}

async fn read_frames<R: AsyncRead + Unpin>(mut reader: R, shared: &Shared) -> Result<(), MuxError> {
    let mut header = [0u8; HEADER_LEN];
    loop {
        if !read_header(&mut reader, &mut header).await? {
            return Ok(());
        }
        let (conn, len) = decode_header(&header)?;
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload).await.map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                MuxError::TruncatedFrame
            } else {
                MuxError::Read(e.to_string())
            }
        })?;
        // An empty frame carries nothing; passing it on would read as end-of-stream.
        if payload.is_empty() {
            continue;
        }
        let tx = shared.conns().get(&conn).map(|slot| slot.tx.clone());
        match tx {
            // Waiting here pushes back on the peer instead of buffering without bound; a
            // closed queue means the connection was dropped meanwhile, so the frame goes too.
            Some(tx) => {
                let _ = tx.send(payload).await;
            }
            None => trace!(
                conn,
                len,
                "dropping frame for a connection that is not open"
            ),
        }
    }
}

async fn read_task<R: AsyncRead + Unpin>(reader: R, shared: Arc<Shared>) {
    let result = tokio::select! {
        result = async {
            shared.unblocked.cancelled().await;
            read_frames(reader, &shared).await
        } => result,
        () = shared.stop.cancelled() => Ok(()),
    };
    shared.finish(result.err());
}

async fn write_task<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut frames: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    let result = loop {
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => break Ok(()),
            frame = frames.recv() => {
                let Some(frame) = frame else { break Ok(()) };
                if let Err(e) = writer.write_all(&frame).await {
                    break Err(MuxError::Write(e.to_string()));
                }
                if let Err(e) = writer.flush().await {
                    break Err(MuxError::Write(e.to_string()));
                }
            }
        }
    };
    let _ = writer.shutdown().await;
    if let Err(err) = result {
        shared.finish(Some(err));
    }
}

/// One logical connection: a byte stream for ttrpc. Dropping it closes only this connection.
pub struct MuxConn {
    id: ConnId,
    token: u64,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    pos: usize,
    tx: PollSender<Vec<u8>>,
}

impl MuxConn {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    fn closed_error(&self) -> io::Error {
        match self.shared.error() {
            Some(err) => io::Error::new(io::ErrorKind::BrokenPipe, err),
            None => io::Error::new(io::ErrorKind::BrokenPipe, MuxError::Closed),
        }
    }
}

impl std::fmt::Debug for MuxConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxConn").field("id", &self.id).finish()
    }
}

impl Drop for MuxConn {
    fn drop(&mut self) {
        let mut conns = self.shared.conns();
        if conns
            .get(&self.id)
            .is_some_and(|slot| slot.token == self.token)
        {
            conns.remove(&self.id);
        }
    }
}

impl AsyncRead for MuxConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.pending.len() {
                let n = buf.remaining().min(this.pending.len() - this.pos);
                buf.put_slice(&this.pending[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            match ready!(this.rx.poll_recv(cx)) {
                Some(frame) => {
                    this.pending = frame;
                    this.pos = 0;
                }
                None => {
                    return Poll::Ready(match this.shared.error() {
                        Some(err) => Err(io::Error::other(err)),
                        None => Ok(()),
                    })
                }
            }
        }
    }
}

impl AsyncWrite for MuxConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.shared.stop.is_cancelled() {
            return Poll::Ready(Err(this.closed_error()));
        }
        if ready!(this.tx.poll_reserve(cx)).is_err() {
            return Poll::Ready(Err(this.closed_error()));
        }
        let n = buf.len().min(MAX_WRITE_PAYLOAD);
        if this.tx.send_item(encode_frame(this.id, &buf[..n])).is_err() {
            return Poll::Ready(Err(this.closed_error()));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Frames leave in order through the socket writer; all a flush can add is
        // reporting that the socket is gone.
        match self.shared.error() {
            Some(err) => Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, err))),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tx.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::duplex;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(5);

    /// Reads raw frames from the peer end until `total` payload bytes arrived.
    async fn read_raw_frames<R: AsyncRead + Unpin>(
        peer: &mut R,
        total: usize,
    ) -> Vec<(ConnId, Vec<u8>)> {
        let mut frames = Vec::new();
        let mut got = 0;
        while got < total {
            let mut header = [0u8; HEADER_LEN];
            peer.read_exact(&mut header)
                .await
                .expect("test peer reads a header");
            let (conn, len) = decode_header(&header).expect("our frames have valid headers");
            let mut payload = vec![0u8; len];
            peer.read_exact(&mut payload)
                .await
                .expect("test peer reads a payload");
            got += len;
            frames.push((conn, payload));
        }
        frames
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn header_is_big_endian_id_then_length() {
        let frame = encode_frame(0x0102_0304, b"abc");
        assert_eq!(frame, [1, 2, 3, 4, 0, 0, 0, 3, b'a', b'b', b'c']);
        let header: [u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().expect("8 bytes");
        assert_eq!(decode_header(&header), Ok((0x0102_0304, 3)));
    }

    #[test]
    fn header_over_max_payload_is_rejected() {
        let mut header = [0u8; HEADER_LEN];
        header[3] = 2;
        header[4..].copy_from_slice(&((MAX_PAYLOAD + 1) as u32).to_be_bytes());
        assert_eq!(
            decode_header(&header),
            Err(MuxError::OversizedFrame {
                conn: 2,
                len: MAX_PAYLOAD + 1
            })
        );
        header[4..].copy_from_slice(&(MAX_PAYLOAD as u32).to_be_bytes());
        assert_eq!(decode_header(&header), Ok((2, MAX_PAYLOAD)));
    }

    #[tokio::test]
    async fn large_write_leaves_as_frames_of_at_most_4096_bytes() {
        let (ours, mut peer) = duplex(64 * 1024);
        let mux = Mux::new(ours);
        let mut conn = mux.open(PLUGIN_SERVICE_CONN).expect("open conn 1");
        let data = pattern(10_000, 7);
        conn.write_all(&data).await.expect("write");
        let frames = timeout(WAIT, read_raw_frames(&mut peer, data.len()))
            .await
            .expect("frames arrive");
        let sizes: Vec<usize> = frames.iter().map(|(_, p)| p.len()).collect();
        assert_eq!(sizes, [4096, 4096, 1808]);
        assert!(frames.iter().all(|(id, _)| *id == PLUGIN_SERVICE_CONN));
        let joined: Vec<u8> = frames.into_iter().flat_map(|(_, p)| p).collect();
        assert_eq!(joined, data);
    }

    #[tokio::test]
    async fn fragmented_frames_are_reassembled() {
        // A one-byte pipe hands the multiplexer every header and payload in single bytes.
        let (ours, mut peer) = duplex(1);
        let mux = Mux::new(ours);
        let mut conn = mux.open(RUNTIME_SERVICE_CONN).expect("open conn 2");
        let first = pattern(300, 1);
        let second = pattern(5000, 2);
        let writer = tokio::spawn(async move {
            peer.write_all(&encode_frame(RUNTIME_SERVICE_CONN, &first))
                .await
                .expect("write 1");
            peer.write_all(&encode_frame(RUNTIME_SERVICE_CONN, &second))
                .await
                .expect("write 2");
            peer
        });
        let mut got = vec![0u8; 5300];
        timeout(WAIT, conn.read_exact(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(&got[..300], pattern(300, 1).as_slice());
        assert_eq!(&got[300..], pattern(5000, 2).as_slice());
        let _peer = writer.await.expect("writer task");
    }

    #[tokio::test]
    async fn interleaved_frames_reach_their_own_connection_and_unknown_ids_are_dropped() {
        let (ours, mut peer) = duplex(64 * 1024);
        let mux = Mux::new(ours);
        let mut one = mux.open(PLUGIN_SERVICE_CONN).expect("open 1");
        let mut two = mux.open(RUNTIME_SERVICE_CONN).expect("open 2");
        let mut wire = Vec::new();
        wire.extend(encode_frame(1, b"he"));
        wire.extend(encode_frame(2, b"wo"));
        wire.extend(encode_frame(7, b"nobody listens"));
        wire.extend(encode_frame(2, b""));
        wire.extend(encode_frame(1, b"llo"));
        wire.extend(encode_frame(2, b"rld"));
        peer.write_all(&wire).await.expect("write");
        let mut a = [0u8; 5];
        let mut b = [0u8; 5];
        timeout(WAIT, one.read_exact(&mut a))
            .await
            .expect("in time")
            .expect("read 1");
        timeout(WAIT, two.read_exact(&mut b))
            .await
            .expect("in time")
            .expect("read 2");
        assert_eq!(&a, b"hello");
        assert_eq!(&b, b"world");
    }

    #[tokio::test]
    async fn concurrent_writers_never_interleave_inside_a_frame() {
        let (ours, mut peer) = duplex(8 * 1024);
        let mux = Mux::new(ours);
        let mut one = mux.open(1).expect("open 1");
        let mut two = mux.open(2).expect("open 2");
        let a = pattern(40_000, 3);
        let b = pattern(40_000, 4);
        let (a2, b2) = (a.clone(), b.clone());
        let w1 = tokio::spawn(async move { one.write_all(&a2).await.map(|_| one) });
        let w2 = tokio::spawn(async move { two.write_all(&b2).await.map(|_| two) });
        let frames = timeout(WAIT, read_raw_frames(&mut peer, 80_000))
            .await
            .expect("frames arrive");
        let _one = w1.await.expect("task 1").expect("write 1");
        let _two = w2.await.expect("task 2").expect("write 2");
        let of = |id: ConnId| -> Vec<u8> {
            frames
                .iter()
                .filter(|(c, _)| *c == id)
                .flat_map(|(_, p)| p.clone())
                .collect()
        };
        assert_eq!(of(1), a);
        assert_eq!(of(2), b);
        assert!(frames.iter().all(|(_, p)| p.len() <= MAX_WRITE_PAYLOAD));
    }

    #[tokio::test]
    async fn oversized_frame_closes_everything_with_an_error() {
        let (ours, mut peer) = duplex(1024);
        let mux = Mux::new(ours);
        let mut conn = mux.open(1).expect("open 1");
        let mut header = Vec::new();
        header.extend_from_slice(&1u32.to_be_bytes());
        header.extend_from_slice(&((MAX_PAYLOAD + 1) as u32).to_be_bytes());
        peer.write_all(&header).await.expect("write header");
        let reason = timeout(WAIT, mux.closed()).await.expect("mux stops");
        assert_eq!(
            reason,
            Some(MuxError::OversizedFrame {
                conn: 1,
                len: MAX_PAYLOAD + 1
            })
        );
        let mut buf = [0u8; 4];
        let err = conn
            .read(&mut buf)
            .await
            .expect_err("read fails after a protocol error");
        assert!(err.to_string().contains("more than"), "{err}");
        let err = conn.write(b"x").await.expect_err("write fails after close");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test]
    async fn peer_close_gives_queued_data_then_end_of_stream() {
        let (ours, mut peer) = duplex(1024);
        let mux = Mux::new(ours);
        let mut conn = mux.open(1).expect("open 1");
        peer.write_all(&encode_frame(1, b"last words"))
            .await
            .expect("write");
        drop(peer);
        let mut got = Vec::new();
        timeout(WAIT, conn.read_to_end(&mut got))
            .await
            .expect("in time")
            .expect("clean EOF");
        assert_eq!(got, b"last words");
        assert_eq!(timeout(WAIT, mux.closed()).await.expect("closed"), None);
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let (ours, mut peer) = duplex(1024);
        let mux = Mux::new(ours);
        let mut conn = mux.open(1).expect("open 1");
        let frame = encode_frame(1, b"0123456789");
        peer.write_all(&frame[..HEADER_LEN + 4])
            .await
            .expect("write");
        drop(peer);
        assert_eq!(
            timeout(WAIT, mux.closed()).await.expect("closed"),
            Some(MuxError::TruncatedFrame)
        );
        let mut got = Vec::new();
        assert!(conn.read_to_end(&mut got).await.is_err());
    }

    #[tokio::test]
    async fn local_close_reaches_the_peer_as_end_of_stream() {
        let (ours, mut peer) = duplex(1024);
        let mux = Mux::new(ours);
        let _conn = mux.open(1).expect("open 1");
        mux.close();
        let mut rest = Vec::new();
        timeout(WAIT, peer.read_to_end(&mut rest))
            .await
            .expect("in time")
            .expect("EOF");
        assert!(rest.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_mux_keeps_early_frames_for_connections_opened_before_unblock() {
        let (ours, mut peer) = duplex(1024);
        peer.write_all(&encode_frame(2, b"early"))
            .await
            .expect("peer sends first");
        let mux = Mux::blocked(ours);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut conn = mux.open(2).expect("open 2");
        mux.unblock();
        let mut got = [0u8; 5];
        timeout(WAIT, conn.read_exact(&mut got))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(&got, b"early");
    }

    #[tokio::test]
    async fn ids_are_checked_and_reusable_after_drop() {
        let (ours, _peer) = duplex(1024);
        let mux = Mux::new(ours);
        assert_eq!(mux.open(0).err(), Some(MuxError::ReservedConnId));
        let first = mux.open(1).expect("open 1");
        assert_eq!(mux.open(1).err(), Some(MuxError::AlreadyOpen(1)));
        drop(first);
        assert!(mux.open(1).is_ok());
    }
}
