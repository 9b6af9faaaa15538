//! Uploads through real servers and two gateways sharing one store directory: the type sniffed
//! from the bytes (never the client's word), who may read a file (its owner, members of a
//! channel where a message carries it, a signed link), attachments on messages live and in
//! history, deletes, and the bounds (size, empty files, bad forms) leaving nothing behind.

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use shared::ids::ChannelId;
use shared::local::client::{ChatClient, ChatSocket, expect};
use shared::local::{CellOptions, TestCell};
use shared::protocol::{ContentType, ErrorCode, MessageView, ServerFrame};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A PNG header of `width` × `height` (enough for the sniffing), then `filler` bytes.
fn png(width: u32, height: u32, filler: usize) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
    png.extend_from_slice(&width.to_be_bytes());
    png.extend_from_slice(&height.to_be_bytes());
    png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    png.extend((0..filler).map(|i| (i % 251) as u8));
    png
}

/// `POST /upload` of `bytes` as the form's `file` part, claiming `claimed_type`.
async fn upload(
    client: &ChatClient,
    bytes: Vec<u8>,
    filename: &str,
    claimed_type: &str,
) -> reqwest::Response {
    let part = Part::bytes(bytes).file_name(filename.to_owned()).mime_str(claimed_type).unwrap();
    client.request(Method::POST, "/upload").multipart(Form::new().part("file", part)).send().await.unwrap()
}

async fn stored(client: &ChatClient, bytes: Vec<u8>, filename: &str) -> Value {
    expect(upload(client, bytes, filename, "text/html").await, 201).await.unwrap()
}

/// `GET` of an upload's url (`/api/v1/upload/…`) with `client`'s token, or none.
async fn download(base: &str, url: &str, client: Option<&ChatClient>) -> reqwest::Response {
    let request = reqwest::Client::new().get(format!("{base}{url}"));
    let request = match client {
        Some(client) => request.bearer_auth(&client.access_token),
        None => request,
    };
    request.send().await.unwrap()
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn send_with(
    socket: &mut ChatSocket,
    channel: ChannelId,
    id: &str,
    content: &str,
    attachments: &[&Value],
) {
    let ids: Vec<&Value> = attachments.iter().map(|a| &a["id"]).collect();
    let frame = json!({"type": "message.send", "id": id,
        "payload": {"channel_id": channel, "content": content, "attachments": ids}});
    socket.send_text(frame.to_string()).await.unwrap();
}

/// Reads until the answer to frame `id`: the ack's `Ok`, or the error's code.
async fn answer(socket: &mut ChatSocket, id: &str, cell: &TestCell) -> Result<(), ErrorCode> {
    loop {
        match socket.next_frame(WAIT).await {
            Ok(Some(ServerFrame::MessageAck { id: acked, .. })) if acked.0 == id => return Ok(()),
            Ok(Some(ServerFrame::Error { id: Some(refused), payload })) if refused == id => {
                assert!(!payload.retryable, "a bad attachment is not worth resending: {payload:?}");
                return Err(payload.code);
            }
            Ok(Some(_)) => {}
            other => panic!("no answer to {id} ({other:?})\n{}", cell.logs_tail()),
        }
    }
}

async fn next_message(socket: &mut ChatSocket, cell: &TestCell) -> MessageView {
    loop {
        match socket.next_frame(WAIT).await {
            Ok(Some(ServerFrame::MessageNew { payload })) => return payload,
            Ok(Some(_)) => {}
            other => panic!("no message.new ({other:?})\n{}", cell.logs_tail()),
        }
    }
}

#[tokio::test]
async fn uploads_are_sniffed_attached_and_read_only_by_those_who_share_them() {
    let cell = TestCell::start(CellOptions { gateways: 2, ..CellOptions::default() }).await.unwrap();
    let (base0, base1) = (cell.gateway_url(0), cell.gateway_url(1));
    let alice = ChatClient::register(&base0, "alice").await.unwrap();
    let bob = ChatClient::register(&base1, "bob").await.unwrap();
    let carol = ChatClient::register(&base1, "carol").await.unwrap();

    // The client says text/html and names it .html; the bytes say PNG.
    let image_bytes = png(640, 480, 300_000);
    let image = stored(&alice, image_bytes.clone(), "../../evil.html").await;
    assert_eq!(image["content_type"], "image/png");
    assert_eq!((image["width"].as_i64(), image["height"].as_i64()), (Some(640), Some(480)));
    assert_eq!(image["size"].as_u64(), Some(image_bytes.len() as u64));
    assert_eq!(image["filename"], "evil.html", "no path survives");
    let url = image["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/api/v1/upload/{}", image["id"].as_str().unwrap()));
    let page = stored(&alice, b"<html><script>alert(1)</script></html>".to_vec(), "page.html").await;
    assert_eq!(page["content_type"], "text/html");
    assert!(page.get("width").is_none());

    // The owner reads it back from the other gateway, byte for byte, with safe headers.
    let response = download(&base1, &url, Some(&alice)).await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("content-disposition"), "inline; filename*=UTF-8''evil%2Ehtml");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-security-policy").contains("sandbox"));
    assert_eq!(response.bytes().await.unwrap().as_ref(), image_bytes.as_slice());
    let page_url = page["url"].as_str().unwrap();
    // A page is served as bytes to download, never as a page of this origin.
    let response = download(&base0, page_url, Some(&alice)).await;
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));

    // Nobody else reads it until it is shared; without a token: 401.
    assert_eq!(error_code(download(&base1, &url, Some(&bob)).await).await, (404, "not_found".into()));
    assert_eq!(error_code(download(&base1, &url, None).await).await, (401, "unauthorized".into()));

    let channel = alice.create_channel("group", "pictures", &[bob.user_id]).await.unwrap();
    let mut alice_socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_socket = bob.connect(&cell.ws_url(1)).await.unwrap();
    // Others' uploads, unknown ones, and `image` without attachments are refused.
    let mut bob_sender = bob.connect(&cell.ws_url(1)).await.unwrap();
    send_with(&mut bob_sender, channel, "b-1", "mine now", &[&image]).await;
    assert_eq!(answer(&mut bob_sender, "b-1", &cell).await, Err(ErrorCode::NotFound));
    let unknown = json!({"id": uuid::Uuid::new_v4()});
    send_with(&mut bob_sender, channel, "b-2", "ghost", &[&unknown]).await;
    assert_eq!(answer(&mut bob_sender, "b-2", &cell).await, Err(ErrorCode::NotFound));
    let typed = json!({"type": "message.send", "id": "b-3",
        "payload": {"channel_id": channel, "content": "hi", "content_type": "image"}});
    bob_sender.send_text(typed.to_string()).await.unwrap();
    assert_eq!(answer(&mut bob_sender, "b-3", &cell).await, Err(ErrorCode::InvalidPayload));

    // An image with no caption, then a caption with the image and the page.
    send_with(&mut alice_socket, channel, "a-1", "", &[&image]).await;
    answer(&mut alice_socket, "a-1", &cell).await.unwrap();
    let live = next_message(&mut bob_socket, &cell).await;
    assert_eq!(live.content_type, ContentType::Image);
    assert_eq!(live.content, "");
    assert_eq!(live.attachments.len(), 1);
    assert_eq!(serde_json::to_value(&live.attachments[0]).unwrap(), image, "the upload's own description");
    send_with(&mut alice_socket, channel, "a-2", "both", &[&page, &image]).await;
    answer(&mut alice_socket, "a-2", &cell).await.unwrap();
    let both = next_message(&mut bob_socket, &cell).await;
    assert_eq!(both.content_type, ContentType::File, "not every attachment is an image");
    let order: Vec<Value> = both.attachments.iter().map(|a| json!(a.id)).collect();
    assert_eq!(order, vec![page["id"].clone(), image["id"].clone()], "in the order sent");

    // Shared: the member reads it (any gateway); the non-member still cannot.
    let response = download(&base0, &url, Some(&bob)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), image_bytes.as_slice());
    assert_eq!(error_code(download(&base1, &url, Some(&carol)).await).await.0, 404);
    // Membership is what shares it: a member added reads it, and not once removed.
    let members = format!("/channels/{channel}/members");
    let add = alice.request(Method::POST, &members).json(&json!({"user_id": carol.user_id}));
    expect(add.send().await.unwrap(), 201).await.unwrap();
    assert_eq!(download(&base1, &url, Some(&carol)).await.status(), 200);
    let remove = alice.request(Method::DELETE, &format!("{members}/{}", carol.user_id));
    assert!(remove.send().await.unwrap().status().is_success());
    assert_eq!(error_code(download(&base1, &url, Some(&carol)).await).await.0, 404);

    // A socket that syncs from 0 is replayed the same attachments.
    let mut replayed = bob.resume(&cell.ws_url(0), &[(channel, 0)]).await.unwrap();
    let (first, second) =
        (next_message(&mut replayed, &cell).await, next_message(&mut replayed, &cell).await);
    assert_eq!((first.attachments, second.attachments), (live.attachments.clone(), both.attachments.clone()));

    // History shows what was sent.
    let history =
        expect(bob.request(Method::GET, &format!("/channels/{channel}/messages")).send().await.unwrap(), 200)
            .await
            .unwrap();
    let messages: Vec<MessageView> = serde_json::from_value(history["messages"].clone()).unwrap();
    let by_client: Vec<(&str, ContentType, usize)> =
        messages.iter().map(|m| (m.client_id.0.as_str(), m.content_type, m.attachments.len())).collect();
    assert!(by_client.contains(&("a-1", ContentType::Image, 1)), "{by_client:?}");
    assert!(by_client.contains(&("a-2", ContentType::File, 2)), "{by_client:?}");

    // A signed link works without a token, only as signed, and only for those who may read.
    let link = expect(
        bob.request(Method::GET, &format!("/upload/{}/link", image["id"].as_str().unwrap()))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
    .unwrap();
    let signed = link["url"].as_str().unwrap();
    let response = download(&base1, signed, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), image_bytes.len());
    let (unsigned, signature) = signed.split_once("signature=").unwrap();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    let forged = format!("{unsigned}signature={flipped}{}", &signature[1..]);
    assert_eq!(error_code(download(&base1, &forged, None).await).await.0, 401, "one hex digit changed");
    let for_page = format!("{}?{}", page_url, signed.split_once('?').unwrap().1);
    assert_eq!(error_code(download(&base1, &for_page, None).await).await.0, 401, "a link is for one upload");
    let carols = carol.request(Method::GET, &format!("/upload/{}/link", image["id"].as_str().unwrap()));
    assert_eq!(error_code(carols.send().await.unwrap()).await.0, 404);

    // Deleting both messages ends the sharing; their attachments are gone from history.
    for (id, message) in [("d-1", &live), ("d-2", &both)] {
        let delete = json!({"type": "message.delete", "id": id,
            "payload": {"channel_id": channel, "message_id": message.message_id}});
        alice_socket.send_text(delete.to_string()).await.unwrap();
        answer(&mut alice_socket, id, &cell).await.unwrap();
    }
    let mut deleted = 0;
    while deleted < 2 {
        match bob_socket.next_frame(WAIT).await {
            Ok(Some(ServerFrame::MessageDeleted { .. })) => deleted += 1,
            Ok(Some(_)) => {}
            other => panic!("no message.deleted ({other:?})\n{}", cell.logs_tail()),
        }
    }
    let one = expect(
        bob.request(Method::GET, &format!("/channels/{channel}/messages/{}", live.message_id))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
    .unwrap();
    assert!(one.get("attachments").is_none(), "a deleted message carries nothing: {one}");
    assert_eq!(error_code(download(&base0, &url, Some(&bob)).await).await.0, 404);
    assert_eq!(download(&base0, &url, Some(&alice)).await.status(), 200, "still the owner's");

    // Only the owner deletes an upload; then it is gone for everyone.
    let page_path = format!("/upload/{}", page["id"].as_str().unwrap());
    assert_eq!(error_code(bob.request(Method::DELETE, &page_path).send().await.unwrap()).await.0, 404);
    assert_eq!(alice.request(Method::DELETE, &page_path).send().await.unwrap().status(), 204);
    assert_eq!(error_code(download(&base1, page_url, Some(&alice)).await).await.0, 404);
    send_with(&mut alice_socket, channel, "a-3", "again", &[&page]).await;
    assert_eq!(answer(&mut alice_socket, "a-3", &cell).await, Err(ErrorCode::NotFound));
}

/// Files under a store directory, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|entry| match entry.path().is_dir() {
            true => files_under(&entry.path()),
            false => vec![entry.path()],
        })
        .collect()
}

#[tokio::test]
async fn uploads_are_bounded_and_a_refused_one_leaves_nothing_behind() {
    let store = tempfile::tempdir().unwrap();
    let max_bytes = 8 * 1024 * 1024;
    let extra_config =
        format!("[uploads]\nstore = \"{}\"\nmax_bytes = {max_bytes}\n", store.path().display());
    let cell = TestCell::start(CellOptions { extra_config, ..CellOptions::default() }).await.unwrap();
    let alice = ChatClient::register(&cell.gateway_url(0), "alice").await.unwrap();

    // Just over the limit: 413. (Far over it, the form's own limit answers 413 before the body
    // is read, which a client still sending may see as a reset connection.)
    let over = upload(&alice, vec![7u8; max_bytes as usize + 1], "big.bin", "application/octet-stream").await;
    assert_eq!(error_code(over).await, (413, "too_large".into()));
    let empty = upload(&alice, Vec::new(), "empty.txt", "text/plain").await;
    assert_eq!(error_code(empty).await, (422, "empty_file".into()));
    let no_file = Form::new().text("note", "no file here");
    let no_file = alice.request(Method::POST, "/upload").multipart(no_file).send().await.unwrap();
    assert_eq!(error_code(no_file).await, (400, "bad_request".into()));
    let not_a_form = alice.request(Method::POST, "/upload").json(&json!({"file": "x"})).send().await.unwrap();
    assert_eq!(error_code(not_a_form).await, (400, "bad_request".into()));
    assert!(files_under(store.path()).is_empty(), "refused uploads left {:?}", files_under(store.path()));

    // At the limit, larger than one part of a multipart upload: stored whole.
    let exact = png(4000, 3000, max_bytes as usize - 33);
    let stored = stored(&alice, exact.clone(), "photo.png").await;
    assert_eq!(stored["size"].as_u64(), Some(max_bytes));
    let response = download(&cell.gateway_url(0), stored["url"].as_str().unwrap(), Some(&alice)).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().as_ref() == exact.as_slice(), "the bytes come back as sent");
    assert_eq!(files_under(store.path()).len(), 1, "one file: {:?}", files_under(store.path()));
}
