//! Message search (Postgres full text): `GET /channels/{id}/messages/search?q=` within one
//! channel, `GET /search?q=` across the caller's channels. Newest first, paginated by the
//! `cursor` of the previous page (a message id); only channels the caller is a member of.

use crate::auth::extract::AuthUser;
use crate::error::{ApiPath, ApiQuery, ApiResult, AppError, ErrorBody};
use crate::http::channels::{ChannelPath, member_role};
use crate::http::openapi::{ChannelNotFound, NotAMember, RateLimited, Unauthorized, rules};
use crate::http::paging::{next_cursor, page_limit};
use crate::state::AppState;
use crate::store::messages::{SearchScope, search as search_store};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::ids::{MessageId, UserId};
use shared::protocol::MessageView;
use utoipa::{IntoParams, ToSchema};

/// Longest query, in characters.
const MAX_QUERY_CHARS: usize = 200;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// 1-200 characters, not blank, no control characters: words to find (Postgres full text).
    #[param(inline)]
    q: rules::MessageQueryParam,
    /// Page size: 20 by default; any other number is clamped into 1-100.
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<MessageId>,
}

/// A page of matches, newest first; `next_cursor` is absent on the last page.
#[derive(Serialize, ToSchema)]
pub struct SearchPage {
    messages: Vec<MessageView>,
    next_cursor: Option<MessageId>,
}

/// `GET /channels/{id}/messages/search?q=`: members only.
#[utoipa::path(
    get,
    path = "/channels/{id}/messages/search",
    tag = "search",
    operation_id = "search_channel",
    security(("bearer" = [])),
    params(ChannelPath, SearchQuery),
    responses(
        (status = 200, description = "A page of matches", body = SearchPage),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = ChannelNotFound),
        (status = 422, description = "`invalid_query`", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn in_channel(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<SearchPage>> {
    member_role(&state, channel, user).await?;
    run(&state, user, SearchScope::Channel(channel), query).await
}

/// `GET /search?q=`: every channel of the caller.
#[utoipa::path(
    get,
    path = "/search",
    tag = "search",
    operation_id = "search_messages",
    security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of matches", body = SearchPage),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_query`", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn everywhere(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<SearchPage>> {
    run(&state, user, SearchScope::ChannelsOf(user), query).await
}

async fn run(
    state: &AppState,
    user: UserId,
    scope: SearchScope,
    query: SearchQuery,
) -> ApiResult<Json<SearchPage>> {
    let q = query.q.0.trim();
    if q.is_empty() || query.q.0.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) {
        let message = format!("q: 1-{MAX_QUERY_CHARS} characters, no control characters");
        return Err(AppError::invalid("invalid_query", message));
    }
    let limit = page_limit(query.limit, 20, 100);
    let messages = search_store(&state.db, scope, q, query.cursor, limit, user).await?;
    let next_cursor = next_cursor(&messages, limit, |m| m.message_id);
    Ok(Json(SearchPage { messages, next_cursor }))
}
