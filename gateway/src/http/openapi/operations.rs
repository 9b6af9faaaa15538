//! The operations of a document, for the modifiers that go over all of them.

use utoipa::openapi::OpenApi;
use utoipa::openapi::path::Operation;

/// Every operation of `openapi` with its path (the methods the API uses).
pub fn each_mut(openapi: &mut OpenApi) -> impl Iterator<Item = (&str, &mut Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
            .into_iter()
            .flatten()
            .map(move |operation| (path.as_str(), operation))
    })
}
