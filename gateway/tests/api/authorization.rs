//! The rights table of `docs/protocol.md` §4, case by case: every action on a channel, by its
//! owner, an admin, a member and an outsider, on a public channel, a group, a dm and a channel
//! that does not exist. A non-member gets 403 where the channel is public (visible) and 404
//! where it is not; a member acting on a message that does not exist gets 404 for the
//! message, not the channel. Actions that change the channel act on a fresh one.

use crate::support::TestApp;
use crate::support::cases::{Case, run_table};
use crate::support::spawn_app;
use reqwest::Method;
use serde_json::{Value, json};
use shared::local::client::{ChatClient, expect};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Public,
    Group,
    Dm,
    Missing,
}

#[derive(Clone, Copy, Debug)]
enum Role {
    Owner,
    Admin,
    Member,
    Outsider,
}

/// Who acts where, in the order of each action's expectations. In the dm, the member's only
/// other member is the owner (the dm has no roles: both are members).
const COLUMNS: [(Kind, Role); 11] = [
    (Kind::Public, Role::Owner),
    (Kind::Public, Role::Admin),
    (Kind::Public, Role::Member),
    (Kind::Public, Role::Outsider),
    (Kind::Group, Role::Owner),
    (Kind::Group, Role::Admin),
    (Kind::Group, Role::Member),
    (Kind::Group, Role::Outsider),
    (Kind::Dm, Role::Member),
    (Kind::Dm, Role::Outsider),
    (Kind::Missing, Role::Owner),
];

struct People {
    owner: ChatClient,
    admin: ChatClient,
    member: ChatClient,
    outsider: ChatClient,
    /// Someone in no channel, to be added.
    newcomer: ChatClient,
}

impl People {
    fn get(&self, role: Role) -> &ChatClient {
        match role {
            Role::Owner => &self.owner,
            Role::Admin => &self.admin,
            Role::Member => &self.member,
            Role::Outsider => &self.outsider,
        }
    }

    /// A channel of `kind` with its roles: the owner's, with the admin and the member; the
    /// member's dm with the owner; or the id of none.
    async fn channel(&self, kind: Kind) -> String {
        let kind_name = match kind {
            Kind::Public => "public",
            Kind::Group => "group",
            Kind::Dm => {
                let dm = json!({"type": "dm", "member_ids": [self.owner.user_id]});
                let answer = self.member.request(Method::POST, "/channels").json(&dm).send().await.unwrap();
                // Found (200) once it exists: a dm is the same dm every time.
                let status = answer.status().as_u16();
                let channel = expect(answer, status).await.unwrap();
                assert!(status == 200 || status == 201, "dm: {status} {channel}");
                return channel["id"].as_str().unwrap().to_owned();
            }
            Kind::Missing => return uuid::Uuid::new_v4().to_string(),
        };
        let id = self.owner.create_channel(kind_name, "room", &[self.member.user_id]).await.unwrap();
        let admin = json!({"user_id": self.admin.user_id, "role": "admin"});
        let added = self.owner.request(Method::POST, &format!("/channels/{id}/members")).json(&admin);
        expect(added.send().await.unwrap(), 201).await.unwrap();
        id.to_string()
    }
}

/// One action: its request by `actor` on `channel`, and its answer in each column.
struct Action {
    name: &'static str,
    /// It may change the channel: each case gets a fresh one.
    changes: bool,
    request: fn(&People, &ChatClient, &str) -> Case,
    /// Per column: a success status, or `403`, `404c` (no such channel), `404m` (no such
    /// message), `404u` (no such member), `409a` (`already_member`), `409o`
    /// (`owner_cannot_leave`), `409d` (`dm_immutable`).
    expect: [&'static str; 11],
}

fn on(method: Method, channel: &str, suffix: &str, actor: &ChatClient) -> Case {
    Case::new("", method, format!("/api/v1/channels/{channel}{suffix}")).bearer(&actor.access_token)
}

fn add(channel: &str, actor: &ChatClient, body: Value) -> Case {
    on(Method::POST, channel, "/members", actor).json(body)
}

fn remove(channel: &str, actor: &ChatClient, target: &ChatClient) -> Case {
    on(Method::DELETE, channel, &format!("/members/{}", target.user_id), actor)
}

/// What a member gets, and what a non-member gets, for reading what only members read.
const MEMBERS_READ: [&str; 11] =
    ["200", "200", "200", "403", "200", "200", "200", "404c", "200", "404c", "404c"];
/// The same for a message that does not exist.
const NO_MESSAGE: [&str; 11] =
    ["404m", "404m", "404m", "403", "404m", "404m", "404m", "404c", "404m", "404c", "404c"];

fn actions() -> Vec<Action> {
    let read = |name, request| Action { name, changes: false, request, expect: MEMBERS_READ };
    let message = |name, request| Action { name, changes: false, request, expect: NO_MESSAGE };
    let change = |name, request, expect| Action { name, changes: true, request, expect };
    vec![
        Action {
            name: "read the channel",
            changes: false,
            request: |_, a, c| on(Method::GET, c, "", a),
            expect: ["200", "200", "200", "200", "200", "200", "200", "404c", "200", "404c", "404c"],
        },
        read("list the members", |_, a, c| on(Method::GET, c, "/members", a)),
        read("read the history", |_, a, c| on(Method::GET, c, "/messages", a)),
        read("read the read positions", |_, a, c| on(Method::GET, c, "/reads", a)),
        read("search the channel", |_, a, c| on(Method::GET, c, "/messages/search?q=hello", a)),
        message("read a message", |_, a, c| on(Method::GET, c, "/messages/1", a)),
        message("edit a message", |_, a, c| {
            on(Method::PATCH, c, "/messages/1", a).json(json!({"content": "x"}))
        }),
        message("delete a message", |_, a, c| on(Method::DELETE, c, "/messages/1", a)),
        message("react to a message", |_, a, c| on(Method::POST, c, "/messages/1/reactions/%F0%9F%91%8D", a)),
        message("take a reaction back", |_, a, c| {
            on(Method::DELETE, c, "/messages/1/reactions/%F0%9F%91%8D", a)
        }),
        change(
            "rename the channel",
            |_, a, c| on(Method::PATCH, c, "", a).json(json!({"name": "renamed"})),
            ["200", "200", "403", "403", "200", "200", "403", "404c", "409d", "404c", "404c"],
        ),
        change(
            "delete the channel",
            |_, a, c| on(Method::DELETE, c, "", a),
            ["204", "403", "403", "403", "204", "403", "403", "404c", "403", "404c", "404c"],
        ),
        change(
            "join",
            |_, a, c| on(Method::POST, c, "/join", a),
            ["200", "200", "200", "201", "200", "200", "200", "404c", "200", "404c", "404c"],
        ),
        change(
            "add oneself",
            |_, a, c| add(c, a, json!({"user_id": a.user_id})),
            ["409a", "409a", "403", "201", "409a", "409a", "403", "404c", "409d", "404c", "404c"],
        ),
        change(
            "add oneself as admin",
            |_, a, c| add(c, a, json!({"user_id": a.user_id, "role": "admin"})),
            ["409a", "403", "403", "403", "409a", "403", "403", "404c", "409d", "404c", "404c"],
        ),
        change(
            "add someone as member",
            |p, a, c| add(c, a, json!({"user_id": p.newcomer.user_id})),
            ["201", "201", "403", "403", "201", "201", "403", "404c", "409d", "404c", "404c"],
        ),
        change(
            "add someone as admin",
            |p, a, c| add(c, a, json!({"user_id": p.newcomer.user_id, "role": "admin"})),
            ["201", "403", "403", "403", "201", "403", "403", "404c", "409d", "404c", "404c"],
        ),
        change(
            "add someone as owner",
            |p, a, c| add(c, a, json!({"user_id": p.newcomer.user_id, "role": "owner"})),
            ["403", "403", "403", "403", "403", "403", "403", "404c", "409d", "404c", "404c"],
        ),
        change(
            "leave",
            |_, a, c| on(Method::POST, c, "/leave", a),
            ["409o", "204", "204", "403", "409o", "204", "204", "404c", "409d", "404c", "404c"],
        ),
        change(
            "remove the member",
            |p, a, c| remove(c, a, &p.member),
            ["204", "204", "204", "403", "204", "204", "204", "404c", "409d", "404c", "404c"],
        ),
        change(
            "remove the admin",
            |p, a, c| remove(c, a, &p.admin),
            ["204", "204", "403", "403", "204", "204", "403", "404c", "409d", "404c", "404c"],
        ),
        change(
            "remove the owner",
            |p, a, c| remove(c, a, &p.owner),
            ["409o", "403", "403", "403", "409o", "403", "403", "404c", "409d", "404c", "404c"],
        ),
        change(
            "remove someone who is not a member",
            |p, a, c| remove(c, a, &p.newcomer),
            ["404u", "404u", "404u", "403", "404u", "404u", "404u", "404c", "409d", "404c", "404c"],
        ),
    ]
}

/// `case` expecting `answer` (see [`Action::expect`]).
fn expecting(case: Case, answer: &str) -> Case {
    match answer {
        "403" => case.fails(403, "forbidden"),
        "404c" => case.fails(404, "not_found").saying("channel"),
        "404m" => case.fails(404, "not_found").saying("message"),
        "404u" => case.fails(404, "not_found").saying("member"),
        "409a" => case.fails(409, "already_member"),
        "409o" => case.fails(409, "owner_cannot_leave"),
        "409d" => case.fails(409, "dm_immutable"),
        status => case.ok(status.parse().expect("a status")),
    }
}

async fn people(app: &TestApp) -> People {
    People {
        owner: app.register("olga").await,
        admin: app.register("adam").await,
        member: app.register("mia").await,
        outsider: app.register("otto").await,
        newcomer: app.register("nina").await,
    }
}

#[tokio::test]
async fn every_channel_action_by_every_role_gets_the_answer_of_the_rights_table() {
    let app = spawn_app().await;
    let people = people(&app).await;
    let mut shared = Vec::new();
    for kind in [Kind::Public, Kind::Group, Kind::Dm, Kind::Missing] {
        shared.push((kind, people.channel(kind).await));
    }
    let mut cases = Vec::new();
    for action in actions() {
        for ((kind, role), answer) in COLUMNS.iter().zip(action.expect) {
            let channel = match action.changes {
                true => people.channel(*kind).await,
                false => shared.iter().find(|(k, _)| k == kind).map(|(_, c)| c.clone()).unwrap_or_default(),
            };
            let mut case = expecting((action.request)(&people, people.get(*role), &channel), answer);
            case.name = format!("{} as the {role:?} of a {kind:?} channel", action.name).to_lowercase();
            cases.push(case);
        }
    }
    run_table(&app, "rights", &cases).await;
}

/// Stored messages of `sender` in `channel`, sent over its socket: their ids, oldest first.
async fn stored_messages(app: &TestApp, sender: &ChatClient, channel: &str, count: usize) -> Vec<String> {
    let channel_id: shared::ids::ChannelId = serde_json::from_value(json!(channel)).unwrap();
    let mut socket = sender.connect(&app.ws_url()).await.unwrap();
    for i in 0..count {
        socket.send_message(channel_id, &format!("m{i}"), &format!("message {i}")).await.unwrap();
    }
    let stored_all = || {
        let sender = sender.clone();
        async move { sender.history_after(channel_id, 0).await.is_ok_and(|h| h.len() == count) }
    };
    shared::local::eventually(
        std::time::Duration::from_secs(20),
        "the worker storing the messages",
        stored_all,
    )
    .await;
    let stored = sender.history_after(channel_id, 0).await.unwrap();
    socket.close().await;
    stored.iter().map(|m| m.message_id.to_string()).collect()
}

#[tokio::test]
async fn changes_to_stored_messages_follow_the_senders_and_the_roles_rights() {
    let app = crate::support::AppOptions { worker: true, ..Default::default() }.spawn().await;
    let people = people(&app).await;
    let channel = people.channel(Kind::Public).await;
    let joined = people.newcomer.request(Method::POST, &format!("/channels/{channel}/join"));
    expect(joined.send().await.unwrap(), 201).await.unwrap();
    let m = stored_messages(&app, &people.member, &channel, 6).await;
    let (owner, admin, sender, other, outsider) =
        (&people.owner, &people.admin, &people.member, &people.newcomer, &people.outsider);
    let edit = |actor: &ChatClient, message: &str| {
        on(Method::PATCH, &channel, &format!("/messages/{message}"), actor).json(json!({"content": "edited"}))
    };
    let delete = |actor: &ChatClient, message: &str| {
        on(Method::DELETE, &channel, &format!("/messages/{message}"), actor)
    };
    let react = |actor: &ChatClient, message: &str| {
        on(Method::POST, &channel, &format!("/messages/{message}/reactions/%F0%9F%91%8D"), actor)
    };
    let read =
        |actor: &ChatClient, message: &str| on(Method::GET, &channel, &format!("/messages/{message}"), actor);
    let table = vec![
        ("its sender reads it", read(sender, &m[0]), "200"),
        ("another member reads it", read(other, &m[0]), "200"),
        ("an outsider reads it", read(outsider, &m[0]), "403"),
        ("its sender edits it", edit(sender, &m[0]), "202"),
        ("the owner edits it", edit(owner, &m[1]), "403"),
        ("an admin edits it", edit(admin, &m[1]), "403"),
        ("another member edits it", edit(other, &m[1]), "403"),
        ("an outsider edits it", edit(outsider, &m[1]), "403"),
        ("another member deletes it", delete(other, &m[2]), "403"),
        ("an outsider deletes it", delete(outsider, &m[2]), "403"),
        ("an admin deletes it", delete(admin, &m[3]), "202"),
        ("the owner deletes it", delete(owner, &m[4]), "202"),
        ("its sender deletes it", delete(sender, &m[5]), "202"),
        ("another member reacts", react(other, &m[1]), "202"),
        ("an outsider reacts", react(outsider, &m[1]), "403"),
    ];
    let cases: Vec<Case> = table
        .into_iter()
        .map(|(name, case, answer)| {
            let mut case = expecting(case, answer);
            case.name = name.to_owned();
            case
        })
        .collect();
    run_table(&app, "message rights", &cases).await;
}
