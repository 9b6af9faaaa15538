//! The error answers of the document: those several operations share (components of its
//! `responses`, named by the handlers' annotations), and [`CommonErrors`], which adds to every
//! operation the answers that come from the layers and extractors around its handler rather
//! than from the handler itself, so that no operation's list of statuses is short of what it
//! can answer.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, ToResponse};

use super::operations;

/// Declares an error answer that several operations share: a component of the document's
/// `responses`, named `$name`, with an `ErrorBody`. Operations name it with
/// `(status = …, response = $name)`.
macro_rules! shared_error {
    ($(#[$doc:meta])* $name:ident, $description:expr) => {
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

shared_error!(
    /// 400 for a path, query or body the extractors cannot read.
    BadRequest,
    "`bad_request`: a path or query parameter that does not parse (an id that is not a UUID, \
    a number out of range), or a body that is not JSON"
);
shared_error!(
    /// 408 for a request (its body included) not answered within the request deadline.
    RequestTimeout,
    "`request_timeout`: the request was not answered within its deadline; retry"
);
shared_error!(
    /// 413 for a JSON body over the global body limit.
    TooLarge,
    "`too_large`: a body over 64 KiB"
);
shared_error!(
    /// 415 for a body without `Content-Type: application/json`.
    UnsupportedMediaType,
    "`unsupported_media_type`: a body whose `Content-Type` is not `application/json`"
);
shared_error!(
    /// 422 for a JSON body of the wrong shape, from operations whose handler has no 422 of its own.
    BodyShape,
    BODY_SHAPE
);
shared_error!(
    /// 500 for a fault of the gateway's own.
    Internal,
    "`internal`: a fault of the server's; the request may be retried"
);
shared_error!(
    /// 503 when Postgres, Redis or the stream do not answer in time.
    Unavailable,
    "`unavailable`: a store the request needs did not answer in time; retry"
);

/// The 422 codes of a JSON body's shape: the whole of `BodyShape`, or added to a handler's own.
const BODY_SHAPE: &str = "`bad_request`: a body of the wrong shape (a missing or unknown field, \
    a wrong type); `too_deep`: JSON nested too deeply";

/// Adds to each operation under `/api/v1` the statuses the layers and extractors answer:
/// 400 where it reads a path, query or body; 413, 415 and 422 where it reads a JSON body;
/// 408, 500 and 503 everywhere. A status the handler documents itself is kept as it is (its
/// 422 gains the body-shape codes).
pub struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        operations::each_mut(openapi)
            .filter(|(path, _)| path.starts_with("/api/v1/"))
            .for_each(|(_, operation)| add_common_errors(operation));
    }
}

fn add_common_errors(operation: &mut Operation) {
    let json_body =
        operation.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
    let reads_input =
        operation.request_body.is_some() || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, name: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| Ref::from_response_name(name).into());
    };
    if reads_input {
        add("400", "BadRequest");
    }
    if json_body {
        add("413", "TooLarge");
        add("415", "UnsupportedMediaType");
        add("422", "BodyShape");
    }
    add("408", "RequestTimeout");
    add("500", "Internal");
    add("503", "Unavailable");
    if json_body && let Some(RefOr::T(own)) = operation.responses.responses.get_mut("422") {
        own.description = format!("{}; {BODY_SHAPE}", own.description);
    }
}
