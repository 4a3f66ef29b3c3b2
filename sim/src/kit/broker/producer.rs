//! The client side of publishing, embedded in a process: sends records and
//! retries every one the broker has not acknowledged within a timeout.

use super::{BrokerMsg, Payload, Rejection};
use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::Ctx;
use crate::time::SimDuration;
use crate::trace::Component;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How a producer retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// How long to wait for `Published` before sending again; positive.
    pub retry_timeout: SimDuration,
    /// Publishes awaiting acknowledgement at most; at least 1. Beyond it,
    /// [`Producer::publish`] refuses with [`Rejection::Overloaded`].
    pub unacked_max: u32,
}

impl Default for ProducerConfig {
    /// Retry after 200 ms, at most 10,000 unacknowledged.
    fn default() -> ProducerConfig {
        ProducerConfig { retry_timeout: SimDuration::from_millis(200), unacked_max: 10_000 }
    }
}

impl ProducerConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.retry_timeout == SimDuration::ZERO {
            return Err(ConfigError::new(
                "producer.retry_timeout",
                self.retry_timeout,
                "a positive duration",
            ));
        }
        if self.unacked_max == 0 {
            return Err(ConfigError::new("producer.unacked_max", 0, "at least 1"));
        }
        Ok(())
    }
}

/// What an answer from the broker meant to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProducerEvent {
    /// The record of `request` is durable.
    Acked {
        /// The request [`Producer::publish`] returned.
        request: u64,
        /// The topic.
        topic: Arc<str>,
        /// Its partition.
        partition: u32,
        /// Its offset.
        offset: u64,
    },
    /// The broker refused the record for good (an unknown topic); it is no
    /// longer retried.
    Rejected {
        /// The request.
        request: u64,
        /// Why.
        reason: Rejection,
    },
}

#[derive(Clone, Debug)]
struct Unacked<P> {
    topic: Arc<str>,
    key: u64,
    payload: P,
    sent_at: LocalTime,
    attempts: u32,
}

/// Publishes records and retries each until the broker acknowledges it, so
/// a record is lost only if the producer itself crashes first (its
/// unacknowledged records are volatile). A retry after a lost
/// *acknowledgement* appends the record twice: consumers must tolerate
/// duplicates (see `kit::retry` for idempotency keys).
#[derive(Clone, Debug)]
pub struct Producer<P> {
    config: ProducerConfig,
    broker: ProcessId,
    /// Set at the first publish of an incarnation, from its random stream.
    next_request: Option<u64>,
    unacked: BTreeMap<u64, Unacked<P>>,
    timer: Option<TimerId>,
    /// The names of the topics published to so far, each allocated once
    /// and then shared by every record and message that names it.
    topics: Vec<Arc<str>>,
}

impl<P: Payload> Producer<P> {
    /// A producer publishing to `broker`, or the first thing wrong with
    /// the configuration.
    pub fn new(config: ProducerConfig, broker: ProcessId) -> Result<Producer<P>, ConfigError> {
        config.validate()?;
        Ok(Producer {
            config,
            broker,
            next_request: None,
            unacked: BTreeMap::new(),
            timer: None,
            topics: Vec::new(),
        })
    }

    /// Publishes awaiting acknowledgement.
    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    /// Sends a record; returns its request id (echoed by the
    /// [`ProducerEvent`] that settles it), or [`Rejection::Overloaded`] if
    /// [`ProducerConfig::unacked_max`] records already wait. The first
    /// publish of an incarnation draws one number from the process's random
    /// stream (for request ids).
    pub fn publish<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        topic: impl AsRef<str>,
        key: u64,
        payload: P,
    ) -> Result<u64, Rejection> {
        if self.unacked.len() >= self.config.unacked_max as usize {
            ctx.trace(Component::Broker, "publish_refused", key, self.unacked.len() as i64);
            ctx.count("producer.refused", 1);
            return Err(Rejection::Overloaded);
        }
        // Request ids start at a random point per incarnation, so a late
        // acknowledgement meant for an earlier incarnation matches nothing.
        let request = match self.next_request {
            Some(request) => request,
            None => ctx.rng().next_u64() >> 1,
        };
        self.next_request = Some(request.wrapping_add(1));
        let topic = self.topic(topic.as_ref());
        let unacked = Unacked { topic, key, payload, sent_at: ctx.now_local(), attempts: 1 };
        self.send(ctx, request, &unacked);
        self.unacked.insert(request, unacked);
        if self.timer.is_none() {
            self.timer = Some(ctx.set_timer(self.config.retry_timeout, 0));
        }
        Ok(request)
    }

    /// Handles an answer from the broker (`Published`, `PublishRejected`);
    /// says what it settled, if anything.
    pub fn on_message<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        message: &BrokerMsg<P>,
    ) -> Option<ProducerEvent> {
        match message {
            BrokerMsg::Published { request, topic, partition, offset } => {
                self.unacked.remove(request)?;
                ctx.count("producer.acked", 1);
                Some(ProducerEvent::Acked {
                    request: *request,
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                })
            }
            // Overloaded: the retry timer sends it again.
            BrokerMsg::PublishRejected { reason: Rejection::Overloaded, .. } => None,
            BrokerMsg::PublishRejected { request, reason, .. } => {
                self.unacked.remove(request)?;
                Some(ProducerEvent::Rejected { request: *request, reason: *reason })
            }
            _ => None,
        }
    }

    /// Handles a timer; returns whether it was this producer's. Sends again
    /// every record unacknowledged for the retry timeout.
    pub fn on_timer<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        timer: TimerId,
    ) -> bool {
        if self.timer != Some(timer) {
            return false;
        }
        self.timer = None;
        let now = ctx.now_local();
        let due: Vec<u64> = self
            .unacked
            .iter()
            .filter(|(_, unacked)| unacked.sent_at.plus(self.config.retry_timeout) <= now)
            .map(|(request, _)| *request)
            .collect();
        for request in due {
            let unacked = self.unacked.get_mut(&request).expect("listed above");
            unacked.sent_at = now;
            unacked.attempts += 1;
            let attempts = unacked.attempts;
            let unacked = unacked.clone();
            ctx.trace(Component::Broker, "publish_retried", request, i64::from(attempts));
            ctx.count("producer.retried", 1);
            self.send(ctx, request, &unacked);
        }
        if !self.unacked.is_empty() {
            self.timer = Some(ctx.set_timer(self.config.retry_timeout, 0));
        }
        true
    }

    /// The shared name of `topic`, allocated at its first publish.
    fn topic(&mut self, topic: &str) -> Arc<str> {
        match self.topics.iter().find(|known| ***known == *topic) {
            Some(known) => known.clone(),
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.topics.push(name.clone());
                name
            }
        }
    }

    fn send<M: Carry<BrokerMsg<P>>>(
        &self,
        ctx: &mut Ctx<'_, M>,
        request: u64,
        unacked: &Unacked<P>,
    ) {
        let publish = BrokerMsg::Publish {
            request,
            topic: unacked.topic.clone(),
            key: unacked.key,
            payload: unacked.payload.clone(),
        };
        ctx.send(self.broker, M::wrap(publish));
    }
}
