//! The NRI socket as the runtime's side writes it: frame headers, the multiplexer reading frames
//! into its connections, and their payloads decoded as NRI messages.
#![no_main]

use image_compat::nri::{api, mux};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use tokio::io::AsyncReadExt as _;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = <&[u8; mux::HEADER_LEN]>::try_from(data.get(..mux::HEADER_LEN).unwrap_or(&[])) {
        let _ = mux::decode_header(h);
    }
    let _ = api::CreateContainerRequest::decode(data);
    let _ = api::ConfigureRequest::decode(data);
    let _ = api::SynchronizeRequest::decode(data);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let input = data.to_vec();
    rt.block_on(async move {
        let trunk = tokio::io::join(std::io::Cursor::new(input), tokio::io::sink());
        let m = mux::Mux::blocked(trunk);
        let conns: Vec<_> = [mux::PLUGIN_SERVICE_CONN, mux::RUNTIME_SERVICE_CONN]
            .into_iter()
            .filter_map(|id| m.open(id).ok())
            .collect();
        m.unblock();
        // Both read at once: a full queue on one must not stall the other's frames.
        let readers: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let _ = c.read_to_end(&mut buf).await;
                    buf
                })
            })
            .collect();
        for r in readers {
            // The input ends, so the mux closes every connection: no read waits past that.
            if let Ok(Ok(buf)) = tokio::time::timeout(std::time::Duration::from_secs(5), r).await {
                let _ = api::CreateContainerRequest::decode(&buf[..]);
            }
        }
    });
});
