//! The web client's pages, when `gateway.web_dir` names a built one (`web/dist`): its files as
//! they are, and its `index.html` for any other path outside `/api/` (the client routes in the
//! page). Everything else the router does not know is its JSON 404, as without pages.

use crate::error::AppError;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use std::path::Path;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

/// The files of a built client, `index.html` for paths it does not have.
pub type Pages = ServeDir<ServeFile>;

/// The file service of `dir`, made once for the router.
pub fn pages(dir: &Path) -> Pages {
    ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))
}

/// The answer to a request no route took: a file of the pages, their `index.html`, or 404.
pub async fn page_or_not_found(pages: Option<Pages>, request: Request) -> Response {
    let path = request.uri().path();
    let Some(pages) = pages.filter(|_| !path.starts_with("/api/") && path != "/ws") else {
        return AppError::NotFound("route").into_response();
    };
    match pages.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}
