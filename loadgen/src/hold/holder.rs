//! A holder process (`loadgen --hold-child SPEC`): opens its share of the sockets, each
//! synced, reports on stdout, keeps every socket open (answering the gateway's pings) until a
//! line or EOF on stdin, then closes them and reports how many were still open. One process
//! holds at most [`crate::cli::MAX_SOCKETS_PER_PROCESS`] sockets, under the fd limit.

use crate::hold::spec::{self, HolderSpec, Opened, Released};
use crate::proc_stats;
use futures::StreamExt;
use shared::local::client::{ChatSocket, ClientError, open_socket};
use shared::protocol::ServerFrame;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long one socket may take from its connect to its `sync.done`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a held socket's read waits before it looks at the release again.
const READ_SLICE: Duration = Duration::from_secs(3600);
/// How long a socket's close handshake may take at the release.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a holder from the spec at `path`; the reports go to stdout. Errors are the spec's or
/// stdout's: sockets that fail are counted, not errors.
pub async fn run(path: &Path) -> Result<(), String> {
    let spec = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let spec: HolderSpec = serde_json::from_slice(&spec).map_err(|e| format!("decoding the spec: {e}"))?;
    shared::rlimit::raise_open_files();
    let rss_before_kib = proc_stats::sample(std::process::id()).rss_kib.unwrap_or(0);
    let started = tokio::time::Instant::now();
    let results: Vec<Result<ChatSocket, String>> = futures::stream::iter(&spec.sockets)
        .map(|p| open_one(&spec, p))
        .buffer_unordered(spec.concurrency.max(1))
        .collect()
        .await;
    let mut opened = Opened { rss_before_kib, open_s: started.elapsed().as_secs_f64(), ..Opened::default() };
    let release = CancellationToken::new();
    let mut held = JoinSet::new();
    for result in results {
        match result {
            Ok(socket) => {
                opened.opened += 1;
                held.spawn(hold(socket, release.clone()));
            }
            Err(error) => {
                opened.failed += 1;
                spec::count_error(&mut opened.errors, error);
            }
        }
    }
    report(&opened).await?;
    // Told to let go by a line on stdin, or by its end (the run went away).
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await;
    release.cancel();
    let mut released = Released::default();
    while let Some(outcome) = held.join_next().await {
        match outcome {
            Ok((Ok(()), frames)) => {
                released.held += 1;
                released.frames += frames;
            }
            Ok((Err(reason), frames)) => {
                released.frames += frames;
                spec::count_error(&mut released.dropped, reason);
            }
            Err(e) => spec::count_error(&mut released.dropped, format!("task: {e}")),
        }
    }
    report(&released).await
}

/// Opens one socket from its source address and waits for the `sync.done` of its user's
/// channel; an error as a short kind, for counting.
async fn open_one(spec: &HolderSpec, placement: &crate::hold::plan::Placement) -> Result<ChatSocket, String> {
    let user = &spec.users[placement.user];
    let url = format!("{}?resume=true", spec.ws_urls[placement.gateway]);
    let open = async {
        let mut socket = open_socket(&url, &user.access_token, Some(placement.source)).await?;
        socket.sync(&[(user.channel, 0)]).await?;
        loop {
            match socket.next_frame(OPEN_TIMEOUT).await? {
                Some(ServerFrame::SyncDone { .. }) => return Ok::<_, ClientError>(Some(socket)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    };
    match tokio::time::timeout(OPEN_TIMEOUT, open).await {
        Ok(Ok(Some(socket))) => Ok(socket),
        Ok(Ok(None)) | Err(_) => Err(format!("no sync.done within {} s", OPEN_TIMEOUT.as_secs())),
        Ok(Err(error)) => Err(error_kind(&error)),
    }
}

/// Reads the socket until the release (pings are answered as they are read); then closes it.
/// `Ok` when it was open to the end, else why it ended; and the frames it got meanwhile.
async fn hold(mut socket: ChatSocket, release: CancellationToken) -> (Result<(), String>, u64) {
    let mut frames = 0;
    loop {
        tokio::select! {
            _ = release.cancelled() => break,
            read = socket.next_text(READ_SLICE) => match read {
                Ok(Some(_)) => frames += 1,
                Ok(None) => {}
                Err(error) => return (Err(error_kind(&error)), frames),
            }
        }
    }
    let close = tokio_tungstenite::tungstenite::Message::Close(None);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send_raw(close)).await;
    (Ok(()), frames)
}

/// A client error as a short kind: the close code and reason, an HTTP status, or the first
/// words of the error.
fn error_kind(error: &ClientError) -> String {
    match error {
        ClientError::Status { status: 0, body } => body.clone(),
        ClientError::Status { status, .. } => format!("http {status}"),
        ClientError::Ws(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            format!("http {}", response.status().as_u16())
        }
        other => other.to_string().chars().take(60).collect(),
    }
}

/// One report as a JSON line on stdout.
async fn report(value: &impl serde::Serialize) -> Result<(), String> {
    let mut line = serde_json::to_string(value).map_err(|e| e.to_string())?;
    line.push('\n');
    let mut stdout = tokio::io::stdout();
    stdout.write_all(line.as_bytes()).await.map_err(|e| format!("stdout: {e}"))?;
    stdout.flush().await.map_err(|e| format!("stdout: {e}"))
}
