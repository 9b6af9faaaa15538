//! `/channels/{id}/messages/{message_id}`: one message as it is now, and the REST way to edit,
//! delete and react — the same checks and the same path as the socket frames (through the
//! stream, applied and given a `seq` by the worker). A change answers `202` once it is in the
//! stream, with `{status: "stored", message_id, channel_id}`; the `Idempotency-Key` header
//! (1–64 printable ASCII characters) makes a retried request the same change.

use crate::auth::extract::AuthUser;
use crate::changes::{self, ChangeRefused};
use crate::error::{ApiJson, ApiPath, ApiResult, AppError, ErrorBody};
use crate::http::channels::member_role;
use crate::http::openapi::{
    ChangeUnavailable, MessageNotFound, NotAMember, RateLimited, Unauthorized, rules,
};
use crate::ratelimit::Verdict;
use crate::state::AppState;
use crate::store;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use shared::events::Change;
use shared::ids::{ChannelId, ClientMsgId, MessageId};
use shared::protocol::{AckPayload, AckStatus, MessageView, validate_content, validate_emoji};
use utoipa::{IntoParams, ToSchema};

/// The `{id}` and `{message_id}` of `/channels/{id}/messages/{message_id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessagePath {
    /// The channel.
    id: ChannelId,
    /// The message.
    message_id: MessageId,
}

/// The path of `/channels/{id}/messages/{message_id}/reactions/{emoji}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReactionPath {
    /// The channel.
    id: ChannelId,
    /// The message.
    message_id: MessageId,
    /// The emoji, percent-encoded.
    #[param(inline)]
    emoji: rules::EmojiParam,
}

/// The `Idempotency-Key` header of the changes, as the document says it (the handlers read
/// it from the header map: `idempotency_key`).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Only described.
pub struct IdempotencyHeader {
    /// 1-64 printable ASCII characters: a retried request with the same key is the same change.
    #[param(rename = "Idempotency-Key", schema_with = rules::idempotency_key)]
    idempotency_key: Option<String>,
}

/// `GET`: the message, with its reactions as the caller sees them.
#[utoipa::path(
    get,
    path = "/channels/{id}/messages/{message_id}",
    tag = "messages",
    operation_id = "get_message",
    security(("bearer" = [])),
    params(MessagePath),
    responses(
        (status = 200, description = "The message as it is now", body = MessageView),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = MessageNotFound),
        (status = 429, response = RateLimited),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(MessagePath { id: channel, message_id: message }): ApiPath<MessagePath>,
) -> ApiResult<Json<MessageView>> {
    member_role(&state, channel, user).await?;
    let view = store::messages::one(&state.db, channel, message, user).await?;
    Ok(Json(view.ok_or(AppError::NotFound("message"))?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// The new content, as a send's.
    #[schema(schema_with = rules::content)]
    content: String,
}

/// `PATCH {content}`: the sender edits their message.
#[utoipa::path(
    patch,
    path = "/channels/{id}/messages/{message_id}",
    tag = "messages",
    operation_id = "edit_message",
    security(("bearer" = [])),
    params(MessagePath, IdempotencyHeader),
    request_body = EditRequest,
    responses(
        (status = 202, description = "In the stream, to be applied with a `seq`", body = AckPayload),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: not a member, or not the sender", body = ErrorBody),
        (status = 404, response = MessageNotFound),
        (status = 422, description = "`invalid_content` or `invalid_idempotency_key`", body = ErrorBody),
        (status = 429, response = RateLimited),
        (status = 503, response = ChangeUnavailable),
    )
)]
pub async fn edit(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(MessagePath { id: channel, message_id: message }): ApiPath<MessagePath>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<EditRequest>,
) -> ApiResult<(StatusCode, Json<AckPayload>)> {
    validate_content(&request.content).map_err(|e| AppError::invalid("invalid_content", e.to_string()))?;
    let change = Change::Edit { content: request.content, mentions: Vec::new(), mentions_channel: false };
    submit(&state, &headers, user, channel, message, change).await
}

/// `DELETE`: its sender, or an owner or admin of the channel, deletes a message.
#[utoipa::path(
    delete,
    path = "/channels/{id}/messages/{message_id}",
    tag = "messages",
    operation_id = "delete_message",
    security(("bearer" = [])),
    params(MessagePath, IdempotencyHeader),
    responses(
        (status = 202, description = "In the stream, to be applied with a `seq`", body = AckPayload),
        (status = 401, response = Unauthorized),
        (status = 403, body = ErrorBody, description = "`forbidden`: not a member, or neither the sender \
            nor an owner or admin"),
        (status = 404, response = MessageNotFound),
        (status = 422, description = "`invalid_idempotency_key`", body = ErrorBody),
        (status = 429, response = RateLimited),
        (status = 503, response = ChangeUnavailable),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(MessagePath { id: channel, message_id: message }): ApiPath<MessagePath>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<AckPayload>)> {
    submit(&state, &headers, user, channel, message, Change::Delete).await
}

/// `POST …/reactions/{emoji}`: adds the caller's reaction.
#[utoipa::path(
    post,
    path = "/channels/{id}/messages/{message_id}/reactions/{emoji}",
    tag = "messages",
    operation_id = "add_reaction",
    security(("bearer" = [])),
    params(ReactionPath, IdempotencyHeader),
    responses(
        (status = 202, description = "In the stream, to be applied with a `seq`", body = AckPayload),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = MessageNotFound),
        (status = 422, description = "`invalid_emoji` or `invalid_idempotency_key`", body = ErrorBody),
        (status = 429, response = RateLimited),
        (status = 503, response = ChangeUnavailable),
    )
)]
pub async fn react(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ReactionPath { id: channel, message_id: message, emoji }): ApiPath<ReactionPath>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<AckPayload>)> {
    submit(&state, &headers, user, channel, message, reaction(emoji.0, true)?).await
}

/// `DELETE …/reactions/{emoji}`: removes the caller's reaction.
#[utoipa::path(
    delete,
    path = "/channels/{id}/messages/{message_id}/reactions/{emoji}",
    tag = "messages",
    operation_id = "remove_reaction",
    security(("bearer" = [])),
    params(ReactionPath, IdempotencyHeader),
    responses(
        (status = 202, description = "In the stream, to be applied with a `seq`", body = AckPayload),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = MessageNotFound),
        (status = 422, description = "`invalid_emoji` or `invalid_idempotency_key`", body = ErrorBody),
        (status = 429, response = RateLimited),
        (status = 503, response = ChangeUnavailable),
    )
)]
pub async fn unreact(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ReactionPath { id: channel, message_id: message, emoji }): ApiPath<ReactionPath>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<AckPayload>)> {
    submit(&state, &headers, user, channel, message, reaction(emoji.0, false)?).await
}

/// A reaction's change, its emoji checked.
fn reaction(emoji: String, add: bool) -> ApiResult<Change> {
    validate_emoji(&emoji).map_err(|e| AppError::invalid("invalid_emoji", e))?;
    Ok(if add { Change::ReactionAdd { emoji } } else { Change::ReactionRemove { emoji } })
}

/// Checks membership, counts the change against the send limits, checks it, publishes it and
/// waits for the stream's ack.
async fn submit(
    state: &AppState,
    headers: &HeaderMap,
    user: shared::ids::UserId,
    channel: ChannelId,
    message: MessageId,
    change: Change,
) -> ApiResult<(StatusCode, Json<AckPayload>)> {
    let id = idempotency_key(headers)?;
    member_role(state, channel, user).await?;
    if let Verdict::Limited { limit, retry_after_ms } = state.limiter.send(user, channel).await {
        return Err(AppError::RateLimited { limit, retry_after_ms });
    }
    let change = changes::prepare(state, user, channel, message, change).await?;
    let published = changes::publish(state, user, id, channel, message, change).await;
    published.await.map_err(|_| AppError::Unavailable)?;
    let ack = AckPayload { status: AckStatus::Stored, message_id: message, channel_id: channel };
    Ok((StatusCode::ACCEPTED, Json(ack)))
}

/// The request's `Idempotency-Key`, or a fresh one.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<ClientMsgId> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(ClientMsgId(format!("rest-{}", uuid::Uuid::new_v4().simple())));
    };
    let key = ClientMsgId(value.to_str().unwrap_or_default().to_owned());
    if !key.is_valid() {
        let message = format!("Idempotency-Key: 1-{} printable ASCII characters", ClientMsgId::MAX_LEN);
        return Err(AppError::invalid("invalid_idempotency_key", message));
    }
    Ok(key)
}

impl From<ChangeRefused> for AppError {
    fn from(refused: ChangeRefused) -> Self {
        match refused {
            ChangeRefused::NotFound(_) | ChangeRefused::Deleted(_) => AppError::NotFound("message"),
            ChangeRefused::NoSuchUpload(_) => AppError::NotFound("upload"),
            ChangeRefused::Forbidden(why) => AppError::Forbidden(why),
            // REST checks membership itself; the socket's database fallback is what says this.
            ChangeRefused::NotAMember => AppError::Forbidden("you are not a member of this channel"),
            ChangeRefused::Db(error) => error.into(),
            ChangeRefused::Busy => AppError::Unavailable,
        }
    }
}
