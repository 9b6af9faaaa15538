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
//!    `utoipa::ToSchema`; a string field the handler checks takes its rule's schema
//!    (`#[schema(schema_with = rules::…)]`, or a `rules::…Param` type for a parameter), so
//!    the document says what the check accepts.
//! 2. `.routes(routes!(module::handler))` in `http::router`, instead of `.route(...)`.
//!
//! The statuses every operation shares (400 for input that does not parse, 415 for a body
//! that is not JSON, 500, 503, …) are added by [`responses::CommonErrors`]; validated strings
//! take their schemas from [`rules`]; the `links` between operations are in [`links`].
//!
//! `cell/tests/openapi.rs` fails on a plain `.route(...)` and on a documented operation that
//! a live gateway does not route, or whose need for a token the document misstates;
//! `cell/tests/api_fuzz.rs` runs schemathesis over the document against a live cell.

pub mod links;
mod operations;
pub mod responses;
pub mod rules;

pub use responses::{
    ChangeUnavailable, ChannelNotFound, MessageNotFound, NotAMember, RateLimited, Unauthorized,
};

use crate::error::ErrorBody;
use crate::state::AppState;
use axum::Router;
use responses::{
    BadRequest, BodyShape, Internal, RequestTimeout, TooLarge, Unavailable, UnsupportedMediaType,
};
use shared::ids::{ChannelId, MessageId, UserId};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
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
            `code`. Each operation lists every status it can answer, those of the layers \
            around it included (400 for input that does not parse, 415 for a body that is not \
            JSON, 408, 500, 503).\n\n\
            The `links` of an answer name the operations that take what it returns."
    ),
    modifiers(&BearerToken),
    components(
        schemas(ErrorBody, UserId, ChannelId, MessageId),
        responses(
            Unauthorized, RateLimited, NotAMember, ChannelNotFound, MessageNotFound, ChangeUnavailable,
            BadRequest, RequestTimeout, TooLarge, UnsupportedMediaType, BodyShape, Internal, Unavailable
        )
    ),
    tags(
        (name = "auth", description = "Accounts and sessions: access tokens and rotating refresh tokens."),
        (name = "users", description = "Profiles and user search."),
        (name = "channels", description = "Channels, members, history and read positions."),
        (name = "messages", description = "One message; its edits, deletion and reactions."),
        (name = "search", description = "Full-text message search in the caller's channels."),
        (name = "uploads", description = "Files attached to messages: upload, read, signed links, delete."),
        (name = "calls", description = "Calls: the ICE servers (STUN, TURN with short-lived credentials) their media uses."),
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

/// What the document gains once the router has put its paths in: the statuses every
/// operation shares, and the links between operations.
pub fn complete(document: &mut utoipa::openapi::OpenApi) {
    responses::CommonErrors.modify(document);
    links::Links.modify(document);
}

/// Swagger UI at [`SWAGGER_UI_PATH`], showing `document`, which it serves at [`DOCUMENT_PATH`].
pub fn serve(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    SwaggerUi::new(SWAGGER_UI_PATH).url(DOCUMENT_PATH, document).into()
}
