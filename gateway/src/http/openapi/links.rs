//! The document's `links`: from the answers that name things (a channel created or listed, a
//! message in a page of history, an upload stored, a member added) to the operations that
//! take them, as OpenAPI runtime expressions. A client generator shows them as "what to call
//! next"; a stateful fuzzer follows them to reach past the 404s of ids it made up.
//!
//! Messages are sent over the WebSocket, not REST: the way to one is a page of history.

use serde_json::{Value, json};
use utoipa::Modify;
use utoipa::openapi::RefOr;

use super::operations;

/// `(parameter, runtime expression)`s of one link.
type Arguments = &'static [(&'static str, &'static str)];

/// The operations that take a channel's `id`, and nothing else from the path.
const CHANNEL_OPERATIONS: [&str; 10] = [
    "get_channel",
    "update_channel",
    "delete_channel",
    "join_channel",
    "leave_channel",
    "list_members",
    "add_member",
    "channel_history",
    "search_channel",
    "list_reads",
];

/// The operations on one message.
const MESSAGE_OPERATIONS: [&str; 5] =
    ["get_message", "edit_message", "delete_message", "add_reaction", "remove_reaction"];

/// The operations on one upload.
const UPLOAD_OPERATIONS: [&str; 3] = ["download", "link", "delete_upload"];

/// `(operation, status, target operations, arguments)`: each answer of `operation` with
/// `status` links to each target, passing the arguments.
const LINKS: &[(&str, &str, &[&str], Arguments)] = &[
    ("create_channel", "201", &CHANNEL_OPERATIONS, &[("id", "$response.body#/id")]),
    ("create_channel", "200", &CHANNEL_OPERATIONS, &[("id", "$response.body#/id")]),
    ("list_channels", "200", &CHANNEL_OPERATIONS, &[("id", "$response.body#/channels/0/id")]),
    ("list_public_channels", "200", &CHANNEL_OPERATIONS, &[("id", "$response.body#/channels/0/id")]),
    ("get_channel", "200", &CHANNEL_OPERATIONS, &[("id", "$response.body#/id")]),
    (
        "channel_history",
        "200",
        &MESSAGE_OPERATIONS,
        &[("id", "$request.path.id"), ("message_id", "$response.body#/messages/0/message_id")],
    ),
    (
        "search_channel",
        "200",
        &MESSAGE_OPERATIONS,
        &[("id", "$request.path.id"), ("message_id", "$response.body#/messages/0/message_id")],
    ),
    (
        "search_messages",
        "200",
        &MESSAGE_OPERATIONS,
        &[
            ("id", "$response.body#/messages/0/channel_id"),
            ("message_id", "$response.body#/messages/0/message_id"),
        ],
    ),
    (
        "get_message",
        "200",
        &MESSAGE_OPERATIONS,
        &[("id", "$request.path.id"), ("message_id", "$response.body#/message_id")],
    ),
    (
        "add_member",
        "201",
        &["remove_member"],
        &[("id", "$request.path.id"), ("user_id", "$request.body#/user_id")],
    ),
    (
        "list_members",
        "200",
        &["remove_member"],
        &[("id", "$request.path.id"), ("user_id", "$response.body#/members/0/user_id")],
    ),
    ("upload", "201", &UPLOAD_OPERATIONS, &[("id", "$response.body#/id")]),
    ("register", "201", &["get_user"], &[("id", "$response.body#/user/id")]),
    ("search_users", "200", &["get_user"], &[("id", "$response.body#/users/0/id")]),
    ("get_me", "200", &["get_user"], &[("id", "$response.body#/id")]),
];

/// Puts [`LINKS`] into the operations' answers.
pub struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for &(source, status, targets, arguments) in LINKS {
            let response = operations::each_mut(openapi)
                .map(|(_, operation)| operation)
                .find(|operation| operation.operation_id.as_deref() == Some(source))
                .and_then(|operation| operation.responses.responses.get_mut(status));
            let Some(RefOr::T(response)) = response else {
                panic!("a link from {source} {status}, which the document does not have inline");
            };
            let links: serde_json::Map<String, Value> = targets
                .iter()
                .map(|&target| {
                    let parameters: serde_json::Map<String, Value> =
                        arguments.iter().map(|&(name, value)| (name.to_owned(), json!(value))).collect();
                    (target.to_owned(), json!({"operationId": target, "parameters": parameters}))
                })
                .collect();
            // As an extension, not `Response::links`: utoipa 5.5's `Link` serialises its
            // fields in snake case (`operation_id`), which no reader of OpenAPI knows.
            let extensions = response.extensions.get_or_insert_with(Default::default);
            match extensions.entry("links".to_owned()).or_insert_with(|| json!({})) {
                Value::Object(existing) => existing.extend(links),
                _ => unreachable!("links are an object"),
            }
        }
    }
}
