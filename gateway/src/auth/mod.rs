//! Who a request or socket acts for: access tokens (`tokens`), passwords and refresh tokens
//! (`passwords`), revoked sessions (`sessions`), and the extractor of routes (`extract`).

pub mod extract;
pub mod passwords;
pub mod sessions;
pub mod tokens;
