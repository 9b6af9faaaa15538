//! What the REST API refuses in a request's content, route by route, at the edges of each
//! rule of `docs/protocol.md` (and what it accepts just inside them): the status and the
//! stable error code of each case. Pagination is at the end.

use crate::support::cases::{Case, run_table};
use crate::support::spawn_app;
use reqwest::Method;
use serde_json::{Value, json};
use shared::local::client::ChatClient;

const REGISTER: &str = "/api/v1/auth/register";

/// A registration of `username` with a fresh email and a good password, changed by `edit`.
fn registration(name: &str, username: &str, edit: impl FnOnce(&mut Value)) -> Case {
    let mut body = json!({
        "email": format!("{}@example.test", uuid::Uuid::new_v4().simple()),
        "username": username,
        "password": "password-ok",
    });
    edit(&mut body);
    Case::new(name, Method::POST, REGISTER).json(body)
}

fn set(field: &'static str, value: Value) -> impl FnOnce(&mut Value) {
    move |body| body[field] = value
}

fn registration_cases() -> Vec<Case> {
    let unique = || format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let bad_username =
        |name, username: &str| registration(name, username, |_| {}).fails(422, "invalid_username");
    let bad =
        |name, field, value: Value, code| registration(name, &unique(), set(field, value)).fails(422, code);
    let good = |name, field, value: Value| registration(name, &unique(), set(field, value)).ok(201);
    let email_of = |local: usize| format!("{}@example.test", "a".repeat(local));
    vec![
        bad_username("username of 2 characters", "ab"),
        bad_username("username of 33 characters", &"a".repeat(33)),
        bad_username("empty username", ""),
        bad_username("username with a space", "al ice"),
        bad_username("username with a '!'", "alice!"),
        bad_username("username with a '/'", "al/ice"),
        bad_username("username with a non-ASCII letter", "álice"),
        registration("username of 3 characters", "abc", |_| {}).ok(201),
        registration("username of 32 characters", &"b".repeat(32), |_| {}).ok(201),
        registration("username of every allowed kind", "A.b_c-9", |_| {}).ok(201),
        bad("email without '@'", "email", json!("nope"), "invalid_email"),
        bad("email without a local part", "email", json!("@example.test"), "invalid_email"),
        bad("email without a dot in its domain", "email", json!("a@localhost"), "invalid_email"),
        bad("email with a space", "email", json!("a b@example.test"), "invalid_email"),
        bad("email of 255 bytes", "email", json!(email_of(242)), "invalid_email"),
        good("email of 254 bytes", "email", json!(email_of(241))),
        bad("password of 7 characters", "password", json!("1234567"), "invalid_password"),
        bad("password of 129 characters", "password", json!("p".repeat(129)), "invalid_password"),
        bad("password of 7 two-byte characters", "password", json!("é".repeat(7)), "invalid_password"),
        good("password of 8 two-byte characters", "password", json!("é".repeat(8))),
        good("password of 128 characters", "password", json!("p".repeat(128))),
        bad("empty display name", "display_name", json!(""), "invalid_display_name"),
        bad("blank display name", "display_name", json!("   "), "invalid_display_name"),
        bad("display name of 65 characters", "display_name", json!("d".repeat(65)), "invalid_display_name"),
        good("display name of 64 characters", "display_name", json!("d".repeat(64))),
        registration("a bad username and a bad email", "x", set("email", json!("nope")))
            .fails(422, "invalid_username"),
        registration("no password", &unique(), |b| {
            b.as_object_mut().map(|b| b.remove("password"));
        })
        .fails(422, "bad_request"),
        bad("an unknown field", "admin", json!(true), "bad_request"),
        bad("a number for a username", "username", json!(12345), "bad_request"),
        registration("a taken username, in another case", "ALICE", |_| {}).fails(409, "username_taken"),
        registration("a taken email, in another case", &unique(), set("email", json!("Alice@Example.TEST")))
            .fails(409, "email_taken"),
    ]
}

fn session_cases() -> Vec<Case> {
    let login = |name, body: Value| Case::new(name, Method::POST, "/api/v1/auth/login").json(body);
    let refresh = |name, body: Value| Case::new(name, Method::POST, "/api/v1/auth/refresh").json(body);
    vec![
        login("neither username nor email", json!({"password": "password-alice"}))
            .fails(422, "invalid_login"),
        login("no password", json!({"username": "alice"})).fails(422, "bad_request"),
        login("a wrong password", json!({"username": "alice", "password": "password-bob"}))
            .fails(401, "invalid_credentials"),
        login("an unknown user", json!({"username": "nobody", "password": "password-alice"}))
            .fails(401, "invalid_credentials"),
        login(
            "the email, in another case",
            json!({"email": "ALICE@example.test", "password": "password-alice"}),
        )
        .ok(200),
        refresh("a refresh token never issued", json!({"refresh_token": "0".repeat(64)}))
            .fails(401, "invalid_credentials"),
        refresh("no refresh token", json!({})).fails(422, "bad_request"),
        Case::new("logging out a token never issued", Method::POST, "/api/v1/auth/logout")
            .json(json!({"refresh_token": "garbage"}))
            .ok(204),
    ]
}

fn profile_cases(token: &str) -> Vec<Case> {
    let patch =
        |name, body: Value| Case::new(name, Method::PATCH, "/api/v1/users/me").bearer(token).json(body);
    let password = |name, body: Value| {
        Case::new(name, Method::PUT, "/api/v1/users/me/password").bearer(token).json(body)
    };
    let search = |name, query: &str| {
        Case::new(name, Method::GET, format!("/api/v1/users/search{query}")).bearer(token)
    };
    let https = |len: usize| format!("https://{}", "a".repeat(len - "https://".len()));
    vec![
        patch("empty display name", json!({"display_name": ""})).fails(422, "invalid_display_name"),
        patch("blank display name", json!({"display_name": " \t "})).fails(422, "invalid_display_name"),
        patch("display name of 65 characters", json!({"display_name": "d".repeat(65)}))
            .fails(422, "invalid_display_name"),
        patch("a javascript: avatar", json!({"avatar_url": "javascript:alert(1)"}))
            .fails(422, "invalid_avatar_url"),
        patch("an ftp avatar", json!({"avatar_url": "ftp://example.test/a.png"}))
            .fails(422, "invalid_avatar_url"),
        patch("an avatar URL of 501 characters", json!({"avatar_url": https(501)}))
            .fails(422, "invalid_avatar_url"),
        patch("an avatar URL of 500 characters", json!({"avatar_url": https(500)})).ok(200),
        patch("a null avatar", json!({"avatar_url": null})).ok(200),
        patch("nothing to change", json!({})).ok(200),
        patch("the email, which is not changed here", json!({"email": "x@example.test"}))
            .fails(422, "bad_request"),
        password(
            "a new password of 7 characters",
            json!({"current_password": "password-alice", "new_password": "1234567"}),
        )
        .fails(422, "invalid_password"),
        password(
            "a short new password and a wrong current one",
            json!({"current_password": "nope", "new_password": "1"}),
        )
        .fails(422, "invalid_password"),
        password(
            "a wrong current password",
            json!({"current_password": "password-bob", "new_password": "password-new"}),
        )
        .fails(401, "invalid_credentials"),
        search("no q", "").fails(400, "bad_request"),
        search("an empty q", "?q=").fails(422, "invalid_query"),
        search("q of 33 characters", &format!("?q={}", "a".repeat(33))).fails(422, "invalid_query"),
        search("q of 32 characters", &format!("?q={}", "a".repeat(32))).ok(200),
        search("a limit that is not a number", "?q=a&limit=ten").fails(400, "bad_request"),
        Case::new("a user id that is not a UUID", Method::GET, "/api/v1/users/42")
            .bearer(token)
            .fails(400, "bad_request"),
        Case::new(
            "a user who does not exist",
            Method::GET,
            format!("/api/v1/users/{}", uuid::Uuid::new_v4()),
        )
        .bearer(token)
        .fails(404, "not_found"),
    ]
}

fn channel_cases(token: &str, channel: &str, bob: &str) -> Vec<Case> {
    let create =
        |name, body: Value| Case::new(name, Method::POST, "/api/v1/channels").bearer(token).json(body);
    let group = |name, field: &str, value: Value| {
        let mut body = json!({"type": "group", "name": "a group"});
        body[field] = value;
        create(name, body)
    };
    let c = |suffix: &str| format!("/api/v1/channels/{channel}{suffix}");
    let get = |name, path: String| Case::new(name, Method::GET, path).bearer(token);
    let patch = |name, body: Value| Case::new(name, Method::PATCH, c("")).bearer(token).json(body);
    let add = |name, body: Value| Case::new(name, Method::POST, c("/members")).bearer(token).json(body);
    let many: Vec<String> = (0..1001).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    vec![
        create("a group without a name", json!({"type": "group"})).fails(422, "invalid_name"),
        create("a public channel without a name", json!({"type": "public"})).fails(422, "invalid_name"),
        group("an empty name", "name", json!("")).fails(422, "invalid_name"),
        group("a blank name", "name", json!("   ")).fails(422, "invalid_name"),
        group("a name with a newline", "name", json!("a\nb")).fails(422, "invalid_name"),
        group("a name of 101 characters", "name", json!("n".repeat(101))).fails(422, "invalid_name"),
        group("a name of 100 characters", "name", json!("n".repeat(100))).ok(201),
        group("an empty description", "description", json!("")).fails(422, "invalid_description"),
        group("a description with a tab", "description", json!("a\tb")).fails(422, "invalid_description"),
        group("a description of 1001 characters", "description", json!("d".repeat(1001)))
            .fails(422, "invalid_description"),
        group("a description of lines", "description", json!("one\ntwo")).ok(201),
        group("an unknown member", "member_ids", json!([uuid::Uuid::new_v4()])).fails(422, "unknown_user"),
        group("1001 initial members", "member_ids", json!(many)).fails(422, "too_many_members"),
        group("a member id that is not a UUID", "member_ids", json!(["bob"])).fails(422, "bad_request"),
        create("an unknown type", json!({"type": "room", "name": "x"})).fails(422, "bad_request"),
        create("a dm with a name", json!({"type": "dm", "name": "x", "member_ids": [bob]}))
            .fails(422, "dm_immutable"),
        create("a dm with a description", json!({"type": "dm", "description": "x", "member_ids": [bob]}))
            .fails(422, "dm_immutable"),
        create("a dm with nobody", json!({"type": "dm"})).fails(422, "invalid_members"),
        create("a dm with oneself only", json!({"type": "dm", "member_ids": []}))
            .fails(422, "invalid_members"),
        create("a dm with two others", json!({"type": "dm", "member_ids": [bob, uuid::Uuid::new_v4()]}))
            .fails(422, "invalid_members"),
        patch("renaming to an empty name", json!({"name": ""})).fails(422, "invalid_name"),
        patch("a description of 1001 characters", json!({"description": "d".repeat(1001)}))
            .fails(422, "invalid_description"),
        patch("an unknown field", json!({"type": "public"})).fails(422, "bad_request"),
        add("adding an unknown user", json!({"user_id": uuid::Uuid::new_v4()})).fails(422, "unknown_user"),
        add("adding with an unknown role", json!({"user_id": bob, "role": "king"})).fails(422, "bad_request"),
        add("adding a user id that is not a UUID", json!({"user_id": "bob"})).fails(422, "bad_request"),
        get("a channel id that is not a UUID", "/api/v1/channels/general".into()).fails(400, "bad_request"),
        get("a public filter of 101 characters", format!("/api/v1/channels/public?q={}", "q".repeat(101)))
            .fails(422, "invalid_query"),
        get("a public filter of 100 characters", format!("/api/v1/channels/public?q={}", "q".repeat(100)))
            .ok(200),
        get("a cursor that is not a UUID", "/api/v1/channels?cursor=first".into()).fails(400, "bad_request"),
    ]
}

fn history_and_search_cases(token: &str, channel: &str) -> Vec<Case> {
    let c = |suffix: &str| format!("/api/v1/channels/{channel}{suffix}");
    let get = |name, path: String| Case::new(name, Method::GET, path).bearer(token);
    let history = |name, query: &str| get(name, c(&format!("/messages{query}")));
    let search = |name, query: &str| get(name, format!("/api/v1/search{query}"));
    let message = |name, method| Case::new(name, method, c("/messages/1")).bearer(token);
    vec![
        history("limit 0", "?limit=0").fails(422, "invalid_limit"),
        history("limit 201", "?limit=201").fails(422, "invalid_limit"),
        history("a negative limit", "?limit=-1").fails(422, "invalid_limit"),
        history("limit 200", "?limit=200").ok(200),
        history("limit 1", "?limit=1").ok(200),
        history("both after_seq and before_seq: the messages between", "?after_seq=1&before_seq=5").ok(200),
        history("a limit that is not a number", "?limit=all").fails(400, "bad_request"),
        history("a negative after_seq", "?after_seq=-5").ok(200),
        search("no q", "").fails(400, "bad_request"),
        search("an empty q", "?q=").fails(422, "invalid_query"),
        search("a blank q", "?q=%20%20").fails(422, "invalid_query"),
        search("q of 201 characters", &format!("?q={}", "w".repeat(201))).fails(422, "invalid_query"),
        search("q with a control character", "?q=a%07b").fails(422, "invalid_query"),
        search("q of 200 characters", &format!("?q={}", "w".repeat(200))).ok(200),
        get("an empty q in a channel", c("/messages/search?q=")).fails(422, "invalid_query"),
        message("an empty edit", Method::PATCH).json(json!({"content": ""})).fails(422, "invalid_content"),
        message("an edit of 4001 characters", Method::PATCH)
            .json(json!({"content": "c".repeat(4001)}))
            .fails(422, "invalid_content"),
        message("an edit with a control character", Method::PATCH)
            .json(json!({"content": "a\u{7}b"}))
            .fails(422, "invalid_content"),
        message("an Idempotency-Key of 65 characters", Method::DELETE)
            .header("idempotency-key", "k".repeat(65))
            .fails(422, "invalid_idempotency_key"),
        message("an Idempotency-Key with a space", Method::DELETE)
            .header("idempotency-key", "a b")
            .fails(422, "invalid_idempotency_key"),
        get("a message id that is not a number", c("/messages/first")).fails(400, "bad_request"),
        Case::new("an emoji with a space", Method::POST, c("/messages/1/reactions/a%20b"))
            .bearer(token)
            .fails(422, "invalid_emoji"),
        Case::new(
            "an emoji of 33 characters",
            Method::POST,
            c(&format!("/messages/1/reactions/{}", "e".repeat(33))),
        )
        .bearer(token)
        .fails(422, "invalid_emoji"),
    ]
}

#[tokio::test]
async fn registration_and_sessions_refuse_what_the_rules_refuse() {
    let app = spawn_app().await;
    app.register("alice").await;
    run_table(&app, "registration", &registration_cases()).await;
    run_table(&app, "sessions", &session_cases()).await;
}

#[tokio::test]
async fn profiles_channels_history_and_search_refuse_what_the_rules_refuse() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let channel = alice.create_channel("group", "general", &[bob.user_id]).await.unwrap().to_string();
    let token = &alice.access_token;
    run_table(&app, "profiles", &profile_cases(token)).await;
    run_table(&app, "channels", &channel_cases(token, &channel, &bob.user_id.to_string())).await;
    run_table(&app, "history and search", &history_and_search_cases(token, &channel)).await;
}

/// A listing's page: how many items it has and whether it names a next page.
async fn page(user: &ChatClient, path: &str, items: &str) -> (usize, bool) {
    let page: Value = user.request(Method::GET, path).send().await.unwrap().json().await.unwrap();
    let count = page[items].as_array().map_or(usize::MAX, Vec::len);
    (count, !page["next_cursor"].is_null())
}

#[tokio::test]
async fn page_sizes_out_of_range_are_clamped_except_in_history() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let members = [bob.user_id, carol.user_id];
    let mut channel = String::new();
    for name in ["one", "two", "three"] {
        channel = alice.create_channel("public", name, &members).await.unwrap().to_string();
    }
    let c = |suffix: &str| format!("/channels/{channel}{suffix}");
    // (listing, path, items, expected (count, next page named))
    let table: Vec<(&str, String, &str, (usize, bool))> = vec![
        ("channels, limit 0 as 1", "/channels?limit=0".into(), "channels", (1, true)),
        ("channels, a negative limit as 1", "/channels?limit=-7".into(), "channels", (1, true)),
        ("channels, a limit of 2", "/channels?limit=2".into(), "channels", (2, true)),
        ("channels, a huge limit as 500", "/channels?limit=1000000".into(), "channels", (3, false)),
        ("channels, the largest i64", format!("/channels?limit={}", i64::MAX), "channels", (3, false)),
        ("public channels, limit 0 as 1", "/channels/public?limit=0".into(), "channels", (1, true)),
        ("members, limit 0 as 1", c("/members?limit=0"), "members", (1, true)),
        ("members, a huge limit", c("/members?limit=100000"), "members", (3, false)),
        ("reads, limit 0 as 1", c("/reads?limit=0"), "reads", (1, true)),
        ("users, limit 0 as 1", "/users/search?q=a&limit=0".into(), "users", (1, true)),
        ("users, a huge limit", "/users/search?q=a&limit=1000".into(), "users", (1, false)),
        ("search, limit 0 as 1", "/search?q=hello&limit=0".into(), "messages", (0, false)),
        ("history, no limit", c("/messages"), "messages", (0, false)),
    ];
    let mut failures = Vec::new();
    for (name, path, items, expected) in &table {
        let got = page(&alice, path, items).await;
        if got != *expected {
            failures.push(format!("  GET {path} [{name}]: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "pagination: {} cases failed:\n{}", failures.len(), failures.join("\n"));

    // Past an i64 the limit does not parse.
    let past = Case::new("a limit past i64", Method::GET, "/api/v1/channels?limit=9223372036854775808")
        .bearer(&alice.access_token)
        .fails(400, "bad_request");
    run_table(&app, "pagination", &[past]).await;
}

/// A NUL character (`\u0000`, valid JSON and valid in a query) in a field that reaches
/// Postgres as text, which refuses it ("invalid byte sequence for encoding UTF8: 0x00"):
/// the contract is 422 (400 for a cursor), not 500.
fn nul_cases(token: &str) -> Vec<Case> {
    let get = |name, path: &str| Case::new(name, Method::GET, path.to_owned()).bearer(token);
    let patch =
        |name, body: Value| Case::new(name, Method::PATCH, "/api/v1/users/me").bearer(token).json(body);
    let login = |name, body: Value| Case::new(name, Method::POST, "/api/v1/auth/login").json(body);
    vec![
        login("a username with a NUL", json!({"username": "a\u{0}", "password": "password-x"}))
            .fails(401, "invalid_credentials"),
        login("an email with a NUL", json!({"email": "a\u{0}@example.test", "password": "password-x"}))
            .fails(401, "invalid_credentials"),
        registration("an email with a NUL", "nul1", set("email", json!("n\u{0}@example.test")))
            .fails(422, "invalid_email"),
        registration("a display name with a NUL", "nul2", set("display_name", json!("a\u{0}b")))
            .fails(422, "invalid_display_name"),
        patch("a display name with a NUL", json!({"display_name": "a\u{0}b"}))
            .fails(422, "invalid_display_name"),
        patch("an avatar URL with a NUL", json!({"avatar_url": "https://a\u{0}b"}))
            .fails(422, "invalid_avatar_url"),
        get("a user search with a NUL", "/api/v1/users/search?q=a%00").fails(422, "invalid_query"),
        get("a user search cursor with a NUL", "/api/v1/users/search?q=a&cursor=%00")
            .fails(400, "bad_request"),
        get("a public channel filter with a NUL", "/api/v1/channels/public?q=%00")
            .fails(422, "invalid_query"),
    ]
}

#[tokio::test]
async fn a_nul_character_in_a_text_field_is_refused_not_an_internal_error() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    run_table(&app, "NUL characters", &nul_cases(&alice.access_token)).await;
}
