//! Applying a change to a stored message (edit, delete, reaction) in one transaction, in
//! stream order after the messages before it in the partition: lock the channel, check the
//! change again against what is stored now (the message is there and not deleted, the actor
//! may do it), apply it, give it the channel's next `seq` and log the frame every member is
//! sent in `channel_events`. Idempotent on `(channel_id, actor, client_msg_id)`: a change
//! applied before is returned as stored, never applied twice. A change that changes nothing
//! (a second delete, a reaction already there, someone else's message) takes no `seq` and is
//! sent to no members; it is logged without a `seq` so that its redelivery is recognised too.
//! When what its author wanted did not happen, they are told once with `change.rejected`
//! ([`Ignored::rejection`]).

use crate::persist::PersistError;
use chrono::{DateTime, SubsecRound, Utc};
use shared::events::{Change, StreamChange};
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::{
    ChangeRejection, MessageDeletedPayload, MessageUpdatedPayload, ReactionUpdatedPayload, ServerFrame,
};
use sqlx::PgPool;

/// A change that took a `seq`: the frame to announce.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedChange {
    pub channel_id: ChannelId,
    pub seq: ChannelSeq,
    /// The frame's JSON, as logged in `channel_events`.
    pub frame: String,
    /// False when an earlier delivery of the same change already applied it.
    pub fresh: bool,
}

/// Why a change changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The channel, or the message in it, is gone or was never there.
    NotFound,
    /// The message is deleted.
    Deleted,
    /// The actor may not: not a member, or not the sender (nor an owner or admin, to delete).
    NotAllowed,
    /// Nothing to do: the reaction is there already, or not there to remove.
    NoOp,
}

impl Ignored {
    /// What the author of `change` is told (`change.rejected`), if anything: nothing when what
    /// they wanted holds anyway (a reaction already there or gone, a message already deleted
    /// by the time their delete or reaction removal came).
    pub fn rejection(self, change: &Change) -> Option<ChangeRejection> {
        match self {
            Ignored::NoOp => None,
            Ignored::Deleted if matches!(change, Change::Delete | Change::ReactionRemove { .. }) => None,
            Ignored::Deleted => Some(ChangeRejection::Deleted),
            Ignored::NotFound => Some(ChangeRejection::NotFound),
            Ignored::NotAllowed => Some(ChangeRejection::Forbidden),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NotFound => "not_found",
            Ignored::Deleted => "deleted",
            Ignored::NotAllowed => "not_allowed",
            Ignored::NoOp => "no_op",
        }
    }
}

#[derive(sqlx::FromRow)]
struct Target {
    sender_id: UserId,
    deleted: bool,
}

/// Applies `change` (see the module docs). `Ok(Err(_))`: committed as ignored.
pub async fn apply_change(
    db: &PgPool,
    change: &StreamChange,
) -> Result<Result<AppliedChange, Ignored>, PersistError> {
    let mut tx = db.begin().await?;
    let channel: Option<(i64,)> = sqlx::query_as("SELECT last_seq FROM channels WHERE id = $1 FOR UPDATE")
        .bind(change.channel_id)
        .fetch_optional(&mut *tx)
        .await?;
    if channel.is_none() {
        return Ok(Err(Ignored::NotFound));
    }
    let logged: Option<(Option<i64>, Option<sqlx::types::Json<ServerFrame>>)> = sqlx::query_as(
        "SELECT seq, frame FROM channel_events WHERE channel_id = $1 AND actor_id = $2 AND client_msg_id = $3",
    )
    .bind(change.channel_id)
    .bind(change.actor)
    .bind(&change.client_msg_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((seq, frame)) = logged {
        tx.commit().await?;
        return Ok(match (seq, frame) {
            (Some(seq), Some(frame)) => Ok(AppliedChange {
                channel_id: change.channel_id,
                seq: ChannelSeq(seq),
                // Re-encoded: frames start with their `type`, which jsonb does not keep.
                frame: frame.0.to_json(),
                fresh: false,
            }),
            _ => Err(Ignored::NoOp),
        });
    }
    let now = Utc::now().trunc_subsecs(6);
    let outcome = apply(&mut tx, change, now).await?;
    let mut logged_frame = None;
    let applied = match outcome {
        Ok(effect) => {
            let (seq,): (i64,) = sqlx::query_as(
                "UPDATE channels SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
            )
            .bind(change.channel_id)
            .fetch_one(&mut *tx)
            .await?;
            let frame = effect.frame(change, ChannelSeq(seq), now);
            let json = frame.to_json();
            logged_frame = Some(sqlx::types::Json(frame));
            Ok(AppliedChange {
                channel_id: change.channel_id,
                seq: ChannelSeq(seq),
                frame: json,
                fresh: true,
            })
        }
        Err(ignored) => Err(ignored),
    };
    let seq = applied.as_ref().ok().map(|a| a.seq.0);
    sqlx::query(
        "INSERT INTO channel_events (channel_id, seq, kind, message_id, actor_id, client_msg_id, frame)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(change.channel_id)
    .bind(seq)
    .bind(change.change.kind())
    .bind(change.message_id)
    .bind(change.actor)
    .bind(&change.client_msg_id)
    .bind(logged_frame)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(applied)
}

/// What an applied change did, for its frame.
enum Effect {
    Edited { content: String, mentions: Vec<UserId>, mentions_channel: bool },
    Deleted,
    Reacted { emoji: String, added: bool, count: i64 },
}

impl Effect {
    fn frame(self, change: &StreamChange, seq: ChannelSeq, at: DateTime<Utc>) -> ServerFrame {
        let (channel_id, message_id) = (change.channel_id, change.message_id);
        match self {
            Effect::Edited { content, mentions, mentions_channel } => ServerFrame::MessageUpdated {
                payload: MessageUpdatedPayload {
                    channel_id,
                    seq,
                    message_id,
                    content,
                    edited_at: at,
                    mentions,
                    mentions_channel,
                },
            },
            Effect::Deleted => ServerFrame::MessageDeleted {
                payload: MessageDeletedPayload {
                    channel_id,
                    seq,
                    message_id,
                    deleted_by: change.actor,
                    deleted_at: at,
                },
            },
            Effect::Reacted { emoji, added, count } => ServerFrame::ReactionUpdated {
                payload: ReactionUpdatedPayload {
                    channel_id,
                    seq,
                    message_id,
                    emoji,
                    user_id: change.actor,
                    added,
                    count,
                },
            },
        }
    }
}

/// Checks and applies the change to `messages`/`reactions`, under the channel's lock.
async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    change: &StreamChange,
    now: DateTime<Utc>,
) -> Result<Result<Effect, Ignored>, sqlx::Error> {
    let target: Option<Target> = sqlx::query_as(
        "SELECT sender_id, deleted_at IS NOT NULL AS deleted FROM messages WHERE message_id = $1 AND channel_id = $2",
    )
    .bind(change.message_id)
    .bind(change.channel_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(target) = target else { return Ok(Err(Ignored::NotFound)) };
    if target.deleted {
        return Ok(Err(Ignored::Deleted));
    }
    let role: Option<(String,)> =
        sqlx::query_as("SELECT role FROM channel_members WHERE channel_id = $1 AND user_id = $2")
            .bind(change.channel_id)
            .bind(change.actor)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((role,)) = role else { return Ok(Err(Ignored::NotAllowed)) };
    let is_sender = target.sender_id == change.actor;
    match &change.change {
        Change::Edit { .. } if !is_sender => Ok(Err(Ignored::NotAllowed)),
        Change::Edit { content, mentions, mentions_channel } => {
            edit(tx, change, content, mentions, *mentions_channel, now).await.map(Ok)
        }
        Change::Delete if !is_sender && role != "owner" && role != "admin" => Ok(Err(Ignored::NotAllowed)),
        Change::Delete => delete(tx, change, now).await.map(Ok),
        Change::ReactionAdd { emoji } => react(tx, change, emoji, true).await,
        Change::ReactionRemove { emoji } => react(tx, change, emoji, false).await,
    }
}

/// Replaces a message's content (its sender's edit, checked).
async fn edit(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    change: &StreamChange,
    content: &str,
    mentions: &[UserId],
    mentions_channel: bool,
    now: DateTime<Utc>,
) -> Result<Effect, sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET content = $2, mentions = $3, mentions_channel = $4, edited_at = $5
         WHERE message_id = $1",
    )
    .bind(change.message_id)
    .bind(content)
    .bind(mentions.iter().map(|u| u.0).collect::<Vec<uuid::Uuid>>())
    .bind(mentions_channel)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(Effect::Edited { content: content.to_owned(), mentions: mentions.to_vec(), mentions_channel })
}

/// Deletes a message: its content, mentions, attachments and reactions go.
async fn delete(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    change: &StreamChange,
    now: DateTime<Utc>,
) -> Result<Effect, sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET content = '', mentions = '{}', mentions_channel = false,
             attachments = NULL, deleted_at = $2
         WHERE message_id = $1",
    )
    .bind(change.message_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM reactions WHERE message_id = $1")
        .bind(change.message_id)
        .execute(&mut **tx)
        .await?;
    Ok(Effect::Deleted)
}

/// Adds or removes the actor's reaction; a no-op when it was already so.
async fn react(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    change: &StreamChange,
    emoji: &str,
    added: bool,
) -> Result<Result<Effect, Ignored>, sqlx::Error> {
    let statement = if added {
        "INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3"
    };
    let done = sqlx::query(statement)
        .bind(change.message_id)
        .bind(emoji)
        .bind(change.actor)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(Err(Ignored::NoOp));
    }
    let (count,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM reactions WHERE message_id = $1 AND emoji = $2")
            .bind(change.message_id)
            .bind(emoji)
            .fetch_one(&mut **tx)
            .await?;
    Ok(Ok(Effect::Reacted { emoji: emoji.to_owned(), added, count }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_are_told_only_when_what_they_wanted_did_not_happen() {
        let edit = Change::Edit { content: "x".into(), mentions: Vec::new(), mentions_channel: false };
        let add = Change::ReactionAdd { emoji: "👍".into() };
        let remove = Change::ReactionRemove { emoji: "👍".into() };
        for change in [&edit, &Change::Delete, &add, &remove] {
            assert_eq!(Ignored::NoOp.rejection(change), None);
            assert_eq!(Ignored::NotFound.rejection(change), Some(ChangeRejection::NotFound));
            assert_eq!(Ignored::NotAllowed.rejection(change), Some(ChangeRejection::Forbidden));
        }
        assert_eq!(Ignored::Deleted.rejection(&edit), Some(ChangeRejection::Deleted));
        assert_eq!(Ignored::Deleted.rejection(&add), Some(ChangeRejection::Deleted));
        assert_eq!(Ignored::Deleted.rejection(&Change::Delete), None, "deleted either way");
        assert_eq!(Ignored::Deleted.rejection(&remove), None, "a delete removed the reaction");
    }
}
