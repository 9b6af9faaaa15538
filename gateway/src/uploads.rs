//! Where uploaded files live and what they are: the object store (a local directory or any
//! S3-compatible store, through `object_store`), the content type sniffed from the first
//! bytes, an image's size read from its header, and the signed links that let an `<img>`
//! load an upload without a bearer token.

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
    /// One permit per upload in progress (`uploads.max_in_progress`); past them: 503.
    in_progress: Arc<tokio::sync::Semaphore>,
    /// Uploads in progress per user (`uploads.max_in_progress_per_user`); past it: 429.
    per_user: Arc<std::sync::Mutex<HashMap<UserId, usize>>>,
}

/// Why an upload may not start now.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotRefused {
    /// The gateway receives `uploads.max_in_progress` uploads already.
    GatewayBusy,
    /// The user has `uploads.max_in_progress_per_user` uploads in progress here already.
    UserBusy,
}

/// An upload in progress: counted against the gateway's and its user's bounds until dropped.
pub struct UploadSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    user: UserId,
    per_user: Arc<std::sync::Mutex<HashMap<UserId, usize>>>,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user);
            }
        }
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
        let in_progress = Arc::new(tokio::sync::Semaphore::new(config.max_in_progress));
        Ok(Self { store, config: config.clone(), link_key, in_progress, per_user: Default::default() })
    }

    /// A slot for an upload of `user`'s, within the gateway's and the user's bounds.
    pub fn start(&self, user: UserId) -> Result<UploadSlot, SlotRefused> {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_user.entry(user).or_default();
        if *count >= self.config.max_in_progress_per_user {
            if *count == 0 {
                per_user.remove(&user);
            }
            return Err(SlotRefused::UserBusy);
        }
        let Ok(permit) = self.in_progress.clone().try_acquire_owned() else {
            if *count == 0 {
                per_user.remove(&user);
            }
            return Err(SlotRefused::GatewayBusy);
        };
        *count += 1;
        Ok(UploadSlot { _permit: permit, user, per_user: self.per_user.clone() })
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

    /// The signature of a link to upload `id` that works until `expires` (Unix seconds).
    pub fn signature(&self, id: UploadId, expires: i64) -> String {
        hex::encode(self.mac(id, expires).finalize().into_bytes())
    }

    /// Whether `signature` signs a link to `id` until `expires`, and that is still ahead.
    pub fn link_is_valid(&self, id: UploadId, expires: i64, signature: &str) -> bool {
        let Ok(signature) = hex::decode(signature) else { return false };
        expires > chrono::Utc::now().timestamp() && self.mac(id, expires).verify_slice(&signature).is_ok()
    }

    fn mac(&self, id: UploadId, expires: i64) -> hmac::Hmac<Sha256> {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(&self.link_key).expect("HMAC takes any key length");
        mac.update(format!("{id}:{expires}").as_bytes());
        mac
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
        let first = uploads.start(ada).unwrap();
        let _second = uploads.start(ada).unwrap();
        assert_eq!(uploads.start(ada).err(), Some(SlotRefused::UserBusy));
        let _bobs = uploads.start(bob).unwrap();
        assert_eq!(uploads.start(cy).err(), Some(SlotRefused::GatewayBusy));
        drop(first);
        let _cys = uploads.start(cy).unwrap();
        assert_eq!(uploads.start(ada).err(), Some(SlotRefused::GatewayBusy));
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
        let later = chrono::Utc::now().timestamp() + 60;
        let signature = uploads.signature(id, later);
        assert!(uploads.link_is_valid(id, later, &signature));
        assert!(!uploads.link_is_valid(other, later, &signature));
        assert!(!uploads.link_is_valid(id, later + 1, &signature));
        assert!(!uploads.link_is_valid(id, later, "zz"));
        let mut tampered = signature.into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        assert!(!uploads.link_is_valid(id, later, std::str::from_utf8(&tampered).unwrap()));
        let past = chrono::Utc::now().timestamp() - 1;
        assert!(!uploads.link_is_valid(id, past, &uploads.signature(id, past)));
    }
}
