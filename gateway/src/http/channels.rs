//! `/channels`: my channels, create (dm found-or-created), read, update, delete, history;
//! members, join and leave are in `members`. Rights: owners and admins manage; members read
//! and post; a non-member gets 403 for a public channel and 404 for one they may not know of.

use crate::auth::extract::AuthUser;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, AppError, ErrorBody};
use crate::http::openapi::{ChannelNotFound, NotAMember, RateLimited, Unauthorized, rules};
use crate::http::paging::{next_cursor, page_limit};
use crate::state::AppState;
use crate::store::channels::{self as store, ChannelKind, ChannelRow, NewChannel, Role};
use crate::store::messages::{self as history_store, Page};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::events::MembershipChange;
use shared::ids::{ChannelId, UserId};
use shared::protocol::MessageView;
use utoipa::{IntoParams, ToSchema};

const MAX_INITIAL_MEMBERS: usize = 1_000;

/// The `{id}` of `/channels/{id}…`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChannelPath {
    /// The channel.
    pub id: ChannelId,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size: 100 by default; any other number is clamped into 1-500.
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<ChannelId>,
}

/// A page of channels, by id; `next_cursor` is absent on the last page.
#[derive(Serialize, ToSchema)]
pub struct ChannelPage {
    channels: Vec<ChannelRow>,
    next_cursor: Option<ChannelId>,
}

/// The caller's channels, with their read positions and unread counts.
#[utoipa::path(
    get,
    path = "/channels",
    tag = "channels",
    operation_id = "list_channels",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of channels", body = ChannelPage),
        (status = 401, response = Unauthorized),
        (status = 429, response = RateLimited),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<ChannelPage>> {
    let limit = page_limit(query.limit, 100, 500);
    let channels = store::list_for_user(&state.db, user, query.cursor, limit).await?;
    let next_cursor = next_cursor(&channels, limit, |c| c.id);
    Ok(Json(ChannelPage { channels, next_cursor }))
}

/// A `group` or `public` channel needs a `name`; a `dm` has none, and exactly one other
/// member. Its schema says so (`rules::create_channel`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    #[serde(rename = "type")]
    kind: ChannelKind,
    /// 1-100 characters, no control characters.
    name: Option<String>,
    /// 1-1000 characters, no control characters but newlines.
    description: Option<String>,
    /// The first members besides the creator (the owner): at most 1000.
    #[serde(default)]
    member_ids: Vec<UserId>,
}

impl utoipa::PartialSchema for CreateChannel {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        rules::create_channel(MAX_INITIAL_MEMBERS).into()
    }
}

impl ToSchema for CreateChannel {}

/// Checks an optional text field: 1–`max` characters, no control characters but newlines
/// where `multiline`.
fn validate_text(
    value: &Option<String>,
    field: &'static str,
    code: &'static str,
    max: usize,
    multiline: bool,
) -> ApiResult<()> {
    let bad_char = |c: char| c.is_control() && !(multiline && c == '\n');
    match value {
        Some(v) if v.trim().is_empty() || v.chars().count() > max || v.chars().any(bad_char) => {
            Err(AppError::invalid(code, format!("{field}: 1-{max} characters, no control characters")))
        }
        _ => Ok(()),
    }
}

/// Creates a channel, owned by the caller; a `dm` that exists already is answered as it is.
#[utoipa::path(
    post,
    path = "/channels",
    tag = "channels",
    operation_id = "create_channel",
    security(("bearer" = [])),
    request_body = CreateChannel,
    responses(
        (status = 200, description = "The dm with that member, which existed already", body = ChannelRow),
        (status = 201, description = "Created", body = ChannelRow),
        (status = 401, response = Unauthorized),
        (status = 409, body = ErrorBody, description = "`dm_exists`: the same dm was created at the same \
            moment; fetch it again"),
        (status = 422, body = ErrorBody, description = "`invalid_name`, `invalid_description`, \
            `too_many_members`, `dm_immutable`, `invalid_members` or `unknown_user`"),
        (status = 429, response = RateLimited),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(request): ApiJson<CreateChannel>,
) -> ApiResult<(StatusCode, Json<ChannelRow>)> {
    validate_text(&request.name, "name", "invalid_name", 100, false)?;
    validate_text(&request.description, "description", "invalid_description", 1_000, true)?;
    let mut members = request.member_ids.clone();
    members.retain(|m| *m != user);
    members.sort();
    members.dedup();
    if members.len() > MAX_INITIAL_MEMBERS {
        return Err(AppError::invalid(
            "too_many_members",
            format!("at most {MAX_INITIAL_MEMBERS} initial members"),
        ));
    }
    let dm_key = match request.kind {
        ChannelKind::Dm if request.name.is_some() || request.description.is_some() => {
            return Err(AppError::invalid("dm_immutable", "a dm has no name or description"));
        }
        ChannelKind::Dm => {
            let [other] = members.as_slice() else {
                return Err(AppError::invalid("invalid_members", "a dm has exactly one other member"));
            };
            let (a, b) = if user < *other { (user, *other) } else { (*other, user) };
            let key = format!("{a}:{b}");
            if let Some(existing) = store::find_dm(&state.db, &key, user).await? {
                return Ok((StatusCode::OK, Json(existing)));
            }
            Some(key)
        }
        ChannelKind::Group | ChannelKind::Public => {
            if request.name.is_none() {
                return Err(AppError::invalid("invalid_name", "group and public channels need a name"));
            }
            None
        }
    };
    let channel = store::create(
        &state.db,
        NewChannel {
            kind: request.kind,
            name: request.name.as_deref().map(str::trim),
            description: request.description.as_deref(),
            creator: user,
            members: &members,
            dm_key,
        },
    )
    .await
    .map_err(|e| match e {
        // Two requests creating the same dm at once: the loser reports a conflict.
        sqlx::Error::Database(db) if db.constraint() == Some("channels_dm_key_key") => AppError::Conflict {
            code: "dm_exists",
            message: "that dm was just created; fetch it again".into(),
        },
        other => other.into(),
    })?;
    for member in members.iter().chain([&user]) {
        state
            .fanout
            .announce_membership(channel.id, *member, MembershipChange::Joined, channel.last_seq)
            .await;
    }
    Ok((StatusCode::CREATED, Json(channel)))
}

/// The channel and the caller's role, or the error a caller without access gets.
pub(crate) async fn access(
    state: &AppState,
    channel: ChannelId,
    user: UserId,
) -> ApiResult<(ChannelRow, Option<Role>)> {
    let (row, role) =
        store::get_with_role(&state.db, channel, user).await?.ok_or(AppError::NotFound("channel"))?;
    if role.is_none() && row.kind.0 != ChannelKind::Public {
        return Err(AppError::NotFound("channel"));
    }
    Ok((row, role))
}

/// The caller's role, which must exist (403 for a public channel, 404 otherwise).
pub(crate) async fn member_role(
    state: &AppState,
    channel: ChannelId,
    user: UserId,
) -> ApiResult<(ChannelRow, Role)> {
    let (row, role) = access(state, channel, user).await?;
    let role = role.ok_or(AppError::Forbidden("you are not a member of this channel"))?;
    Ok((row, role))
}

/// A channel the caller is in, or any public channel.
#[utoipa::path(
    get,
    path = "/channels/{id}",
    tag = "channels",
    operation_id = "get_channel",
    security(("bearer" = [])),
    params(ChannelPath),
    responses(
        (status = 200, description = "The channel", body = ChannelRow),
        (status = 401, response = Unauthorized),
        (status = 404, response = ChannelNotFound),
        (status = 429, response = RateLimited),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
) -> ApiResult<Json<ChannelRow>> {
    Ok(Json(access(&state, channel, user).await?.0))
}

/// The fields to change; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    /// 1-100 characters, no control characters.
    #[schema(schema_with = rules::channel_name)]
    name: Option<String>,
    /// 1-1000 characters, no control characters but newlines.
    #[schema(schema_with = rules::channel_description)]
    description: Option<String>,
}

/// Renames a channel or changes its description: owners and admins.
#[utoipa::path(
    patch,
    path = "/channels/{id}",
    tag = "channels",
    operation_id = "update_channel",
    security(("bearer" = [])),
    params(ChannelPath),
    request_body = UpdateChannel,
    responses(
        (status = 200, description = "The channel as changed", body = ChannelRow),
        (status = 401, response = Unauthorized),
        (status = 403, body = ErrorBody, description = "`forbidden`: not a member, or neither owner nor \
            admin"),
        (status = 404, response = ChannelNotFound),
        (status = 409, body = ErrorBody, description = "`dm_immutable`: a dm has no name or description"),
        (status = 422, body = ErrorBody, description = "`invalid_name` or `invalid_description`"),
        (status = 429, response = RateLimited),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
    ApiJson(request): ApiJson<UpdateChannel>,
) -> ApiResult<Json<ChannelRow>> {
    let (row, role) = member_role(&state, channel, user).await?;
    if row.kind.0 == ChannelKind::Dm {
        return Err(AppError::conflict("dm_immutable", "a dm has no name or description"));
    }
    if !role.can_manage() {
        return Err(AppError::Forbidden("only owners and admins change a channel"));
    }
    validate_text(&request.name, "name", "invalid_name", 100, false)?;
    validate_text(&request.description, "description", "invalid_description", 1_000, true)?;
    store::update(&state.db, channel, request.name.as_deref().map(str::trim), request.description.as_deref())
        .await?;
    Ok(Json(access(&state, channel, user).await?.0))
}

/// Deletes a channel: its owner.
#[utoipa::path(
    delete,
    path = "/channels/{id}",
    tag = "channels",
    operation_id = "delete_channel",
    security(("bearer" = [])),
    params(ChannelPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: not a member, or not the owner", body = ErrorBody),
        (status = 404, response = ChannelNotFound),
        (status = 429, response = RateLimited),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
) -> ApiResult<StatusCode> {
    let (row, role) = member_role(&state, channel, user).await?;
    if role != Role::Owner {
        return Err(AppError::Forbidden("only the owner deletes a channel"));
    }
    for member in store::delete(&state.db, channel).await? {
        state.fanout.announce_membership(channel, member, MembershipChange::Left, row.last_seq).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicQuery {
    /// Up to 100 characters the name contains, in any case; all public channels when absent
    /// or blank.
    #[param(schema_with = rules::channel_query)]
    q: Option<String>,
    /// Page size: 100 by default; any other number is clamped into 1-500.
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<ChannelId>,
}

/// `GET /channels/public?q=`: public channels whose name contains `q` (any case), by id,
/// with whether the caller is in each.
#[utoipa::path(
    get,
    path = "/channels/public",
    tag = "channels",
    operation_id = "list_public_channels",
    security(("bearer" = [])),
    params(PublicQuery),
    responses(
        (status = 200, description = "A page of public channels", body = ChannelPage),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_query`: `q` is over 100 characters", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn public(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<PublicQuery>,
) -> ApiResult<Json<ChannelPage>> {
    let raw_too_long = query.q.as_deref().is_some_and(|q| q.chars().count() > 100);
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if raw_too_long || q.is_some_and(|q| q.chars().any(char::is_control)) {
        return Err(AppError::invalid("invalid_query", "q: at most 100 characters, no control characters"));
    }
    let limit = page_limit(query.limit, 100, 500);
    let channels = store::list_public(&state.db, user, q, query.cursor, limit).await?;
    let next_cursor = next_cursor(&channels, limit, |c| c.id);
    Ok(Json(ChannelPage { channels, next_cursor }))
}

/// One of `after_seq` and `before_seq`; the newest messages when neither is given.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The messages after this `seq`, oldest first.
    after_seq: Option<i64>,
    /// The messages before this `seq`, newest first; with `after_seq`, the messages between
    /// the two, oldest first.
    before_seq: Option<i64>,
    /// Page size: 1-200, 50 by default.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A page of history; `has_more` when more messages follow in the same direction.
#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    messages: Vec<MessageView>,
    has_more: bool,
}

pub const MAX_HISTORY_PAGE: i64 = 200;

/// A page of a channel's messages, for members.
#[utoipa::path(
    get,
    path = "/channels/{id}/messages",
    tag = "channels",
    operation_id = "channel_history",
    security(("bearer" = [])),
    params(ChannelPath, HistoryQuery),
    responses(
        (status = 200, description = "A page of messages", body = HistoryPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = ChannelNotFound),
        (status = 422, description = "`invalid_limit`: `limit` is not 1-200", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<HistoryPage>> {
    member_role(&state, channel, user).await?;
    let page = match (query.after_seq, query.before_seq) {
        (Some(after), Some(before)) => Page::Between(after.max(0), before),
        (Some(after), None) => Page::After(after.max(0)),
        (None, Some(before)) => Page::Before(before),
        (None, None) => Page::Before(i64::MAX),
    };
    if let Some(limit) = query.limit
        && !(1..=MAX_HISTORY_PAGE).contains(&limit)
    {
        return Err(AppError::invalid("invalid_limit", format!("limit: 1-{MAX_HISTORY_PAGE}")));
    }
    let limit = page_limit(query.limit, 50, MAX_HISTORY_PAGE);
    let mut messages = history_store::history(&state.db, channel, page, limit + 1, Some(user)).await?;
    let has_more = messages.len() as i64 > limit;
    messages.truncate(limit as usize);
    Ok(Json(HistoryPage { messages, has_more }))
}
