//! `/channels/{id}/members`, join, leave and reads: who is in a channel, with which role, and
//! how far each has read. Rights: anyone joins a public channel and anyone but the owner
//! leaves; owners and admins add and remove members below their role.

use crate::auth::extract::AuthUser;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, AppError, ErrorBody};
use crate::http::channels::{ChannelPath, access, member_role};
use crate::http::openapi::{ChannelNotFound, NotAMember, RateLimited, Unauthorized};
use crate::http::paging::{next_cursor, page_limit};
use crate::state::AppState;
use crate::store::channels::{self as store, ChannelKind, ChannelRow, MemberRow, Role};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::events::MembershipChange;
use shared::ids::{ChannelId, UserId};
use utoipa::{IntoParams, ToSchema};

/// The `{id}` and `{user_id}` of `/channels/{id}/members/{user_id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The channel.
    id: ChannelId,
    /// The member.
    user_id: UserId,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// Page size: 100 by default; any other number is clamped into 1-500.
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<UserId>,
}

/// A page of members, by user id; `next_cursor` is absent on the last page.
#[derive(Serialize, ToSchema)]
pub struct MemberPage {
    members: Vec<MemberRow>,
    next_cursor: Option<UserId>,
}

/// The members of a channel, for members.
#[utoipa::path(
    get,
    path = "/channels/{id}/members",
    tag = "channels",
    operation_id = "list_members",
    security(("bearer" = [])),
    params(ChannelPath, MembersQuery),
    responses(
        (status = 200, description = "A page of members", body = MemberPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = ChannelNotFound),
        (status = 429, response = RateLimited),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
    ApiQuery(query): ApiQuery<MembersQuery>,
) -> ApiResult<Json<MemberPage>> {
    member_role(&state, channel, user).await?;
    let limit = page_limit(query.limit, 100, 500);
    let members = store::members(&state.db, channel, query.cursor, limit).await?;
    let next_cursor = next_cursor(&members, limit, |m| m.user_id);
    Ok(Json(MemberPage { members, next_cursor }))
}

/// A page of read positions, by user id; `next_cursor` is absent on the last page.
#[derive(Serialize, ToSchema)]
pub struct ReadPage {
    reads: Vec<store::ReadRow>,
    next_cursor: Option<UserId>,
}

/// `GET /channels/{id}/reads`: how far each member has read, for members.
#[utoipa::path(
    get,
    path = "/channels/{id}/reads",
    tag = "channels",
    operation_id = "list_reads",
    security(("bearer" = [])),
    params(ChannelPath, MembersQuery),
    responses(
        (status = 200, description = "A page of read positions", body = ReadPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = ChannelNotFound),
        (status = 429, response = RateLimited),
    )
)]
pub async fn reads(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
    ApiQuery(query): ApiQuery<MembersQuery>,
) -> ApiResult<Json<ReadPage>> {
    member_role(&state, channel, user).await?;
    let limit = page_limit(query.limit, 100, 500);
    let reads = store::reads(&state.db, channel, query.cursor, limit).await?;
    let next_cursor = next_cursor(&reads, limit, |r| r.user_id);
    Ok(Json(ReadPage { reads, next_cursor }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    user_id: UserId,
    /// `member` by default; only the owner adds admins, nobody adds owners.
    role: Option<Role>,
}

/// Adds a member: owners and admins (anyone adds themself to a public channel).
#[utoipa::path(
    post,
    path = "/channels/{id}/members",
    tag = "channels",
    security(("bearer" = [])),
    params(ChannelPath),
    request_body = AddMember,
    responses(
        (status = 201, description = "Added"),
        (status = 401, response = Unauthorized),
        (status = 403, body = ErrorBody, description = "`forbidden`: the role of the caller cannot add \
            that member"),
        (status = 404, response = ChannelNotFound),
        (status = 409, body = ErrorBody, description = "`already_member`; `dm_immutable`: a dm has \
            exactly two members"),
        (status = 422, description = "`unknown_user`: no such user", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn add_member(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
    ApiJson(request): ApiJson<AddMember>,
) -> ApiResult<StatusCode> {
    add(&state, user, channel, request.user_id, request.role.unwrap_or(Role::Member)).await?;
    Ok(StatusCode::CREATED)
}

/// `POST /channels/{id}/join`: the caller joins a public channel (200 if already a member).
#[utoipa::path(
    post,
    path = "/channels/{id}/join",
    tag = "channels",
    operation_id = "join_channel",
    security(("bearer" = [])),
    params(ChannelPath),
    responses(
        (status = 200, description = "Already a member", body = ChannelRow),
        (status = 201, description = "Joined", body = ChannelRow),
        (status = 401, response = Unauthorized),
        (status = 404, response = ChannelNotFound),
        (status = 429, response = RateLimited),
    )
)]
pub async fn join(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
) -> ApiResult<(StatusCode, Json<ChannelRow>)> {
    let (row, role) = access(&state, channel, user).await?;
    if role.is_some() {
        return Ok((StatusCode::OK, Json(row)));
    }
    if row.kind.0 != ChannelKind::Public {
        return Err(AppError::Forbidden("only public channels can be joined"));
    }
    let status = match add(&state, user, channel, user, Role::Member).await {
        Ok(()) => StatusCode::CREATED,
        // A join of the same user that won the race.
        Err(AppError::Conflict { code: "already_member", .. }) => StatusCode::OK,
        Err(error) => return Err(error),
    };
    Ok((status, Json(access(&state, channel, user).await?.0)))
}

/// `POST /channels/{id}/leave`: the caller leaves (owners delete the channel instead).
#[utoipa::path(
    post,
    path = "/channels/{id}/leave",
    tag = "channels",
    operation_id = "leave_channel",
    security(("bearer" = [])),
    params(ChannelPath),
    responses(
        (status = 204, description = "Left"),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = ChannelNotFound),
        (status = 409, body = ErrorBody, description = "`owner_cannot_leave`: the owner deletes the \
            channel instead; `dm_immutable`: a dm has exactly two members"),
        (status = 429, response = RateLimited),
    )
)]
pub async fn leave(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
) -> ApiResult<StatusCode> {
    remove(&state, user, channel, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds `target` to the channel with `new_role`, as `user` may: anyone adds themself to a
/// public channel; otherwise owners and admins add people (only the owner adds admins).
async fn add(
    state: &AppState,
    user: UserId,
    channel: ChannelId,
    target: UserId,
    new_role: Role,
) -> ApiResult<()> {
    let (row, role) = access(state, channel, user).await?;
    if row.kind.0 == ChannelKind::Dm {
        return Err(AppError::conflict("dm_immutable", "a dm has exactly two members"));
    }
    let self_join = row.kind.0 == ChannelKind::Public && target == user && role.is_none();
    let allowed = match (new_role, role) {
        (Role::Owner, _) => false,
        (Role::Admin, Some(role)) => role == Role::Owner,
        (Role::Member, Some(role)) => role.can_manage(),
        (Role::Member, None) => self_join,
        (Role::Admin, None) => false,
    };
    if !allowed {
        return Err(AppError::Forbidden("your role cannot add that member"));
    }
    let joined_seq = store::add_member(&state.db, channel, target, new_role).await?;
    state.fanout.announce_membership(channel, target, MembershipChange::Joined, joined_seq).await;
    Ok(())
}

/// Removes a member: anyone but the owner removes themself; owners and admins remove members
/// below their role.
#[utoipa::path(
    delete,
    path = "/channels/{id}/members/{user_id}",
    tag = "channels",
    security(("bearer" = [])),
    params(MemberPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, response = Unauthorized),
        (status = 403, body = ErrorBody, description = "`forbidden`: not a member, or the role of the \
            caller cannot remove that member"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such channel (or one the caller \
            may not know of), or no such member"),
        (status = 409, body = ErrorBody, description = "`owner_cannot_leave`: the owner deletes the \
            channel instead; `dm_immutable`: a dm has exactly two members"),
        (status = 429, response = RateLimited),
    )
)]
pub async fn remove_member(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(MemberPath { id: channel, user_id: target }): ApiPath<MemberPath>,
) -> ApiResult<StatusCode> {
    remove(&state, user, channel, target).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes `target` from the channel, as `user` may: anyone but the owner leaves; owners and
/// admins remove members below their role. The target's sockets stop getting the channel at
/// once, on every gateway.
async fn remove(state: &AppState, user: UserId, channel: ChannelId, target: UserId) -> ApiResult<()> {
    let (row, role) = member_role(state, channel, user).await?;
    if row.kind.0 == ChannelKind::Dm {
        return Err(AppError::conflict("dm_immutable", "a dm has exactly two members"));
    }
    let target_role =
        store::role_of(&state.db, channel, target).await?.ok_or(AppError::NotFound("member"))?;
    let allowed =
        if target == user { target_role != Role::Owner } else { role.can_manage() && role < target_role };
    if !allowed {
        return Err(if target == user {
            AppError::Conflict {
                code: "owner_cannot_leave",
                message: "the owner deletes the channel instead".into(),
            }
        } else {
            AppError::Forbidden("your role cannot remove that member")
        });
    }
    store::remove_member(&state.db, channel, target).await?;
    state.fanout.announce_membership(channel, target, MembershipChange::Left, row.last_seq).await;
    Ok(())
}
