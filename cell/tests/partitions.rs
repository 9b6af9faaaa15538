//! Real network faults under load: each NATS node runs in a network namespace of its own
//! (`shared::local::netns`), and its link is cut or spoiled while the server keeps running,
//! the fault Jepsen's 2025 NATS analysis found acknowledged writes lost under. The load and
//! the verdict are the fault suite's (`common`): every acked message stored exactly once, in
//! one contiguous order per channel, seen by every member once and in order.
//!
//! Needs root (`ip netns`) and `nft` (nftables); `scripts/setup.sh` installs nftables. This
//! machine's kernel has no `netem`, so there is no delay fault: a flapping link stands in.

mod common;

use common::{loaded_cell_with, verdict};
use shared::local::cell::Servers;
use shared::local::load::Load;
use shared::local::nats::NatsCluster;
use shared::local::netns::NetLab;
use shared::local::{CellOptions, TestCell};
use std::net::Ipv4Addr;
use std::time::Duration;

/// A loaded cell whose NATS nodes are in namespaces of their own.
async fn partitioned_cell() -> (TestCell, Load) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the partition tests cut links in network namespaces: run them as root"
    );
    loaded_cell_with(CellOptions { nats_in_namespaces: true, ..Default::default() }).await
}

fn nats(cell: &TestCell) -> &NatsCluster {
    let Servers::Local { nats, .. } = &cell.servers else { unreachable!("local backend") };
    nats
}

fn lab(cell: &TestCell) -> &NetLab {
    nats(cell).net.as_ref().expect("the NATS nodes run in namespaces")
}

/// The client URL of node `name`.
fn node_url(cell: &TestCell, name: &str) -> String {
    nats(cell).node(name).map(|n| n.url()).expect("a node of the cluster")
}

/// The message stream's leader as the cluster answers through node `through` only (a client
/// of the whole cluster may ask the cut-off node, which still believes it leads); `None` while
/// there is none or the question times out.
async fn leader_through(cell: &TestCell, through: &str) -> Option<String> {
    let options = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(2)));
    let client = tokio::time::timeout(Duration::from_secs(5), options.connect(node_url(cell, through)))
        .await
        .ok()?
        .ok()?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("CHAT_MESSAGES").await.ok()?;
    let info = stream.info().await.ok()?;
    info.cluster.as_ref().and_then(|c| c.leader.clone())
}

/// Waits (at most `timeout`) until node `through` names a leader other than `old`.
async fn wait_new_leader(cell: &TestCell, through: &str, old: &str, timeout: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        match leader_through(cell, through).await {
            Some(leader) if leader != old => return Some(leader),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    None
}

/// The nodes other than `node`.
fn others(node: &str) -> Vec<String> {
    ["n1", "n2", "n3"].into_iter().filter(|n| *n != node).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_stream_leader_cut_off_from_its_peers_loses_its_lead_and_nothing_acked() {
    let (cell, load) = partitioned_cell().await;
    let leader = leader_through(&cell, "n1").await.expect("the stream has a leader");
    let majority = others(&leader);
    lab(&cell).partition_from_peers(&leader).unwrap();
    let started = tokio::time::Instant::now();
    let elected = wait_new_leader(&cell, &majority[0], &leader, Duration::from_secs(30)).await;
    let took = started.elapsed();
    // The minority side keeps running and may take publishes it can never commit: held long
    // enough that its clients' sends time out and are resent to the majority.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(took)).await;
    lab(&cell).heal(&leader).unwrap();
    let elected = elected.unwrap_or_else(|| panic!("the majority elected no leader\n{}", cell.logs_tail()));
    assert!(majority.contains(&elected), "the new leader {elected} is on the majority side {majority:?}");
    println!("partition: {elected} elected in {took:?} after {leader} was cut off");
    verdict(&cell, load, &format!("stream leader {leader} cut off from its peers for 10 s")).await;
}

#[tokio::test]
async fn a_follower_whose_link_goes_down_catches_up_when_it_comes_back() {
    let (cell, load) = partitioned_cell().await;
    let leader = leader_through(&cell, "n1").await.expect("the stream has a leader");
    let follower = others(&leader).remove(0);
    lab(&cell).isolate(&follower).unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    lab(&cell).rejoin(&follower).unwrap();
    verdict(&cell, load, &format!("follower {follower}'s link down for 8 s")).await;
}

#[tokio::test]
async fn a_flapping_leader_link_beside_a_lossy_follower_loses_nothing_acked() {
    let (cell, load) = partitioned_cell().await;
    let leader = leader_through(&cell, "n1").await.expect("the stream has a leader");
    let follower = others(&leader).remove(0);
    lab(&cell).lossy(&follower, 20).unwrap();
    for _ in 0..5 {
        lab(&cell).isolate(&leader).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        lab(&cell).rejoin(&leader).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    lab(&cell).heal(&follower).unwrap();
    verdict(&cell, load, &format!("leader {leader}'s link flapping 1 s / 1 s x5, {follower} dropping 20 %"))
        .await;
}

/// The names of the client connections node `name` holds (its monitoring endpoint, `/connz`);
/// `None` while it cannot be asked.
async fn connections_on(cell: &TestCell, name: &str) -> Option<Vec<String>> {
    let node = nats(cell).node(name)?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let connz: serde_json::Value = http
        .get(format!("http://{}:{}/connz", node.host, node.http_port))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let names = connz["connections"].as_array()?.iter().filter_map(|c| c["name"].as_str().map(str::to_owned));
    Some(names.collect())
}

/// A NATS node cut off from everyone while it keeps running sends no TCP reset: the gateway
/// and worker connected to it learn it only from unanswered pings (`nats.ping_interval`), and
/// until then every send through that gateway fails. They must move to another node while the
/// cut still lasts, not minutes later.
#[tokio::test]
async fn the_processes_on_a_cut_off_nats_node_move_to_another_node_while_the_cut_lasts() {
    let (cell, load) = partitioned_cell().await;
    let ours = |names: Vec<String>| {
        let mut ours: Vec<String> =
            names.into_iter().filter(|n| n.starts_with("gateway") || n == "messages").collect();
        ours.sort();
        ours
    };
    // Each gateway and worker holds one connection: which node holds which.
    let mut held = Vec::new();
    for node in ["n1", "n2", "n3"] {
        held.push((node, ours(connections_on(&cell, node).await.expect("the node answers /connz"))));
    }
    let all = ours(held.iter().flat_map(|(_, names)| names.clone()).collect());
    assert_eq!(all.len(), 4, "2 gateways and 2 workers are connected: {held:?}");
    // Cut the node holding a gateway's connection, and the most of the cell's.
    held.sort_by_key(|(_, names)| (names.iter().any(|n| n.starts_with("gateway")), names.len()));
    let (node, moved) = held.pop().unwrap();
    assert!(moved.iter().any(|n| n.starts_with("gateway")), "some node holds a gateway: {held:?}");
    lab(&cell).isolate(node).unwrap();
    let started = tokio::time::Instant::now();
    let others = others(node);
    let mut elsewhere = Vec::new();
    // The cut lasts 45 s at most; the processes must be back on the others before it ends.
    while started.elapsed() < Duration::from_secs(45) {
        let mut names = Vec::new();
        for other in &others {
            names.extend(connections_on(&cell, other).await.unwrap_or_default());
        }
        elsewhere = ours(names);
        if elsewhere == all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed();
    lab(&cell).rejoin(node).unwrap();
    println!("{moved:?} on {node}: all on {others:?} {took:?} after the cut");
    assert_eq!(elsewhere, all, "{moved:?} not on {others:?} after {took:?} of the cut\n{}", cell.logs_tail());
    verdict(&cell, load, &format!("NATS node {node} cut off from everyone, its clients moved")).await;
}

/// What `ip` lists of one lab's namespaces and links.
fn leftovers(prefix_ns: &str, names: &[String]) -> Vec<String> {
    let list = |args: &[&str]| {
        let output = std::process::Command::new("ip").args(args).output().expect("ip runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let (namespaces, links) = (list(&["netns", "list"]), list(&["-o", "link", "show"]));
    let mut found: Vec<String> =
        namespaces.lines().filter(|l| l.starts_with(prefix_ns)).map(str::to_owned).collect();
    found.extend(
        names
            .iter()
            .filter(|n| links.contains(&format!(" {n}:")) || links.contains(&format!(" {n}@")))
            .cloned(),
    );
    found
}

#[test]
fn a_network_lab_leaves_no_namespace_or_link_behind() {
    assert!(nix::unistd::geteuid().is_root(), "network namespaces need root");
    let lab = NetLab::create(Ipv4Addr::new(127, 0, 0, 77), &["n1", "n2", "n3"]).expect("the lab is created");
    let namespace = lab.namespace("n1").unwrap().to_owned();
    let prefix = namespace.trim_end_matches("n1").to_owned();
    let links = lab.link_names();
    assert_eq!(
        leftovers(&prefix, &links).len(),
        3 + links.len(),
        "three namespaces, a bridge and three veths"
    );
    // The nodes reach each other, and a cut shows: n1 can no longer connect to n2.
    let n2 = lab.addr("n2").unwrap();
    // Port 9 has no listener: reached, it refuses; cut off, the SYN is dropped and the
    // attempt times out (exit 124).
    let reaches = |ns: &str| {
        let output = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "timeout", "3", "bash", "-c", &format!("exec 3<>/dev/tcp/{n2}/9")])
            .output()
            .expect("ip netns exec runs");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let before = reaches(&namespace);
    lab.partition_from_peers("n1").unwrap();
    let cut = reaches(&namespace);
    lab.heal("n1").unwrap();
    let healed = reaches(&namespace);
    drop(lab);
    println!("n1 -> n2:9 before the cut: {before:?}; during: {cut:?}; healed: {healed:?}");
    assert!(before.1.contains("Connection refused"), "n1 reaches n2 (refused, not dropped): {before:?}");
    assert_eq!(cut.0, Some(124), "the cut drops n1's packets to n2: {cut:?}");
    assert!(healed.1.contains("Connection refused"), "healed, n1 reaches n2 again: {healed:?}");
    assert_eq!(leftovers(&prefix, &links), Vec::<String>::new(), "the lab's drop removed everything");
}
