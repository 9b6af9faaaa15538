//! Message search (Postgres full text): `GET /channels/{id}/messages/search?q=` within one
//! channel, `GET /search?q=` across the caller's channels. Newest first, paginated by the
//! `cursor` of the previous page (a message id); only channels the caller is a member of.

use crate::auth::AuthUser;
use crate::error::{ApiPath, ApiQuery, ApiResult, AppError};
use crate::http::channels::member_role;
use crate::http::{next_cursor, page_limit};
use crate::state::AppState;
use crate::store::messages::{SearchScope, search as search_store};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::ids::{ChannelId, MessageId, UserId};
use shared::protocol::MessageView;

/// Longest query, in characters.
const MAX_QUERY_CHARS: usize = 200;

#[derive(Deserialize)]
pub struct SearchQuery {
    q: String,
    limit: Option<i64>,
    cursor: Option<MessageId>,
}

#[derive(Serialize)]
pub struct SearchPage {
    messages: Vec<MessageView>,
    next_cursor: Option<MessageId>,
}

/// `GET /channels/{id}/messages/search?q=`: members only.
pub async fn in_channel(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(channel): ApiPath<ChannelId>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<SearchPage>> {
    member_role(&state, channel, user).await?;
    run(&state, user, SearchScope::Channel(channel), query).await
}

/// `GET /search?q=`: every channel of the caller.
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
    let q = query.q.trim();
    if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) {
        let message = format!("q: 1-{MAX_QUERY_CHARS} characters, no control characters");
        return Err(AppError::invalid("invalid_query", message));
    }
    let limit = page_limit(query.limit, 20, 100);
    let messages = search_store(&state.db, scope, q, query.cursor, limit, user).await?;
    let next_cursor = next_cursor(&messages, limit, |m| m.message_id);
    Ok(Json(SearchPage { messages, next_cursor }))
}
