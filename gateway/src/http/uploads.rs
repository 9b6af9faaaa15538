//! `/upload`: files users attach to messages. `POST` streams a multipart `file` part into the
//! object store (never held whole in memory) up to `uploads.max_bytes`, sniffs its type from
//! the content, and answers `201 {id, url, content_type, size, width?, height?, filename}`.
//! `GET /upload/{id}` serves it to its owner and to the members of a channel with a message
//! that carries it (or to anyone with a signed link from `GET /upload/{id}/link`);
//! `DELETE` by its owner.

use crate::auth::extract::AuthUser;
use crate::error::{ApiPath, ApiQuery, ApiResult, AppError, ErrorBody};
use crate::http::openapi::{RateLimited, Unauthorized, rules};
use crate::serve::CloseConnection;
use crate::state::AppState;
use crate::store::uploads::Upload;
use crate::uploads::sniff::{HEAD_BYTES, Sniffed, sniff};
use crate::uploads::store::{Slot, SlotRefused};
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use shared::ids::{UploadId, UserId};
use shared::protocol::AttachmentView;
use shared::protocol::clean_filename;
use tokio::io::AsyncWriteExt as _;
use utoipa::{IntoParams, ToSchema};

/// The `{id}` of `/upload/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UploadPath {
    /// The upload.
    id: UploadId,
}

/// The form `POST /upload` takes: one part, `file` (`rules::upload_form`). Only described:
/// the handler streams the form.
pub struct UploadForm;

impl utoipa::PartialSchema for UploadForm {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        rules::upload_form().into()
    }
}

impl ToSchema for UploadForm {}

/// What a form that is not exactly one `file` part is told.
const ONE_PART: &str = "the form has one part, `file`";

/// Upload answers not found, whether missing, deleted or not the caller's to read.
const NOT_FOUND: &str = "`not_found`: no such upload, deleted, or not shared with the caller";

/// Bytes a multipart body may carry beyond the file: boundaries and part headers.
pub const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;

impl From<MultipartError> for AppError {
    fn from(error: MultipartError) -> Self {
        AppError::Rejected { status: error.status(), message: error.body_text() }
    }
}

fn store_failed(error: impl std::error::Error + Send + Sync + 'static) -> AppError {
    tracing::warn!(%error, "upload store failed");
    AppError::Unavailable
}

/// `POST /upload`: the form's `file` part, stored.
#[utoipa::path(
    post,
    path = "/upload",
    tag = "uploads",
    security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored; attach it to a message by its `id`", body = AttachmentView),
        (status = 400, description = "`bad_request`: not a multipart form, or not one part named `file`", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 413, description = "`too_large`: over `uploads.max_bytes` (25 MiB by default); `quota_exceeded`: the caller's uploads would take over `uploads.quota_bytes_per_user` (1 GiB by default)", body = ErrorBody),
        (status = 422, description = "`empty_file`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: no bytes for `uploads.idle_timeout` (30 s), or the upload took over `uploads.request_timeout`", body = ErrorBody),
        (status = 429, response = RateLimited),
        (status = 503, description = "`unavailable`: the gateway receives too many uploads, or the store failed", body = ErrorBody),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    let mut form = form.map_err(|r| AppError::Rejected { status: r.status(), message: r.body_text() })?;
    // Each upload in progress holds up to a few parts in memory: their number is bounded, and
    // one user cannot take them all.
    let _slot = state.uploads.start_upload(user).map_err(|r| refused(r, "uploads_in_progress_per_user"))?;
    let quota = state.uploads.config.quota_bytes_per_user;
    let room = quota.saturating_sub(crate::store::uploads::bytes_used(&state.db, user).await?);
    if room == 0 {
        return Err(AppError::QuotaExceeded { quota });
    }
    let field = match form.next_field().await? {
        Some(field) if field.name() == Some("file") => field,
        _ => return Err(AppError::BadRequest(ONE_PART.into())),
    };
    let filename = clean_filename(field.file_name());
    let id = UploadId(uuid::Uuid::new_v4());
    // Before the first byte is stored: if this request never ends well, the sweeper finds
    // the file by its intent.
    crate::store::uploads::intend(&state.db, id, user).await?;
    let mut field = field;
    let (size, head) = match store_field(&state, id, &mut field, room).await {
        Ok(stored) => stored,
        Err(error) => {
            let _ = crate::store::uploads::forget_intent(&state.db, id).await;
            let too_large = matches!(
                &error,
                AppError::QuotaExceeded { .. }
                    | AppError::Rejected { status: StatusCode::PAYLOAD_TOO_LARGE, .. }
            );
            if too_large {
                drain(&mut field, state.uploads.config.idle_timeout).await;
            }
            return Err(error);
        }
    };
    drop(field);
    if !matches!(form.next_field().await, Ok(None)) {
        discard(&state, id).await;
        return Err(AppError::BadRequest(ONE_PART.into()));
    }
    let sniffed = sniff(&head);
    let upload = Upload {
        id,
        owner_id: user,
        content_type: sniffed.content_type,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        width: sniffed.size.map(|(width, _)| width),
        height: sniffed.size.map(|(_, height)| height),
        filename,
    };
    if let Err(error) = crate::store::uploads::insert(&state.db, &upload).await {
        discard(&state, id).await;
        return Err(error.into());
    }
    tracing::debug!(%id, size, content_type = %upload.content_type, "upload stored");
    Ok((StatusCode::CREATED, Json(upload.view())))
}

/// Removes a file stored but not recorded, and its intent once it is gone (if the delete
/// fails, the sweeper finds the file by its intent later).
async fn discard(state: &AppState, id: UploadId) {
    if state.uploads.delete(id).await.is_ok() {
        let _ = crate::store::uploads::forget_intent(&state.db, id).await;
    }
}

/// The answer to a transfer that may not start: 503 when the gateway is busy, 429 `limit`
/// when the caller is.
fn refused(refused: SlotRefused, limit: &'static str) -> AppError {
    match refused {
        SlotRefused::GatewayBusy => AppError::Unavailable,
        SlotRefused::UserBusy => AppError::RateLimited { limit, retry_after_ms: 1000 },
    }
}

/// Streams `field` into the store as upload `id`, refusing it past `uploads.max_bytes` or past
/// `room` (what is left of the user's quota): its size and first [`HEAD_BYTES`]. Nothing is
/// left behind when it fails (too large, empty, the store failing).
async fn store_field(
    state: &AppState,
    id: UploadId,
    field: &mut Field<'_>,
    room: u64,
) -> ApiResult<(u64, Vec<u8>)> {
    let (max, quota) = (state.uploads.config.max_bytes, state.uploads.config.quota_bytes_per_user);
    let idle = state.uploads.config.idle_timeout;
    let mut writer = state.uploads.writer(id);
    let mut head = Vec::new();
    let mut size = 0u64;
    let received: ApiResult<()> = async {
        loop {
            // A client that stops sending holds its slot this long at most.
            let next = tokio::time::timeout(idle, field.chunk()).await;
            let Some(chunk) = next.map_err(|_| AppError::RequestTimeout)?? else { break };
            size += chunk.len() as u64;
            if size > room && room < max {
                return Err(AppError::QuotaExceeded { quota });
            }
            if size > max {
                return Err(AppError::Rejected {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!("files are at most {max} bytes"),
                });
            }
            let head_room = HEAD_BYTES.saturating_sub(head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..head_room]);
            writer.put(chunk).await.map_err(store_failed)?;
        }
        match size {
            0 => Err(AppError::invalid("empty_file", "the file is empty")),
            _ => Ok(()),
        }
    }
    .await;
    if let Err(error) = received {
        let _ = writer.abort().await;
        return Err(error);
    }
    if let Err(error) = writer.shutdown().await {
        let _ = state.uploads.delete(id).await;
        return Err(store_failed(error));
    }
    Ok((size, head))
}

/// Reads and drops the rest of a file refused mid-way (too large, or past the quota): the
/// client still sending it then reads the answer, where closing at once would show it a broken
/// pipe. Bounded like an upload: the body limit, and `idle` per chunk.
async fn drain(field: &mut Field<'_>, idle: std::time::Duration) {
    while let Ok(Ok(Some(_))) = tokio::time::timeout(idle, field.chunk()).await {}
}

/// A signed link's query (from `GET /upload/{id}/link`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Unix seconds after which the link stops working.
    pub expires: Option<i64>,
    /// The user the link was handed to (its downloads count against them).
    pub holder: Option<UserId>,
    /// The link's signature.
    pub signature: Option<String>,
}

/// `GET /upload/{id}`: the file, to its owner, to a member of a channel where a message
/// carries it, or with a valid signed link. Anyone else gets 404, as if it did not exist.
#[utoipa::path(
    get,
    path = "/upload/{id}",
    tag = "uploads",
    operation_id = "download",
    security(("bearer" = []), ()),
    params(UploadPath, LinkQuery),
    responses(
        (status = 200, description = "The bytes, with the type sniffed at upload (`application/octet-stream` when unknown): `inline` for images, `attachment` otherwise", content_type = "*/*"),
        (status = 401, description = "`unauthorized`: no token and no valid signed link", body = ErrorBody),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
        (status = 429, description = "`rate_limited`: the REST limit, or `uploads.max_downloads_in_progress_per_user` downloads of the caller's (or of the link's holder) in progress already", body = ErrorBody),
        (status = 503, description = "`unavailable`: the gateway serves `uploads.max_downloads_in_progress` downloads already", body = ErrorBody),
    )
)]
pub async fn download(
    State(state): State<AppState>,
    user: Option<AuthUser>,
    ApiPath(UploadPath { id }): ApiPath<UploadPath>,
    ApiQuery(link): ApiQuery<LinkQuery>,
    close: Option<Extension<CloseConnection>>,
) -> ApiResult<Response> {
    let holder = match (link.expires, link.holder, &link.signature) {
        (Some(expires), Some(holder), Some(signature))
            if state.uploads.link_is_valid(id, holder, expires, signature) =>
        {
            Some(holder)
        }
        _ => None,
    };
    // A signed link needs no token (its holder's rights were checked when it was signed).
    let (reader, upload) = match (holder, user) {
        (Some(holder), _) => (holder, readable(&state, id, None).await?),
        (None, Some(AuthUser(user))) => (user, readable(&state, id, Some(AuthUser(user))).await?),
        (None, None) => return Err(AppError::Unauthorized),
    };
    let slot =
        state.uploads.start_download(reader).map_err(|r| refused(r, "downloads_in_progress_per_user"))?;
    let bytes = state.uploads.read(id).await.map_err(|error| match error {
        object_store::Error::NotFound { .. } => AppError::NotFound("upload"),
        other => store_failed(other),
    })?;
    let disposition = match Sniffed::inline(&upload.content_type) {
        true => "inline",
        false => "attachment",
    };
    let filename =
        percent_encoding::utf8_percent_encode(&upload.filename, percent_encoding::NON_ALPHANUMERIC);
    let headers = [
        (header::CONTENT_TYPE, Sniffed::served_as(&upload.content_type).to_owned()),
        (header::CONTENT_LENGTH, upload.size.to_string()),
        (header::CONTENT_DISPOSITION, format!("{disposition}; filename*=UTF-8''{filename}")),
        // Never run as a page of this origin, whatever it holds.
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox; frame-ancestors 'none'".into()),
        // The bytes of an id never change.
        (header::CACHE_CONTROL, "private, max-age=86400, immutable".into()),
    ];
    let stalled = Stalled {
        after: state.uploads.config.idle_timeout,
        close: close.map(|Extension(close)| close),
        metrics: state.metrics.clone(),
    };
    let body = paced_body(bytes, slot, stalled);
    Ok((headers, body).into_response())
}

/// When a download counts as stalled, and what ends it.
struct Stalled {
    /// No chunk taken by the client for this long.
    after: std::time::Duration,
    /// Its connection (absent outside the gateway's server loop).
    close: Option<CloseConnection>,
    metrics: std::sync::Arc<crate::metrics::GatewayMetrics>,
}

/// A download's body: a task moves the store's chunks to the response one at a time. When the
/// client has not taken the next chunk for `stalled.after`, the task gives up: it drops the
/// store's stream and the download's slot, and closes the connection (whose socket would
/// otherwise stay open, full, for as long as the client keeps it). The client sees the
/// response end short of its `Content-Length`.
fn paced_body(
    mut bytes: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
    slot: Slot,
    stalled: Stalled,
) -> Body {
    let (chunks, mut taken) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(1);
    tokio::spawn(async move {
        let _slot = slot;
        while let Some(chunk) = bytes.next().await {
            let failed = chunk.is_err();
            let sent = tokio::time::timeout(stalled.after, chunks.send(chunk.map_err(std::io::Error::other)));
            match sent.await {
                Ok(Ok(())) if !failed => {}
                Ok(_) => return,
                Err(_) => {
                    stalled.metrics.downloads_cut_off.inc();
                    if let Some(CloseConnection(close)) = &stalled.close {
                        close.cancel();
                    }
                    return;
                }
            }
        }
    });
    Body::from_stream(futures::stream::poll_fn(move |cx| taken.poll_recv(cx)))
}

/// Upload `id` if `reader` may read it (`None`: a signed link, which may).
async fn readable(state: &AppState, id: UploadId, reader: Option<AuthUser>) -> ApiResult<Upload> {
    let upload = crate::store::uploads::get(&state.db, id).await?.ok_or(AppError::NotFound("upload"))?;
    match reader {
        Some(AuthUser(user)) if upload.owner_id != user => {
            match crate::store::uploads::shared_with(&state.db, id, user).await? {
                true => Ok(upload),
                false => Err(AppError::NotFound("upload")),
            }
        }
        _ => Ok(upload),
    }
}

/// A signed link to an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedLink {
    pub url: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// `GET /upload/{id}/link`: a url that serves the upload without a token until it expires
/// (`uploads.link_ttl`), for `<img src>` and downloads. Same rights as reading it.
#[utoipa::path(
    get,
    path = "/upload/{id}/link",
    tag = "uploads",
    security(("bearer" = [])),
    params(UploadPath),
    responses(
        (status = 200, description = "A url that works without a token until `expires_at`", body = SignedLink),
        (status = 401, response = Unauthorized),
        (status = 404, description = NOT_FOUND, body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn link(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(UploadPath { id }): ApiPath<UploadPath>,
) -> ApiResult<Json<SignedLink>> {
    readable(&state, id, Some(AuthUser(user))).await?;
    let ttl =
        chrono::Duration::from_std(state.uploads.config.link_ttl).unwrap_or(chrono::Duration::minutes(5));
    let expires_at = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now() + ttl, 0);
    let expires = expires_at.timestamp();
    let signature = state.uploads.signature(id, user, expires);
    let url = format!("{}?expires={expires}&holder={user}&signature={signature}", AttachmentView::url_of(id));
    Ok(Json(SignedLink { url, expires_at }))
}

/// `DELETE /upload/{id}`: by its owner. The bytes go at once; messages that carried it keep
/// its description, and reading it answers 404.
#[utoipa::path(
    delete,
    path = "/upload/{id}",
    tag = "uploads",
    operation_id = "delete_upload",
    security(("bearer" = [])),
    params(UploadPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such upload of the caller's", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(UploadPath { id }): ApiPath<UploadPath>,
) -> ApiResult<StatusCode> {
    let upload = crate::store::uploads::get(&state.db, id).await?;
    if upload.is_none_or(|u| u.owner_id != user) {
        return Err(AppError::NotFound("upload"));
    }
    // The bytes first: if the store fails, the upload is still there to delete again.
    state.uploads.delete(id).await.map_err(store_failed)?;
    crate::store::uploads::mark_deleted(&state.db, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}
