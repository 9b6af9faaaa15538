//! Where uploaded files live and what they are: the object store (a local directory or any
//! S3-compatible store, through `object_store`), the content type sniffed from the first
//! bytes, an image's size read from its header, and the signed links that let an `<img>`
//! load an upload without a bearer token; the bounds on transfers in progress, and the sweeper
//! of uploads no message carries.

use crate::state::AppState;
use crate::store;
use bytes::Bytes;
use futures::StreamExt as _;
use hmac::{KeyInit as _, Mac as _};
use object_store::ObjectStore;
use object_store::ObjectStoreExt as _;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use secrecy::ExposeSecret;
use sha2::Sha256;
use shared::config::UploadsConfig;
use shared::ids::{UploadId, UserId};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Bytes kept from the start of a file to sniff its type and read an image's size (a JPEG's
/// size may come after tens of KiB of EXIF data).
pub const HEAD_BYTES: usize = 256 * 1024;

/// Image types browsers show safely inline; every other file is served as a download.
const INLINE_IMAGES: [&str; 6] =
    ["image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"];

/// Shortest link key accepted, in bytes.
pub const MIN_LINK_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum UploadStoreError {
    #[error("upload store {store}: {source}")]
    Open { store: String, source: object_store::Error },
    #[error("upload directory {dir}: {source}")]
    Directory { dir: String, source: std::io::Error },
    #[error("uploads.link_key must be at least {MIN_LINK_KEY_BYTES} bytes")]
    ShortLinkKey,
}

/// Bytes an upload buffers before it becomes a multipart upload, and the size of each part
/// (S3's smallest).
const PART_BYTES: usize = 5 * 1024 * 1024;

/// Parts of one upload sent to the store at once.
const PARTS_IN_FLIGHT: usize = 2;

/// The upload store of a gateway.
pub struct Uploads {
    store: Arc<dyn ObjectStore>,
    pub config: UploadsConfig,
    link_key: Vec<u8>,
    /// Uploads in progress (`uploads.max_in_progress`, `max_in_progress_per_user`).
    uploading: Slots,
    /// Downloads in progress (`uploads.max_downloads_in_progress`, `…_per_user`).
    downloading: Slots,
}

/// Why an upload or a download may not start now.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotRefused {
    /// The gateway serves as many as it may already: 503.
    GatewayBusy,
    /// The user has as many in progress here as they may: 429.
    UserBusy,
}

/// A bounded number of transfers in progress: so many per gateway, and so many per user.
struct Slots {
    total: Arc<tokio::sync::Semaphore>,
    per_key_max: usize,
    per_key: Arc<std::sync::Mutex<HashMap<uuid::Uuid, usize>>>,
}

/// A transfer in progress: counted against the gateway's and its key's bounds until dropped.
pub struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    key: uuid::Uuid,
    per_key: Arc<std::sync::Mutex<HashMap<uuid::Uuid, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_key = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_key.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                per_key.remove(&self.key);
            }
        }
    }
}

impl Slots {
    fn new(total: usize, per_key_max: usize) -> Self {
        Self { total: Arc::new(tokio::sync::Semaphore::new(total)), per_key_max, per_key: Default::default() }
    }

    fn take(&self, key: uuid::Uuid) -> Result<Slot, SlotRefused> {
        let mut per_key = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if per_key.get(&key).is_some_and(|count| *count >= self.per_key_max) {
            return Err(SlotRefused::UserBusy);
        }
        let permit = self.total.clone().try_acquire_owned().map_err(|_| SlotRefused::GatewayBusy)?;
        *per_key.entry(key).or_default() += 1;
        Ok(Slot { _permit: permit, key, per_key: self.per_key.clone() })
    }
}

impl Uploads {
    /// Opens the store `config.store` names: `s3://bucket[/prefix]` or a local directory
    /// (created if missing).
    pub fn open(config: &UploadsConfig) -> Result<Self, UploadStoreError> {
        let open_error = |source| UploadStoreError::Open { store: config.store.clone(), source };
        let store: Arc<dyn ObjectStore> = match config.store.strip_prefix("s3://") {
            Some(rest) => {
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(config.store.as_str())
                    .build()
                    .map_err(open_error)?;
                match rest.split_once('/').map(|(_, prefix)| prefix.trim_matches('/')) {
                    Some(prefix) if !prefix.is_empty() => {
                        Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
                    }
                    _ => Arc::new(s3),
                }
            }
            None => {
                std::fs::create_dir_all(&config.store)
                    .map_err(|source| UploadStoreError::Directory { dir: config.store.clone(), source })?;
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(&config.store)
                        .map_err(open_error)?,
                )
            }
        };
        let link_key = match &config.link_key {
            Some(key) if key.expose_secret().len() < MIN_LINK_KEY_BYTES => {
                return Err(UploadStoreError::ShortLinkKey);
            }
            Some(key) => key.expose_secret().as_bytes().to_vec(),
            None => {
                // Safe, but only this gateway can check the links it signs.
                tracing::warn!("uploads.link_key is not set: signed upload links work on this gateway only");
                rand::random::<[u8; 32]>().to_vec()
            }
        };
        Ok(Self {
            store,
            config: config.clone(),
            link_key,
            uploading: Slots::new(config.max_in_progress, config.max_in_progress_per_user),
            downloading: Slots::new(
                config.max_downloads_in_progress,
                config.max_downloads_in_progress_per_user,
            ),
        })
    }

    /// A slot for an upload of `user`'s, within the gateway's and the user's bounds.
    pub fn start_upload(&self, user: UserId) -> Result<Slot, SlotRefused> {
        self.uploading.take(user.0)
    }

    /// A slot for a download by `reader` (the holder of a signed link, or the caller).
    pub fn start_download(&self, reader: UserId) -> Result<Slot, SlotRefused> {
        self.downloading.take(reader.0)
    }

    fn path(id: UploadId) -> Path {
        Path::from(format!("uploads/{id}"))
    }

    /// A writer of upload `id`'s bytes: buffered up to [`PART_BYTES`], a multipart upload
    /// past that (so one upload holds at most a few parts in memory). `shutdown` it to store
    /// the file, `abort` it to drop what was written.
    pub fn writer(&self, id: UploadId) -> BufWriter {
        BufWriter::with_capacity(self.store.clone(), Self::path(id), PART_BYTES)
            .with_max_concurrency(PARTS_IN_FLIGHT)
    }

    /// Upload `id`'s bytes, as a stream.
    pub async fn read(
        &self,
        id: UploadId,
    ) -> Result<futures::stream::BoxStream<'static, object_store::Result<Bytes>>, object_store::Error> {
        Ok(self.store.get(&Self::path(id)).await?.into_stream())
    }

    /// Removes upload `id`'s bytes (gone already is fine).
    pub async fn delete(&self, id: UploadId) -> Result<(), object_store::Error> {
        match self.store.delete(&Self::path(id)).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// The signature of a link to upload `id`, handed to `holder`, that works until `expires`
    /// (Unix seconds). The holder is signed in so that the link's downloads count against them.
    pub fn signature(&self, id: UploadId, holder: UserId, expires: i64) -> String {
        hex::encode(self.mac(id, holder, expires).finalize().into_bytes())
    }

    /// Whether `signature` signs a link to `id` for `holder` until `expires`, and that is
    /// still ahead.
    pub fn link_is_valid(&self, id: UploadId, holder: UserId, expires: i64, signature: &str) -> bool {
        let Ok(signature) = hex::decode(signature) else { return false };
        expires > chrono::Utc::now().timestamp()
            && self.mac(id, holder, expires).verify_slice(&signature).is_ok()
    }

    fn mac(&self, id: UploadId, holder: UserId, expires: i64) -> hmac::Hmac<Sha256> {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&self.link_key).expect("HMAC takes any key length");
        mac.update(format!("{id}:{holder}:{expires}").as_bytes());
        mac
    }
}

/// Uploads one sweep deletes per transaction, at most, for each reason.
const SWEEP_BATCH: i64 = 100;

/// Store deletions one sweep runs at once.
const SWEEP_DELETES_IN_FLIGHT: usize = 8;

/// How long after its intent an upload's request is surely over, beyond
/// `uploads.request_timeout` (the request's own deadline).
const INTENT_MARGIN: Duration = Duration::from_secs(60);

impl Uploads {
    /// Deletes the files of `ids`; answers those that are gone (a failure is logged, and the
    /// next sweep tries again).
    async fn delete_all(&self, ids: Vec<UploadId>) -> Vec<UploadId> {
        futures::stream::iter(ids)
            .map(|id| async move {
                match self.delete(id).await {
                    Ok(()) => Some(id),
                    Err(error) => {
                        tracing::warn!(%id, %error, "sweep: upload not deleted from the store");
                        None
                    }
                }
            })
            .buffer_unordered(SWEEP_DELETES_IN_FLIGHT)
            .filter_map(std::future::ready)
            .collect()
            .await
    }

    /// One batch of uploads never attached within `unattached_ttl`: their rows marked deleted
    /// (a message attaching one meanwhile waits for the lock, then finds it deleted), with an
    /// intent each, in one transaction; then their files deleted and the intents dropped. A
    /// file whose deletion fails keeps its intent, and the sweep of abandoned uploads deletes
    /// it later. Answers how many went.
    pub async fn sweep_unattached(&self, db: &PgPool) -> Result<usize, sqlx::Error> {
        let mut tx = db.begin().await?;
        let ids = store::uploads::lock_unattached(&mut tx, self.config.unattached_ttl, SWEEP_BATCH).await?;
        store::uploads::mark_swept(&mut tx, &ids).await?;
        tx.commit().await?;
        let gone = self.delete_all(ids.clone()).await;
        store::uploads::forget_intents(db, &gone).await?;
        Ok(ids.len())
    }

    /// One batch of uploads whose request ended without a row (dropped at its deadline, its
    /// gateway killed): their files deleted, their intents dropped. Answers how many went.
    pub async fn sweep_abandoned(&self, db: &PgPool) -> Result<usize, sqlx::Error> {
        let age = self.config.request_timeout + INTENT_MARGIN;
        let mut tx = db.begin().await?;
        let ids = store::uploads::lock_abandoned(&mut tx, age, SWEEP_BATCH).await?;
        let gone = self.delete_all(ids).await;
        store::uploads::forget_intents(&mut *tx, &gone).await?;
        tx.commit().await?;
        Ok(gone.len())
    }
}

impl AppState {
    /// Sweeps the upload store every `uploads.sweep_interval` (first at a random moment of it,
    /// so the gateways of a cell spread their sweeps), until shutdown. Gateways sweep
    /// concurrently without stepping on each other: each locks the rows it deletes, and skips
    /// rows locked by another.
    pub fn sweep_uploads(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        let every = state.uploads.config.sweep_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let first = every.mul_f64(rand::random::<f64>());
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = state.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                for (reason, swept) in [
                    ("unattached", state.uploads.sweep_unattached(&state.db).await),
                    ("abandoned", state.uploads.sweep_abandoned(&state.db).await),
                ] {
                    match swept {
                        Ok(0) => {}
                        Ok(count) => {
                            tracing::info!(reason, count, "uploads swept");
                            state.metrics.uploads_swept(reason, count);
                        }
                        Err(error) => tracing::warn!(reason, %error, "upload sweep failed"),
                    }
                }
            }
        })
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    pub content_type: String,
    /// Width and height, for the image types shown inline.
    pub size: Option<(i32, i32)>,
}

impl Sniffed {
    /// Whether browsers may show it inline (a raster image of a known type).
    pub fn inline(content_type: &str) -> bool {
        INLINE_IMAGES.contains(&content_type)
    }

    /// The `Content-Type` a file of `content_type` is served with: its own, except for types a
    /// browser would run or render as a page of ours (HTML, XML, scripts), served as opaque
    /// bytes.
    pub fn served_as(content_type: &str) -> &str {
        match content_type.starts_with("text/")
            || content_type.contains("xml")
            || content_type.contains("script")
        {
            true => "application/octet-stream",
            false => content_type,
        }
    }
}

/// Sniffs `head`, the first [`HEAD_BYTES`] (or fewer) of a file.
pub fn sniff(head: &[u8]) -> Sniffed {
    let content_type = infer::get(head).map_or("application/octet-stream", |kind| kind.mime_type());
    let size = match Sniffed::inline(content_type) {
        true => imagesize::blob_size(head)
            .ok()
            .and_then(|s| Some((i32::try_from(s.width).ok()?, i32::try_from(s.height).ok()?))),
        false => None,
    };
    // An image whose size cannot be read is served as a file.
    let content_type = match (Sniffed::inline(content_type), size) {
        (true, None) => "application/octet-stream",
        _ => content_type,
    };
    Sniffed { content_type: content_type.to_owned(), size }
}

/// Invisible formatting characters: bidirectional overrides and isolates (which make
/// `invoice\u{202e}fdp.exe` read as `invoiceexe.pdf`), zero-width characters, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// A client's file name made safe to store and to send back: its last path component, no
/// control or invisible formatting characters or quotes, at most 255 bytes; `file` when
/// nothing is left.
pub fn clean_filename(name: Option<&str>) -> String {
    let base = name.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    let mut clean = String::new();
    for c in base.chars().filter(|c| !c.is_control() && !is_invisible_format(*c) && *c != '"') {
        if clean.len() + c.len_utf8() > 255 {
            break;
        }
        clean.push(c);
    }
    match clean.trim() {
        "" | "." | ".." => "file".into(),
        trimmed => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1×1 PNG with the width and height fields rewritten.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut png =
            vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
        png.extend_from_slice(&width.to_be_bytes());
        png.extend_from_slice(&height.to_be_bytes());
        png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        png
    }

    #[test]
    fn sniffing_reads_the_content_not_the_name() {
        assert_eq!(
            sniff(&png(640, 480)),
            Sniffed { content_type: "image/png".into(), size: Some((640, 480)) }
        );
        assert_eq!(sniff(b"%PDF-1.7\n...").content_type, "application/pdf");
        let html = sniff(b"<html><script>alert(1)</script></html>");
        assert_eq!(html, Sniffed { content_type: "text/html".into(), size: None });
        assert_eq!(Sniffed::served_as(&html.content_type), "application/octet-stream");
        assert_eq!(Sniffed::served_as("application/pdf"), "application/pdf");
        assert_eq!(sniff(b"just some words").content_type, "application/octet-stream");
        // A PNG signature with a truncated header is not shown as an image.
        assert_eq!(sniff(&png(1, 1)[..12]).content_type, "application/octet-stream");
    }

    #[test]
    fn filenames_lose_paths_quotes_and_control_characters() {
        assert_eq!(clean_filename(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_filename(Some("C:\\Users\\me\\photo \"1\".png")), "photo 1.png");
        assert_eq!(clean_filename(Some("a\r\nb.txt")), "ab.txt");
        assert_eq!(clean_filename(Some("invoice\u{202e}fdp.exe")), "invoicefdp.exe");
        assert_eq!(clean_filename(Some("..")), "file");
        assert_eq!(clean_filename(None), "file");
        let long = "é".repeat(200);
        assert!(clean_filename(Some(&long)).len() <= 255);
    }

    #[test]
    fn uploads_in_progress_are_bounded_per_user_and_per_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().to_string_lossy().into_owned();
        let config =
            UploadsConfig { store, max_in_progress: 3, max_in_progress_per_user: 2, ..Default::default() };
        let uploads = Uploads::open(&config).unwrap();
        let (ada, bob, cy) =
            (UserId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()));
        let first = uploads.start_upload(ada).unwrap();
        let _second = uploads.start_upload(ada).unwrap();
        assert_eq!(uploads.start_upload(ada).err(), Some(SlotRefused::UserBusy));
        let _bobs = uploads.start_upload(bob).unwrap();
        assert_eq!(uploads.start_upload(cy).err(), Some(SlotRefused::GatewayBusy));
        drop(first);
        let _cys = uploads.start_upload(cy).unwrap();
        assert_eq!(uploads.start_upload(ada).err(), Some(SlotRefused::GatewayBusy));
        // Downloads have bounds of their own.
        let _reading = uploads.start_download(ada).unwrap();
    }

    #[test]
    fn a_short_link_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = UploadsConfig {
            store: dir.path().to_string_lossy().into_owned(),
            link_key: Some("CHANGE-ME".to_owned().into()),
            ..Default::default()
        };
        assert!(matches!(Uploads::open(&config), Err(UploadStoreError::ShortLinkKey)));
    }

    #[test]
    fn links_verify_only_for_their_upload_and_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::open(&UploadsConfig {
            store: dir.path().to_string_lossy().into_owned(),
            ..UploadsConfig::default()
        })
        .unwrap();
        let (id, other) = (UploadId(uuid::Uuid::new_v4()), UploadId(uuid::Uuid::new_v4()));
        let (ada, bob) = (UserId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()));
        let later = chrono::Utc::now().timestamp() + 60;
        let signature = uploads.signature(id, ada, later);
        assert!(uploads.link_is_valid(id, ada, later, &signature));
        assert!(!uploads.link_is_valid(other, ada, later, &signature));
        assert!(!uploads.link_is_valid(id, bob, later, &signature), "a link names its holder");
        assert!(!uploads.link_is_valid(id, ada, later + 1, &signature));
        assert!(!uploads.link_is_valid(id, ada, later, "zz"));
        let mut tampered = signature.into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        assert!(!uploads.link_is_valid(id, ada, later, std::str::from_utf8(&tampered).unwrap()));
        let past = chrono::Utc::now().timestamp() - 1;
        assert!(!uploads.link_is_valid(id, ada, past, &uploads.signature(id, ada, past)));
    }
}
