//! What a scenario builds: how many users, which channel each is in, who sends (or, for
//! dm-storm, which dms each user opens); then the users registered and the channels created
//! on the cell.

use crate::cli::{Args, MAX_SOCKETS, ScenarioKind};
use crate::error::LoadgenError;
use futures::{StreamExt, TryStreamExt};
use shared::ids::ChannelId;
use shared::local::client::ChatClient;

/// Registrations and channel creations in flight at once.
const SETUP_CONCURRENCY: usize = 8;

/// The shape of a scenario: every user has one socket and is in exactly one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Per channel, the indexes of its members.
    pub channels: Vec<Vec<usize>>,
    /// Per user, the index of their channel.
    pub channel_of: Vec<usize>,
    /// Per user, whether they send.
    pub sends: Vec<bool>,
}

impl Plan {
    pub fn users(&self) -> usize {
        self.channel_of.len()
    }

    pub fn senders(&self) -> usize {
        self.sends.iter().filter(|s| **s).count()
    }
}

/// dm-storm's shape: users with one socket each, and the dms they open (none exists before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmPlan {
    pub users: usize,
    /// Per user, the users it opens a dm with, in order.
    pub peers: Vec<Vec<usize>>,
    /// Messages the opener sends into each dm.
    pub messages: usize,
}

impl DmPlan {
    /// `users` users, each opening a dm with each of the next `dms` (modulo `users`): with
    /// `2 * dms < users` no pair is opened twice.
    pub fn new(users: usize, dms: usize, messages: usize) -> Self {
        let peers = (0..users).map(|u| (1..=dms).map(|d| (u + d) % users).collect()).collect();
        Self { users, peers, messages }
    }

    pub fn dms(&self) -> usize {
        self.peers.iter().map(Vec::len).sum()
    }
}

/// What a scenario runs: users in channels made beforehand, or users opening dms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Groups(Plan),
    Dms(DmPlan),
}

/// The shape of the scenario the arguments name.
pub fn plan(args: &Args) -> Result<Shape, LoadgenError> {
    let plan = match args.scenario {
        ScenarioKind::Pairs => groups(args.clients.max(2) / 2, 2, 2),
        ScenarioKind::Rooms | ScenarioKind::ReconnectStorm | ScenarioKind::Hold => {
            let senders = if args.scenario == ScenarioKind::Hold { 0 } else { args.members.max(2) };
            groups(args.rooms.max(1), args.members.max(2), senders)
        }
        ScenarioKind::Broadcast => {
            let members = args.members.max(2);
            groups(1, members, args.senders.clamp(1, members))
        }
        ScenarioKind::DmStorm => {
            if args.clients > MAX_SOCKETS {
                return Err(LoadgenError::Args(format!("{} sockets, more than {MAX_SOCKETS}", args.clients)));
            }
            return Ok(Shape::Dms(DmPlan::new(args.clients, args.dms, args.dm_messages)));
        }
    };
    if plan.users() > MAX_SOCKETS {
        return Err(LoadgenError::Args(format!("{} sockets, more than {MAX_SOCKETS}", plan.users())));
    }
    Ok(Shape::Groups(plan))
}

/// `count` channels of `size` members each, the first `senders` of each sending.
fn groups(count: usize, size: usize, senders: usize) -> Plan {
    let users = count * size;
    Plan {
        channels: (0..count).map(|g| (g * size..(g + 1) * size).collect()).collect(),
        channel_of: (0..users).map(|u| u / size).collect(),
        sends: (0..users).map(|u| u % size < senders).collect(),
    }
}

/// What a scenario runs against: the gateways' REST base URLs, the processes to measure, and
/// (a local cell) its gateways' PIDs in the order of `bases`.
pub struct Target {
    pub bases: Vec<String>,
    pub pids: Vec<u32>,
    pub gateway_pids: Vec<u32>,
    /// `--backlog`: told when the sending ends (the workers are started then).
    pub sending_over: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// `--audit`: the stores judged after the run.
    pub audit: Option<crate::audit::Stores>,
}

/// One user of the scenario on the cell.
pub struct Member {
    pub index: usize,
    pub client: ChatClient,
    pub ws_url: String,
    /// Index of the gateway `ws_url` is on, among the run's targets.
    pub gateway: usize,
    pub channel: ChannelId,
    /// Members of the channel, this one included: each acked send is due to all of them.
    pub channel_size: usize,
    pub sends: bool,
}

/// The WebSocket URL of a gateway's REST base URL: `http://h:p` → `ws://h:p/ws`.
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = if let Some(r) = base.strip_prefix("https://") {
        format!("wss://{r}")
    } else if let Some(r) = base.strip_prefix("http://") {
        format!("ws://{r}")
    } else {
        base.to_owned()
    };
    format!("{rest}/ws")
}

/// Registers the users (round robin over `bases`, names unique to this run) and creates the
/// channels, each by its first member with the next `create_with` members named; the others
/// are added one by one after.
pub async fn build(
    plan: &Plan,
    bases: &[String],
    run_id: &str,
    create_with: usize,
) -> Result<Vec<Member>, LoadgenError> {
    let clients = register(plan.users(), bases, run_id).await?;
    let channels: Vec<ChannelId> = futures::stream::iter(plan.channels.iter().enumerate())
        .map(|(c, members)| {
            let owner = &clients[members[0]];
            let named = &members[1..members.len().min(create_with + 1)];
            let others: Vec<_> = named.iter().map(|m| clients[*m].user_id).collect();
            async move { owner.create_channel("group", &format!("lg-{run_id}-{c}"), &others).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    let registered = &clients;
    let added = plan.channels.iter().zip(&channels).flat_map(|(members, channel)| {
        let owner = &registered[members[0]];
        members.iter().skip(create_with + 1).map(move |m| (owner, *channel, registered[*m].user_id))
    });
    futures::stream::iter(added)
        .map(|(owner, channel, user)| owner.add_member(channel, user))
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    let members = clients.into_iter().enumerate().map(|(u, client)| {
        let channel = plan.channel_of[u];
        Member {
            index: u,
            ws_url: ws_url(&bases[u % bases.len()]),
            gateway: u % bases.len(),
            client,
            channel: channels[channel],
            channel_size: plan.channels[channel].len(),
            sends: plan.sends[u],
        }
    });
    Ok(members.collect())
}

/// Registers `users` users, round robin over `bases`, with names unique to this run.
pub async fn register(users: usize, bases: &[String], run_id: &str) -> Result<Vec<ChatClient>, LoadgenError> {
    let clients = futures::stream::iter(0..users)
        .map(|u| {
            let base = bases[u % bases.len()].clone();
            async move { ChatClient::register(&base, &format!("lg{run_id}-{u}")).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_put_each_user_in_one_channel() {
        let plan = groups(3, 4, 1);
        assert_eq!(plan.users(), 12);
        assert_eq!(plan.senders(), 3);
        assert_eq!(plan.channels[2], vec![8, 9, 10, 11]);
        assert_eq!(plan.channel_of[9], 2);
    }

    #[test]
    fn each_dm_is_opened_once() {
        let plan = DmPlan::new(5, 2, 1);
        assert_eq!(plan.dms(), 10);
        let mut pairs: Vec<(usize, usize)> =
            (0..5).flat_map(|u| plan.peers[u].iter().map(move |p| (u.min(*p), u.max(*p)))).collect();
        pairs.sort_unstable();
        pairs.dedup();
        assert_eq!(pairs.len(), 10);
    }

    #[test]
    fn ws_url_is_derived_from_the_rest_base() {
        assert_eq!(ws_url("http://127.0.0.1:8080/"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("https://chat.example"), "wss://chat.example/ws");
    }
}
