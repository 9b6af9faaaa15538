//! The OpenAPI 3 document of the REST API, served at `/api/v1/openapi.json` with Swagger UI at
//! `/docs`. Its paths come from the handlers' `#[utoipa::path]` annotations, collected as
//! `http::router` registers them through `utoipa_axum`'s `routes!`: a route is in the router
//! and in the document, or in neither.
//!
//! Documenting a new handler takes one annotation and one line:
//! 1. `#[utoipa::path(...)]` on the handler: method, path (relative to the router it is
//!    registered in, so `/upload/{id}` for `/api/v1/upload/{id}`), `tag`, `params(...)` (an
//!    `IntoParams` path or query struct), `request_body`, and `responses(...)` with every
//!    status the handler itself can answer (`response = Unauthorized`, `RateLimited`, … for
//!    the shared answers declared below; `body = ErrorBody` for the others). A handler that
//!    takes `AuthUser` also says `security(("bearer" = []))`. Its body types derive
//!    `utoipa::ToSchema`.
//! 2. `.routes(routes!(module::handler))` in `http::router`, instead of `.route(...)`.
//!
//! `cell/tests/openapi.rs` fails on a plain `.route(...)` and on a documented operation that
//! a live gateway does not route, or whose need for a token the document misstates.

use crate::error::ErrorBody;
use crate::state::AppState;
use axum::Router;
use shared::ids::{ChannelId, MessageId, UserId};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToResponse};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
/// Where Swagger UI is served.
pub const SWAGGER_UI_PATH: &str = "/docs";

/// What the document says before its paths: info, the bearer scheme, shared components.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chat cell REST API",
        version = env!("CARGO_PKG_VERSION"),
        description = "The REST API of a chat cell's gateway. Real-time messaging goes over the \
            WebSocket at `/ws`, whose handshake and frames are described in `docs/protocol.md` \
            (as is everything here, in prose).\n\n\
            Every error answers `{\"error\": {\"code\", \"message\"}}` (`ErrorBody`); branch on \
            `code`. Besides the statuses listed per operation, any operation may answer 400 \
            `bad_request` (malformed JSON, path or query), 408 `request_timeout`, 413 \
            `too_large` (bodies over 64 KiB), 415 `unsupported_media_type` (a body that is not \
            `application/json`), 500 `internal` and 503 `unavailable`."
    ),
    modifiers(&BearerToken),
    components(
        schemas(ErrorBody, UserId, ChannelId, MessageId),
        responses(Unauthorized, RateLimited, NotAMember, ChannelNotFound, MessageNotFound, ChangeUnavailable)
    ),
    tags(
        (name = "auth", description = "Accounts and sessions: access tokens and rotating refresh tokens."),
        (name = "users", description = "Profiles and user search."),
        (name = "channels", description = "Channels, members, history and read positions."),
        (name = "messages", description = "One message; its edits, deletion and reactions."),
        (name = "search", description = "Full-text message search in the caller's channels."),
        (name = "uploads", description = "Files attached to messages: upload, read, signed links, delete."),
        (name = "health", description = "Liveness and readiness, outside `/api/v1`."),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme: `Authorization: Bearer <access token>`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("The `access_token` of a session (register, login, refresh)."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Declares an error answer that several operations share: a component of the document's
/// `responses`, named `$name`, with an `ErrorBody`. Operations name it with
/// `(status = …, response = $name)`.
macro_rules! shared_error {
    ($(#[$doc:meta])* $name:ident, $description:literal) => {
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description).build().into())
            }
        }
    };
}

shared_error!(
    /// 401 for a request without a valid access token.
    Unauthorized,
    "`unauthorized`: missing, invalid, expired or revoked access token"
);
shared_error!(
    /// 403 from the routes for members, to a caller who may see the (public) channel.
    NotAMember,
    "`forbidden`: not a member of this public channel"
);
shared_error!(
    /// 404 for a channel that does not exist or that the caller may not know of.
    ChannelNotFound,
    "`not_found`: no such channel, or one the caller may not know of (not public, not theirs)"
);
shared_error!(
    /// 404 for a message that is not in the channel.
    MessageNotFound,
    "`not_found`: no such channel (or one the caller may not know of), or no such message in \
    it; a change answers it for a deleted message too"
);
shared_error!(
    /// 503 from a message change whose checks or publication did not finish in time.
    ChangeUnavailable,
    "`unavailable`: the checks or the stream did not answer in time; retry with the same \
    `Idempotency-Key`"
);

/// 429 for a request over a rate limit: per user for authenticated requests, per IP for the
/// routes anyone can call, the send limits for message changes.
pub struct RateLimited;

impl<'r> ToResponse<'r> for RateLimited {
    fn response() -> (&'r str, RefOr<Response>) {
        let retry_after = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
            .description(Some("Seconds to wait before retrying"));
        let response = error_response("`rate_limited`: over a rate limit; retry after `Retry-After`")
            .header("Retry-After", retry_after.build());
        ("RateLimited", response.build().into())
    }
}

/// A response whose body is an `ErrorBody`.
fn error_response(description: &str) -> ResponseBuilder {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    ResponseBuilder::new().description(description).content("application/json", body)
}

/// Swagger UI at [`SWAGGER_UI_PATH`], showing `document`, which it serves at [`DOCUMENT_PATH`].
pub fn serve(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    SwaggerUi::new(SWAGGER_UI_PATH).url(DOCUMENT_PATH, document).into()
}
