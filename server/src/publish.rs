//! A published revision: the compiled snapshot plus the exact bytes SDKs receive, serialized and
//! gzipped once per revision so serving the config does no per-request work.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use tailor_core::Snapshot;

/// One environment's current revision, ready to serve.
#[derive(Debug)]
pub struct Published {
    /// Config revision.
    pub revision: u64,
    /// Compiled config, for server-side evaluation (preview, OFREP).
    pub snapshot: Arc<Snapshot>,
    /// Strong entity tag, quoted: `"<revision>-<content hash>"`.
    pub etag: String,
    /// The config document as compact JSON.
    pub json: Bytes,
    /// `json`, gzipped.
    pub gzip: Bytes,
    /// The server-sent-events frame announcing this revision (`id`, `event: config`, `data`).
    pub sse_frame: Bytes,
}

impl Published {
    /// Serializes and compresses a compiled snapshot.
    pub fn new(snapshot: Snapshot) -> Self {
        let json = serde_json::to_vec(snapshot.document()).unwrap_or_default();
        let hash = Sha256::digest(&json);
        let revision = snapshot.revision();
        let etag = format!("\"{revision}-{}\"", hex::encode(&hash[..8]));
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
        // Writing into a Vec cannot fail.
        let gzip = encoder
            .write_all(&json)
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        let mut frame = Vec::with_capacity(json.len() + 64);
        frame.extend_from_slice(format!("id: {revision}\nevent: config\ndata: ").as_bytes());
        frame.extend_from_slice(&json);
        frame.extend_from_slice(b"\n\n");
        Published {
            revision,
            snapshot: Arc::new(snapshot),
            etag,
            json: Bytes::from(json),
            gzip: Bytes::from(gzip),
            sse_frame: Bytes::from(frame),
        }
    }

    /// Whether an `If-None-Match` header value matches this revision's ETag.
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match.trim() == "*"
            || if_none_match
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == self.etag)
    }
}
