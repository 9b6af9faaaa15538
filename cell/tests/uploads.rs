//! Uploads through real servers and two gateways sharing one store directory: the type sniffed
//! from the bytes (never the client's word), who may read a file (its owner, members of a
//! channel where a message carries it, a signed link), attachments on messages live and in
//! history, deletes, and the bounds (size, empty files, bad forms) leaving nothing behind.

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use shared::ids::ChannelId;
use shared::local::client::{ChatClient, ChatSocket, expect};
use shared::local::s3::LocalS3;
use shared::local::{CellOptions, TestCell, eventually};
use shared::protocol::{ContentType, ErrorCode, MessageView, ServerFrame};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

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
    // The form is one part, `file`: another before or after it is refused, and nothing kept.
    let before = Form::new().text("note", "x").part("file", Part::bytes(b"abc".to_vec()).file_name("a.txt"));
    let before = alice.request(Method::POST, "/upload").multipart(before).send().await.unwrap();
    assert_eq!(error_code(before).await, (400, "bad_request".into()));
    let after = Form::new().part("file", Part::bytes(b"abc".to_vec()).file_name("a.txt")).text("note", "x");
    let after = alice.request(Method::POST, "/upload").multipart(after).send().await.unwrap();
    assert_eq!(error_code(after).await, (400, "bad_request".into()));
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

/// `/proc/net/tcp`'s state of an established connection.
const ESTABLISHED: u8 = 1;

/// A `GET` of `path` that reads the response's head and then nothing more, through a socket
/// with a small receive buffer (the server's writes stall at once, whatever the host's TCP
/// buffer sizes): the socket, and the head.
async fn stalled_get(server: SocketAddr, path: &str, token: &str) -> (tokio::net::TcpStream, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    (stream, String::from_utf8_lossy(&head).into_owned())
}

/// The kernel's state (`/proc/net/tcp`) of the server's side of the connection from `client`
/// to `server`, while it has one.
fn server_side_state(server: SocketAddr, client: SocketAddr) -> Option<u8> {
    let hex = |address: SocketAddr| match address {
        SocketAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.ip().octets()), v4.port()),
        SocketAddr::V6(_) => unreachable!("the cell listens on IPv4 loopback"),
    };
    let (server, client) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, local, remote, state, ..] if *local == server && *remote == client => {
                u8::from_str_radix(state, 16).ok()
            }
            _ => None,
        }
    })
}

#[tokio::test]
async fn a_quota_bounds_each_users_uploads_and_a_stalled_download_is_cut_off_and_closed() {
    let store = tempfile::tempdir().unwrap();
    let file_bytes = 20 * 1024 * 1024;
    let extra_config = format!(
        "[uploads]\nstore = \"{}\"\nquota_bytes_per_user = {}\nmax_downloads_in_progress = 1\nidle_timeout = 3\n",
        store.path().display(),
        file_bytes + file_bytes / 2,
    );
    let cell = TestCell::start(CellOptions { extra_config, ..CellOptions::default() }).await.unwrap();
    let base = cell.gateway_url(0);
    let alice = ChatClient::register(&base, "alice").await.unwrap();
    let bob = ChatClient::register(&base, "bob").await.unwrap();

    // The quota: a second file that would take alice past it is refused mid-way, leaving
    // nothing; bob's quota is his own.
    let first = stored(&alice, png(800, 600, file_bytes), "first.png").await;
    let second = upload(&alice, png(800, 600, file_bytes), "second.png", "image/png").await;
    assert_eq!(error_code(second).await, (413, "quota_exceeded".into()));
    assert_eq!(files_under(store.path()).len(), 1, "{:?}", files_under(store.path()));
    stored(&bob, png(10, 10, 1000), "bobs.png").await;

    // One download at a time here. A client that takes the headers and then reads nothing
    // holds the only slot …
    let gateway: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let (mut stalled, head) = stalled_get(gateway, first["url"].as_str().unwrap(), &alice.access_token).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let client = stalled.local_addr().unwrap();
    assert_eq!(server_side_state(gateway, client), Some(ESTABLISHED));
    let busy = download(&base, first["url"].as_str().unwrap(), Some(&alice)).await;
    assert_eq!(error_code(busy).await, (503, "unavailable".into()));
    // … until it has taken nothing for `idle_timeout`: then it is cut off, and the next
    // download gets the whole file.
    let whole = std::sync::Mutex::new(None);
    let (whole_ref, first_url) = (&whole, first["url"].as_str().unwrap());
    eventually(2 * WAIT, "a download after the stalled one", || async {
        let response = download(&base, first_url, Some(&alice)).await;
        match response.status().as_u16() {
            200 => *whole_ref.lock().unwrap() = Some(response.bytes().await.unwrap()),
            503 => {}
            other => panic!("download answered {other}"),
        }
        whole_ref.lock().unwrap().is_some()
    })
    .await;
    assert_eq!(whole.lock().unwrap().as_ref().map(|bytes| bytes.len()), Some(file_bytes + 33));
    // The gateway closed the stalled connection (its side left ESTABLISHED while the client
    // still read nothing); what the client then reads ends short of the file.
    eventually(WAIT, "the stalled connection closed by the gateway", || async {
        server_side_state(gateway, client) != Some(ESTABLISHED)
    })
    .await;
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest).await;
    assert!(rest.len() < file_bytes, "the stalled download ends short: {} bytes", rest.len());
    let metrics = cell.metrics(&cell.gateways[0]).await;
    assert_eq!(
        shared::local::cell::metric_value(&metrics, "chat_gateway_downloads_cut_off_total"),
        Some(1.0)
    );

    // Deleting gives the quota back.
    let path = format!("/upload/{}", first["id"].as_str().unwrap());
    assert_eq!(alice.request(Method::DELETE, &path).send().await.unwrap().status(), 204);
    stored(&alice, png(800, 600, file_bytes), "second.png").await;
}

#[tokio::test]
async fn uploads_no_message_carries_and_files_of_abandoned_uploads_are_swept() {
    let store = tempfile::tempdir().unwrap();
    let extra_config = format!(
        "[uploads]\nstore = \"{}\"\nunattached_ttl = 5\nsweep_interval = 1\n",
        store.path().display()
    );
    let cell = TestCell::start(CellOptions { extra_config, ..CellOptions::default() }).await.unwrap();
    let base = cell.gateway_url(0);
    let db = sqlx::PgPool::connect(&cell.database_url()).await.unwrap();
    let (alice, bob, channel) = cell.two_members(0, 0).await.unwrap();
    let mut socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_socket = bob.connect(&cell.ws_url(0)).await.unwrap();

    // Attached: kept.
    let attached = stored(&alice, png(10, 10, 100), "kept.png").await;
    send_with(&mut socket, channel, "m-1", "kept", &[&attached]).await;
    answer(&mut socket, "m-1", &cell).await.unwrap();
    // Attached by a gateway of the release before `attached_at`: the sweeper finds the message
    // that carries it, keeps it and marks it attached.
    let old_style = stored(&alice, png(10, 10, 200), "old.png").await;
    send_with(&mut socket, channel, "m-2", "old", &[&old_style]).await;
    answer(&mut socket, "m-2", &cell).await.unwrap();
    // Both delivered, so both stored: the sweeper can find the message that carries it.
    for _ in 0..2 {
        next_message(&mut bob_socket, &cell).await;
    }
    let old_id = uuid::Uuid::parse_str(old_style["id"].as_str().unwrap()).unwrap();
    sqlx::query("UPDATE uploads SET attached_at = NULL WHERE id = $1")
        .bind(old_id)
        .execute(&db)
        .await
        .unwrap();
    // Never attached: swept.
    let loose = stored(&alice, png(10, 10, 300), "loose.png").await;
    // A send refused for one unknown attachment marks none of the others attached.
    let unknown = json!({"id": uuid::Uuid::new_v4()});
    send_with(&mut socket, channel, "m-0", "half", &[&loose, &unknown]).await;
    assert_eq!(answer(&mut socket, "m-0", &cell).await, Err(ErrorCode::NotFound));
    // An upload whose request died mid-way, an hour ago: a file and an intent, no row.
    let abandoned = uuid::Uuid::new_v4();
    std::fs::create_dir_all(store.path().join("uploads")).unwrap();
    std::fs::write(store.path().join("uploads").join(abandoned.to_string()), b"half a file").unwrap();
    sqlx::query(
        "INSERT INTO upload_intents (id, owner_id, created_at) VALUES ($1, $2, now() - interval '1 hour')",
    )
    .bind(abandoned)
    .bind(alice.user_id)
    .execute(&db)
    .await
    .unwrap();

    let loose_url = loose["url"].as_str().unwrap().to_owned();
    let loose_file = store.path().join("uploads").join(loose["id"].as_str().unwrap());
    let abandoned_file = store.path().join("uploads").join(abandoned.to_string());
    let (db, loose_url) = (&db, &loose_url);
    eventually(2 * WAIT, "the loose upload and the abandoned file swept", || async {
        let loose_gone = download(&base, loose_url, Some(&alice)).await.status() == 404;
        let intents: i64 =
            sqlx::query_scalar("SELECT count(*) FROM upload_intents").fetch_one(db).await.unwrap();
        loose_gone && !loose_file.exists() && !abandoned_file.exists() && intents == 0
    })
    .await;
    // The loose upload was the newest: the older ones were candidates of the same sweeps.
    for kept in [&attached, &old_style] {
        let response = download(&base, kept["url"].as_str().unwrap(), Some(&bob)).await;
        assert_eq!(response.status(), 200, "{kept}");
    }
    let mut left: Vec<String> = files_under(store.path())
        .iter()
        .map(|file| file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected = vec![attached["id"].as_str().unwrap().to_owned(), old_id.to_string()];
    expected.sort();
    assert_eq!(left, expected, "only the attached files are left");
    let repaired: bool = sqlx::query_scalar("SELECT attached_at IS NOT NULL FROM uploads WHERE id = $1")
        .bind(old_id)
        .fetch_one(db)
        .await
        .unwrap();
    assert!(repaired, "the old-style upload is marked attached");
    // A swept upload can no longer be attached.
    send_with(&mut socket, channel, "m-3", "late", &[&loose]).await;
    assert_eq!(answer(&mut socket, "m-3", &cell).await, Err(ErrorCode::NotFound));
    let metrics = cell.metrics(&cell.gateways[0]).await;
    for reason in ["unattached", "abandoned"] {
        let series = format!("chat_gateway_uploads_swept_total{{reason=\"{reason}\"}}");
        assert_eq!(shared::local::cell::metric_value(&metrics, &series), Some(1.0), "{reason}");
    }
}

#[tokio::test]
async fn uploads_stream_into_an_s3_compatible_store_in_parts_and_leave_nothing_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = LocalS3::start(dir.path(), shared::local::process::random_loopback()).await.unwrap();
    s3.create_bucket("chat-uploads").await.unwrap();
    let max_bytes = 12 * 1024 * 1024;
    let extra_config = format!("[uploads]\nstore = \"s3://chat-uploads/cell-1\"\nmax_bytes = {max_bytes}\n");
    let options = CellOptions { gateways: 2, extra_config, env: s3.env(), ..CellOptions::default() };
    let cell = TestCell::start(options).await.unwrap();
    let (alice, bob, channel) = cell.two_members(0, 1).await.unwrap();
    let stored_keys = || async {
        let mut keys = s3.keys("chat-uploads", "cell-1/uploads/").await;
        keys.sort();
        keys
    };
    let key = |upload: &Value| format!("cell-1/uploads/{}", upload["id"].as_str().unwrap());

    // One put, and a multipart upload of three parts (5 + 5 + 2 MiB), under the prefix.
    let small = stored(&alice, png(64, 64, 1000), "small.png").await;
    let large_bytes = png(3000, 2000, max_bytes - 33);
    let large = stored(&alice, large_bytes.clone(), "large.png").await;
    let mut expected = vec![key(&small), key(&large)];
    expected.sort();
    assert_eq!(stored_keys().await, expected);
    // Refused after two parts went up: its multipart upload is aborted, nothing stays.
    let over = upload(&alice, vec![1u8; max_bytes + 1], "over.bin", "application/octet-stream").await;
    assert_eq!(error_code(over).await, (413, "too_large".into()));
    assert_eq!(stored_keys().await, expected);
    assert_eq!(s3.open_multipart_uploads("chat-uploads").await, 0, "no multipart upload left open");

    // Shared through a message, read whole from the other gateway.
    let mut socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_socket = bob.connect(&cell.ws_url(1)).await.unwrap();
    send_with(&mut socket, channel, "s3-1", "the big one", &[&large]).await;
    answer(&mut socket, "s3-1", &cell).await.unwrap();
    // Delivered, so stored: the message now shares the upload with bob.
    assert_eq!(next_message(&mut bob_socket, &cell).await.attachments.len(), 1);
    let response = download(&cell.gateway_url(1), large["url"].as_str().unwrap(), Some(&bob)).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().as_ref() == large_bytes.as_slice(), "the bytes as sent");

    // Deleted by its owner: gone from the bucket.
    let path = format!("/upload/{}", small["id"].as_str().unwrap());
    assert_eq!(alice.request(Method::DELETE, &path).send().await.unwrap().status(), 204);
    assert_eq!(stored_keys().await, vec![key(&large)]);
}
