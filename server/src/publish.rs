//! A published revision: the compiled snapshot plus the exact bytes SDKs receive, serialized and
//! gzipped once per revision so serving the config does no per-request work.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tailor_core::Snapshot;

/// Why a revision could not be prepared for serving. Publishing nothing is better than
/// publishing an empty config under a valid ETag, which SDKs would install and cache.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The document could not be serialized.
    #[error("could not serialize revision {revision}")]
    Serialize {
        /// The revision.
        revision: u64,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The serialized document could not be gzipped.
    #[error("could not gzip revision {revision}")]
    Compress {
        /// The revision.
        revision: u64,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

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
    pub fn new(snapshot: Snapshot) -> Result<Self, PublishError> {
        let revision = snapshot.revision();
        let json = serialize(revision, snapshot.document())?;
        let gzip = gzip(revision, &json)?;
        let hash = Sha256::digest(&json);
        let etag = format!("\"{revision}-{}\"", hex::encode(&hash[..8]));
        let mut frame = Vec::with_capacity(json.len() + 64);
        frame.extend_from_slice(format!("id: {revision}\nevent: config\ndata: ").as_bytes());
        frame.extend_from_slice(&json);
        frame.extend_from_slice(b"\n\n");
        Ok(Published {
            revision,
            snapshot: Arc::new(snapshot),
            etag,
            json: Bytes::from(json),
            gzip: Bytes::from(gzip),
            sse_frame: Bytes::from(frame),
        })
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

/// The document of `revision` as compact JSON.
fn serialize<T: Serialize>(revision: u64, document: &T) -> Result<Vec<u8>, PublishError> {
    serde_json::to_vec(document).map_err(|source| PublishError::Serialize { revision, source })
}

/// `json` of `revision`, gzipped.
fn gzip(revision: u64, json: &[u8]) -> Result<Vec<u8>, PublishError> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::default());
    encoder
        .write_all(json)
        .and_then(|()| encoder.finish())
        .map_err(|source| PublishError::Compress { revision, source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::Unserializable;

    #[test]
    fn a_document_that_cannot_be_serialized_is_not_published() {
        let result = serialize(7, &Unserializable);
        assert!(
            matches!(result, Err(PublishError::Serialize { revision: 7, .. })),
            "{result:?}"
        );
    }

    #[test]
    fn a_published_revision_serves_its_document() {
        let snapshot = tailor_core::compile(tailor_core::ConfigDocument {
            environment: "dev".into(),
            revision: 3,
            ..Default::default()
        })
        .unwrap();
        let published = Published::new(snapshot).unwrap();
        let served =
            tailor_core::ConfigDocument::from_json(std::str::from_utf8(&published.json).unwrap())
                .unwrap();
        assert_eq!(&served, published.snapshot.document());
        assert!(published.etag.starts_with("\"3-"), "{}", published.etag);
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&published.gzip[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, published.json);
    }
}
