//! The web client's pages, when `gateway.web_dir` names a built one (`web/dist`): its files as
//! they are, and its `index.html` for any other path outside `/api/` (the client routes in the
//! page). Everything else the router does not know is its JSON 404, as without pages.

use crate::error::AppError;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

/// The answer to a request no route took: a file of `dir`, its `index.html`, or 404.
pub async fn page_or_not_found(dir: Option<PathBuf>, request: Request) -> Response {
    let path = request.uri().path();
    let Some(dir) = dir.filter(|_| !path.starts_with("/api/") && path != "/ws") else {
        return AppError::NotFound("route").into_response();
    };
    let index = ServeFile::new(dir.join("index.html"));
    match ServeDir::new(&dir).fallback(index).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}
