//! The gateway's HTTP application: the REST routes, `/ws`, and the layers every request goes
//! through (body limit, deadline, per-user REST limit, counting, tracing, CORS, security
//! headers).

use crate::auth::extract::{AuthUser, bearer_token_of};
use crate::error::AppError;
use crate::http;
use crate::ratelimit::Verdict;
use crate::state::AppState;
use crate::ws;
use axum::Router;
use axum::http::HeaderValue;
use tower_http::set_header::SetResponseHeaderLayer;

/// Largest REST request body, in bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Counts every HTTP response by status (WebSocket upgrades answer 101).
async fn count_requests(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    state.metrics.http_request(response.status().as_u16());
    response
}

/// Answers 408 `request_timeout` to a request (its body included) not answered within
/// `gateway.request_timeout` (`uploads.request_timeout` for an upload). A WebSocket upgrade
/// is answered at once; its socket lives on.
async fn deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let limit =
        match request.method() == axum::http::Method::POST && request.uri().path() == http::UPLOAD_PATH {
            true => state.uploads.config.request_timeout,
            false => state.config.request_timeout,
        };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(AppError::RequestTimeout),
    }
}

/// Counts an authenticated REST request against its user's limit; 429 past it. Requests
/// without a valid token pass (their handler answers 401, or they are the auth routes).
/// Verifies the token once for the whole request.
async fn limit_rest(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let user =
        bearer_token_of(request.headers()).and_then(|t| state.sessions.authenticate(t).ok()).map(|c| c.sub);
    if let Some(user) = user
        && let Verdict::Limited { limit, retry_after_ms } = state.limiter.rest_request(user).await
    {
        return axum::response::IntoResponse::into_response(AppError::RateLimited { limit, retry_after_ms });
    }
    if let Some(user) = user {
        // The handler's `AuthUser` takes it from here instead of verifying the token again.
        request.extensions_mut().insert(AuthUser(user));
    }
    next.run(request).await
}

/// Headers every response carries: HTTPS only, no sniffing, never framed, no referrer.
const SECURITY_HEADERS: [(axum::http::HeaderName, &str); 4] = [
    (axum::http::header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"),
    (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (axum::http::header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
    (axum::http::header::REFERRER_POLICY, "no-referrer"),
];

/// CORS for the REST API: the origins `origins::cors` names (the listed ones and `public_url`'s;
/// any with `["*"]`).
fn cors_layer(config: &shared::config::GatewayConfig) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(crate::origins::cors(config))
        .allow_methods(Any)
        .allow_headers(Any)
        .max_age(std::time::Duration::from_secs(600))
}

/// The whole application over `state`.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config);
    let app = http::router(state.limiter.config(), &state.uploads.config, state.metrics.clone())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limit_rest))
        .route("/ws", axum::routing::get(ws::upgrade::upgrade))
        .fallback({
            let pages = state.config.web_dir.as_deref().map(crate::web::pages);
            move |request| crate::web::page_or_not_found(pages.clone(), request)
        })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), deadline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(cors);
    let app = SECURITY_HEADERS.into_iter().fold(app, |app, (name, value)| {
        app.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)))
    });
    app.with_state(state)
}
