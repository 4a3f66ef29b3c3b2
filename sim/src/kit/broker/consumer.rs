//! The client side of a consumer group, embedded in a process: joins,
//! heartbeats, fetches each owned partition from where the group left off,
//! and commits what the host has processed.

use super::{Assignment, BrokerMsg, Payload, Record, Rejection, SessionConfig};
use super::{group_trace_key, partition_trace_key};
use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::Ctx;
use crate::trace::Component;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

/// How a consumer behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Heartbeats; use the broker's [`super::BrokerConfig::session`]. The
    /// session timeout is also how long a fetch may go unanswered before it
    /// is sent again.
    pub session: SessionConfig,
    /// Records asked for per fetch; at least 1.
    pub max_batch: u32,
}

impl ConsumerConfig {
    /// Batches of up to 100 records.
    pub fn new(session: SessionConfig) -> ConsumerConfig {
        ConsumerConfig { session, max_batch: 100 }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_as("consumer")
    }

    pub(crate) fn validate_as(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.max_batch == 0 {
            return Err(ConfigError::new(format!("{prefix}.max_batch"), 0, "at least 1"));
        }
        self.session.validate_as(&format!("{prefix}.session"))
    }
}

/// What a message from the broker meant to the host.
#[derive(Clone, Debug, PartialEq)]
pub enum ConsumerEvent<P> {
    /// A new generation: partitions gained (each with the group's
    /// committed offset, where fetching starts) and lost. Partitions kept
    /// from the previous generation carry on where they were.
    Assigned {
        /// The generation.
        generation: u64,
        /// Partitions this member did not own before.
        added: Vec<Assignment>,
        /// Partitions it no longer owns.
        revoked: Vec<u32>,
    },
    /// Records of an owned partition, contiguous and in offset order. The
    /// partition fetches nothing more until the host calls
    /// [`Consumer::resume`] (or [`Consumer::seek`]).
    Delivered {
        /// The partition.
        partition: u32,
        /// The records.
        records: Vec<Record<P>>,
        /// The broker's high watermark when it answered.
        high_watermark: u64,
    },
    /// A fetch came back empty: the member has read everything durable in
    /// this partition. The consumer has already asked again.
    CaughtUp {
        /// The partition.
        partition: u32,
        /// The broker's high watermark.
        high_watermark: u64,
    },
    /// The broker said this member does not own the partition (any more).
    Revoked {
        /// The partition.
        partition: u32,
    },
    /// A commit is durable.
    Committed {
        /// The partition.
        partition: u32,
        /// The committed offset.
        offset: u64,
    },
    /// The broker refused the join; the consumer tries again at its next
    /// heartbeat.
    JoinRejected {
        /// Why.
        reason: Rejection,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Membership {
    Idle,
    Joining,
    Member { generation: u64 },
    Left,
}

#[derive(Clone, Copy, Debug)]
struct Cursor {
    /// The next offset to fetch.
    position: u64,
    /// The outstanding fetch, if any: its request and when it was sent.
    fetch: Option<(u64, LocalTime)>,
    /// Records were delivered and the host has not resumed yet.
    holding: bool,
    commit_wanted: Option<u64>,
    commit_acked: Option<u64>,
}

/// One member of a consumer group, embedded in a host process. The host
/// calls [`Consumer::start`] from `on_start`, passes broker messages to
/// [`Consumer::on_message`] and its timers to [`Consumer::on_timer`], and
/// after processing a delivered batch calls [`Consumer::commit`] and
/// [`Consumer::resume`]. Committing only after processing is what makes
/// delivery at-least-once: a crash in between means the records come again.
///
/// Each owned partition has at most one fetch outstanding, and an answer
/// is accepted only if it matches it (request ids start at a random point
/// per incarnation), so duplicated or late answers never reorder records.
#[derive(Clone, Debug)]
pub struct Consumer<P> {
    config: ConsumerConfig,
    broker: ProcessId,
    /// The names, shared with every message that carries them.
    group: Arc<str>,
    topic: Arc<str>,
    membership: Membership,
    cursors: BTreeMap<u32, Cursor>,
    next_request: u64,
    tick: Option<TimerId>,
    payload: PhantomData<fn() -> P>,
}

impl<P: Payload> Consumer<P> {
    /// A member of `group` reading `topic` from `broker`, or the first
    /// thing wrong with the configuration.
    pub fn new(
        config: ConsumerConfig,
        broker: ProcessId,
        group: impl Into<String>,
        topic: impl Into<String>,
    ) -> Result<Consumer<P>, ConfigError> {
        Consumer::build(config, broker, group.into(), topic.into(), "consumer")
    }

    pub(crate) fn build(
        config: ConsumerConfig,
        broker: ProcessId,
        group: String,
        topic: String,
        prefix: &str,
    ) -> Result<Consumer<P>, ConfigError> {
        config.validate_as(prefix)?;
        if group.is_empty() {
            return Err(ConfigError::new(format!("{prefix}.group"), "\"\"", "a non-empty name"));
        }
        if topic.is_empty() {
            return Err(ConfigError::new(format!("{prefix}.topic"), "\"\"", "a non-empty name"));
        }
        Ok(Consumer {
            config,
            broker,
            group: group.into(),
            topic: topic.into(),
            membership: Membership::Idle,
            cursors: BTreeMap::new(),
            next_request: 0,
            tick: None,
            payload: PhantomData,
        })
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The generation of the current assignment, if any.
    pub fn generation(&self) -> Option<u64> {
        match self.membership {
            Membership::Member { generation } => Some(generation),
            _ => None,
        }
    }

    /// The partitions this member owns, as far as it knows.
    pub fn partitions(&self) -> Vec<u32> {
        self.cursors.keys().copied().collect()
    }

    /// The next offset this member will fetch from a partition it owns.
    pub fn position(&self, partition: u32) -> Option<u64> {
        self.cursors.get(&partition).map(|cursor| cursor.position)
    }

    /// The latest commit the broker acknowledged for a partition.
    pub fn committed(&self, partition: u32) -> Option<u64> {
        self.cursors.get(&partition).and_then(|cursor| cursor.commit_acked)
    }

    /// Joins the group and starts heartbeats. Call from `on_start`. Draws
    /// one number from the process's random stream (for request ids).
    pub fn start<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        // Request ids start at a random point, so an answer meant for an
        // earlier incarnation of this process cannot match a new request.
        self.next_request = ctx.rng().next_u64() >> 1;
        self.membership = Membership::Joining;
        self.send_join(ctx);
        self.tick = Some(ctx.set_timer(self.config.session.heartbeat_interval, 0));
    }

    /// Leaves the group at once; the consumer stops.
    pub fn leave<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        self.membership = Membership::Left;
        self.cursors.clear();
        if let Some(tick) = self.tick.take() {
            ctx.cancel_timer(tick);
        }
        let leave = BrokerMsg::LeaveGroup { group: self.group.clone(), topic: self.topic.clone() };
        ctx.send(self.broker, M::wrap(leave));
    }

    /// Handles a timer; returns whether it was this consumer's.
    pub fn on_timer<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        timer: TimerId,
    ) -> bool {
        if self.tick != Some(timer) {
            return false;
        }
        self.tick = Some(ctx.set_timer(self.config.session.heartbeat_interval, 0));
        match self.membership {
            Membership::Joining => self.send_join(ctx),
            Membership::Member { generation } => {
                let heartbeat = BrokerMsg::Heartbeat {
                    group: self.group.clone(),
                    topic: self.topic.clone(),
                    generation,
                };
                ctx.send(self.broker, M::wrap(heartbeat));
            }
            Membership::Idle | Membership::Left => return true,
        }
        let now = ctx.now_local();
        let timeout = self.config.session.session_timeout;
        let partitions: Vec<u32> = self.cursors.keys().copied().collect();
        for partition in partitions {
            let cursor = self.cursors[&partition];
            let lost = cursor.fetch.is_some_and(|(_, sent)| sent.plus(timeout) <= now);
            if !cursor.holding && (cursor.fetch.is_none() || lost) {
                if lost {
                    let key = partition_trace_key(&self.topic, partition);
                    ctx.trace(Component::Broker, "fetch_retried", key, cursor.position as i64);
                    ctx.count("consumer.fetch_retried", 1);
                }
                self.send_fetch(ctx, partition);
            }
            if let Some(offset) = cursor.commit_wanted
                && cursor.commit_acked != Some(offset)
            {
                self.send_commit(ctx, partition, offset);
            }
        }
        true
    }

    /// Whether a broker message is for this consumer (its group and topic).
    pub fn handles(&self, message: &BrokerMsg<P>) -> bool {
        match message {
            BrokerMsg::Assigned { group, topic, .. }
            | BrokerMsg::JoinRejected { group, topic, .. }
            | BrokerMsg::Fetched { group, topic, .. }
            | BrokerMsg::FetchRejected { group, topic, .. }
            | BrokerMsg::Committed { group, topic, .. }
            | BrokerMsg::CommitRejected { group, topic, .. } => {
                *group == self.group && *topic == self.topic
            }
            _ => false,
        }
    }

    /// Handles a message from the broker and says what it meant, if
    /// anything (stale, duplicated and foreign messages mean nothing).
    pub fn on_message<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        message: BrokerMsg<P>,
    ) -> Option<ConsumerEvent<P>> {
        if !self.handles(&message) || matches!(self.membership, Membership::Idle | Membership::Left)
        {
            return None;
        }
        match message {
            BrokerMsg::Assigned { generation, partitions, .. } => {
                self.assigned(ctx, generation, partitions)
            }
            BrokerMsg::JoinRejected { reason, .. } => Some(ConsumerEvent::JoinRejected { reason }),
            BrokerMsg::Fetched {
                request, partition, records, next_offset, high_watermark, ..
            } => {
                let cursor = self.cursors.get_mut(&partition)?;
                if cursor.fetch.map(|(outstanding, _)| outstanding) != Some(request) {
                    ctx.count("consumer.stale_answers", 1);
                    return None;
                }
                cursor.fetch = None;
                cursor.position = next_offset;
                if records.is_empty() {
                    // Long polling: ask again straight away.
                    self.send_fetch(ctx, partition);
                    return Some(ConsumerEvent::CaughtUp { partition, high_watermark });
                }
                cursor.holding = true;
                Some(ConsumerEvent::Delivered { partition, records, high_watermark })
            }
            BrokerMsg::FetchRejected { request, partition, generation, .. } => {
                let mine = self.generation().unwrap_or(0);
                let cursor = self.cursors.get_mut(&partition)?;
                if cursor.fetch.map(|(outstanding, _)| outstanding) != Some(request) {
                    return None;
                }
                if generation < mine {
                    // Turned down under an older generation than the
                    // assignment this member has since received: ask again.
                    cursor.fetch = None;
                    self.send_fetch(ctx, partition);
                    return None;
                }
                // The broker knows better: another member owns it now, and
                // the new assignment is on its way (or the next heartbeat,
                // which carries an old generation, makes the broker resend it).
                self.cursors.remove(&partition);
                Some(ConsumerEvent::Revoked { partition })
            }
            BrokerMsg::Committed { partition, offset, .. } => {
                let cursor = self.cursors.get_mut(&partition)?;
                // The latest answer wins; if a late one undoes a newer
                // commit, the heartbeat sends the wanted one again.
                cursor.commit_acked = Some(offset);
                Some(ConsumerEvent::Committed { partition, offset })
            }
            // Retried at the next heartbeat with the current generation.
            BrokerMsg::CommitRejected { .. } => None,
            _ => None,
        }
    }

    fn assigned<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        generation: u64,
        partitions: Vec<Assignment>,
    ) -> Option<ConsumerEvent<P>> {
        if self.generation().is_some_and(|current| generation <= current) {
            return None;
        }
        self.membership = Membership::Member { generation };
        let revoked: Vec<u32> = self
            .cursors
            .keys()
            .copied()
            .filter(|owned| partitions.iter().all(|assignment| assignment.partition != *owned))
            .collect();
        for partition in &revoked {
            self.cursors.remove(partition);
        }
        let added: Vec<Assignment> = partitions
            .into_iter()
            .filter(|assignment| !self.cursors.contains_key(&assignment.partition))
            .collect();
        for assignment in &added {
            let cursor = Cursor {
                position: assignment.committed_offset,
                fetch: None,
                holding: false,
                commit_wanted: None,
                commit_acked: Some(assignment.committed_offset),
            };
            self.cursors.insert(assignment.partition, cursor);
            self.send_fetch(ctx, assignment.partition);
        }
        let key = group_trace_key(&self.group, &self.topic);
        ctx.trace(Component::Broker, "assigned", key, self.cursors.len() as i64);
        ctx.count("consumer.assigned", 1);
        Some(ConsumerEvent::Assigned { generation, added, revoked })
    }

    /// Fetches the next batch of a partition after a delivery was
    /// processed.
    pub fn resume<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>, partition: u32) {
        if let Some(cursor) = self.cursors.get_mut(&partition)
            && cursor.holding
        {
            cursor.holding = false;
            self.send_fetch(ctx, partition);
        }
    }

    /// Reads a partition from `offset` on instead (an answer to an earlier
    /// fetch is then ignored).
    pub fn seek<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        partition: u32,
        offset: u64,
    ) {
        if let Some(cursor) = self.cursors.get_mut(&partition) {
            cursor.position = offset;
            cursor.holding = false;
            self.send_fetch(ctx, partition);
        }
    }

    /// Commits `offset` (the next record to read) for an owned partition;
    /// resent at heartbeats until acknowledged.
    pub fn commit<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        partition: u32,
        offset: u64,
    ) {
        if self.generation().is_none() {
            return;
        }
        if let Some(cursor) = self.cursors.get_mut(&partition) {
            cursor.commit_wanted = Some(offset);
            self.send_commit(ctx, partition, offset);
        }
    }

    fn send_join<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        let join = BrokerMsg::JoinGroup { group: self.group.clone(), topic: self.topic.clone() };
        ctx.send(self.broker, M::wrap(join));
    }

    fn send_fetch<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>, partition: u32) {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        let now = ctx.now_local();
        let cursor = self.cursors.get_mut(&partition).expect("fetching an owned partition");
        cursor.fetch = Some((request, now));
        let fetch = BrokerMsg::Fetch {
            request,
            group: self.group.clone(),
            topic: self.topic.clone(),
            partition,
            from_offset: cursor.position,
            max: self.config.max_batch,
        };
        ctx.send(self.broker, M::wrap(fetch));
    }

    fn send_commit<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        partition: u32,
        offset: u64,
    ) {
        let Some(generation) = self.generation() else { return };
        let commit = BrokerMsg::Commit {
            group: self.group.clone(),
            topic: self.topic.clone(),
            partition,
            generation,
            offset,
        };
        ctx.send(self.broker, M::wrap(commit));
    }
}
