//! The bus: named durable queues ("routes") between the API, channels and destinations.
//!
//! Routes follow Vumi's routing keys (`<channel>.outbound`, `<channel>.inbound`,
//! `<channel>.event`), plus `<channel>.outbound.realtime` for `realtime` traffic, which a
//! channel drains first (Vumi's queues take no priority arguments, so priority is a second
//! queue). Semantics every implementation keeps, and the contract suite checks:
//! - `publish` returns only once the bus holds the message (RabbitMQ: publisher confirm);
//! - a consumer gets at most `prefetch` unacknowledged deliveries at a time;
//! - a delivery that is dropped or requeued without `ack` is delivered again.

pub mod amqp;
pub mod memory;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use amqp::AmqpBus;
pub use memory::MemoryBus;

/// Why the bus refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("queue {0} is full")]
    QueueFull(String),
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// How a delivery is settled.
pub trait Acker: Send + Sync {
    /// Done with it: the bus forgets the message.
    fn ack(self: Box<Self>);
    /// Not done: the bus delivers it again (to this or another consumer).
    fn requeue(self: Box<Self>);
}

/// One message taken off a route. Dropping it unsettled requeues it.
pub struct Delivery {
    pub body: Bytes,
    /// True when the bus delivered this message before and it was not acknowledged.
    pub redelivered: bool,
    acker: Option<Box<dyn Acker>>,
}

impl Delivery {
    pub fn new(body: Bytes, redelivered: bool, acker: Box<dyn Acker>) -> Self {
        Delivery {
            body,
            redelivered,
            acker: Some(acker),
        }
    }

    pub fn ack(mut self) {
        if let Some(a) = self.acker.take() {
            a.ack()
        }
    }

    pub fn requeue(mut self) {
        if let Some(a) = self.acker.take() {
            a.requeue()
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(a) = self.acker.take() {
            a.requeue()
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("bytes", &self.body.len())
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

pub type DeliveryStream = BoxStream<'static, Delivery>;

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Puts `body` on `route`; returns once the bus has accepted it durably.
    async fn publish(&self, route: &str, body: Bytes) -> Result<(), BusError>;
    /// Deliveries from `route`, at most `prefetch` of them unsettled at once.
    async fn consume(&self, route: &str, prefetch: usize) -> Result<DeliveryStream, BusError>;
    /// Messages waiting on `route` (not counting ones delivered and unsettled).
    async fn queue_len(&self, route: &str) -> Result<u64, BusError>;
    /// Removes and returns every message waiting on `route`.
    async fn drain(&self, route: &str) -> Result<Vec<Bytes>, BusError>;
    /// Removes `route` if no message waits on it (a deleted channel's queues); answers
    /// whether it did. A queue that still holds messages stays, visible to operators.
    async fn remove_if_empty(&self, route: &str) -> Result<bool, BusError>;
    /// Short name for logs and status ("memory", "amqp").
    fn kind(&self) -> &'static str;
    /// Before a graceful exit: waits (up to `within`) until every ack and nack issued has
    /// gone to the broker, then closes the connection cleanly, so the next holder of a
    /// channel is not handed again what this node settled. The bus is not used after.
    async fn flush(&self, within: std::time::Duration) {
        let _ = within;
    }
    /// `None` while the bus works; the reason while it does not (connection lost, ...).
    fn trouble(&self) -> Option<String> {
        None
    }
}

/// The route names of a channel (or any Vumi transport name).
pub mod routes {
    pub fn outbound(name: &str) -> String {
        format!("{name}.outbound")
    }
    pub fn outbound_realtime(name: &str) -> String {
        format!("{name}.outbound.realtime")
    }
    pub fn inbound(name: &str) -> String {
        format!("{name}.inbound")
    }
    pub fn event(name: &str) -> String {
        format!("{name}.event")
    }
}
