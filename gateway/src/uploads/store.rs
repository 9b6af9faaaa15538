//! Where uploaded files live: the object store (a local directory or any S3-compatible store,
//! through `object_store`), the signed links that let an `<img>` load an upload without a
//! bearer token, and the bounds on transfers in progress.

use bytes::Bytes;
use hmac::{KeyInit as _, Mac as _};
use object_store::ObjectStore;
use object_store::ObjectStoreExt as _;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use secrecy::ExposeSecret;
use sha2::Sha256;
use shared::config::UploadsConfig;
use shared::ids::{UploadId, UserId};
use std::collections::HashMap;
use std::sync::Arc;

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

#[cfg(test)]
mod tests {
    use super::*;

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
