//! The RabbitMQ bus (lapin), with Vumi's topology (`VUMI-WIRE.md` §1): a durable direct
//! exchange `vumi`, one durable queue per routing key named after it, no queue arguments,
//! persistent messages. Publishers declare and bind the queue too, so nothing published
//! before a consumer exists is dropped. Publishes wait for the broker's confirm; deliveries
//! are acknowledged explicitly, with `basic.qos` prefetch = the consumer's window.
//!
//! One connection, kept by a watchdog task that reconnects with backoff. While it is down,
//! publishes fail at once (the API answers with Junebug's AMQP error, never a 201) and
//! consumers wait; when it is back they resume by themselves. Deliveries that were not
//! acknowledged when the connection dropped are redelivered by the broker.

use super::{Acker, Bus, BusError, Delivery, DeliveryStream};
use async_trait::async_trait;
use bytes::Bytes;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Vumi's exchange.
pub const EXCHANGE: &str = "vumi";

struct Live {
    conn: Connection,
    publisher: Channel,
    /// Declares and queue inspections: a channel apart from the publisher's, opened again
    /// when the broker closed it (a refused operation closes the channel it came on).
    admin: Mutex<Option<Channel>>,
    generation: u64,
}

impl Live {
    async fn admin(&self) -> Result<Channel, BusError> {
        if let Some(ch) = self
            .admin
            .lock()
            .as_ref()
            .filter(|c| c.status().connected())
        {
            return Ok(ch.clone());
        }
        let ch = self.conn.create_channel().await.map_err(unavailable)?;
        *self.admin.lock() = Some(ch.clone());
        Ok(ch)
    }
}

struct Inner {
    url: String,
    live: Mutex<Option<Arc<Live>>>,
    /// Routes declared on the current connection.
    declared: Mutex<HashSet<String>>,
    trouble: Mutex<Option<String>>,
    generation: Mutex<u64>,
}

/// RabbitMQ, through one reconnecting connection.
#[derive(Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

async fn declare(channel: &Channel, route: &str) -> lapin::Result<lapin::Queue> {
    let queue = channel
        .queue_declare(
            route.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            route.into(),
            EXCHANGE.into(),
            route.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(queue)
}

async fn open_channel(conn: &Connection) -> lapin::Result<Channel> {
    let channel = conn.create_channel().await?;
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(channel)
}

impl AmqpBus {
    /// Connects (waiting up to `wait` for the broker) and starts the watchdog on the current
    /// runtime, which then carries the connection's I/O.
    pub async fn connect(url: &str, wait: Duration) -> Result<AmqpBus, BusError> {
        let bus = AmqpBus {
            inner: Arc::new(Inner {
                url: url.to_string(),
                live: Mutex::new(None),
                declared: Mutex::new(HashSet::new()),
                trouble: Mutex::new(Some("connecting".into())),
                generation: Mutex::new(0),
            }),
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match bus.reconnect().await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let watchdog = bus.clone();
        tokio::spawn(async move { watchdog.watch().await });
        Ok(bus)
    }

    async fn reconnect(&self) -> Result<(), BusError> {
        let conn = Connection::connect(&self.inner.url, ConnectionProperties::default())
            .await
            .map_err(unavailable)?;
        let publisher = open_channel(&conn).await.map_err(unavailable)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        let generation = {
            let mut g = self.inner.generation.lock();
            *g += 1;
            *g
        };
        self.inner.declared.lock().clear();
        *self.inner.live.lock() = Some(Arc::new(Live {
            conn,
            publisher,
            admin: Mutex::new(None),
            generation,
        }));
        *self.inner.trouble.lock() = None;
        tracing::info!(generation, "Connected to RabbitMQ.");
        Ok(())
    }

    /// Notices a lost connection and reconnects, backing off from 0.5 s to 5 s.
    async fn watch(&self) {
        let mut delay = Duration::from_millis(500);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let alive =
                self.inner.live.lock().as_ref().is_some_and(|l| {
                    l.conn.status().connected() && l.publisher.status().connected()
                });
            if alive {
                delay = Duration::from_millis(500);
                continue;
            }
            self.mark_down("connection lost");
            match self.reconnect().await {
                Ok(()) => delay = Duration::from_millis(500),
                Err(e) => {
                    tracing::warn!(error = %e, "RabbitMQ unreachable; retrying in {:.1} s.", delay.as_secs_f64());
                    *self.inner.trouble.lock() = Some(format!("RabbitMQ unreachable: {e}"));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn mark_down(&self, why: &str) {
        if self.inner.live.lock().take().is_some() {
            tracing::warn!("RabbitMQ {why}; reconnecting.");
        }
        let mut t = self.inner.trouble.lock();
        if t.is_none() {
            *t = Some(format!("RabbitMQ {why}"));
        }
    }

    fn live(&self) -> Result<Arc<Live>, BusError> {
        self.inner
            .live
            .lock()
            .clone()
            .ok_or_else(|| unavailable(self.trouble().unwrap_or_else(|| "not connected".into())))
    }

    async fn declared(&self, live: &Live, route: &str) -> Result<(), BusError> {
        if self.inner.declared.lock().contains(route) {
            return Ok(());
        }
        declare(&live.admin().await?, route)
            .await
            .map_err(unavailable)?;
        if *self.inner.generation.lock() == live.generation {
            self.inner.declared.lock().insert(route.to_string());
        }
        Ok(())
    }

    /// Waits until connected (consumers ride out outages).
    async fn wait_live(&self) -> Arc<Live> {
        loop {
            if let Ok(l) = self.live() {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

struct AmqpAcker(lapin::Acker);

fn settle(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(fut);
    }
}

impl Acker for AmqpAcker {
    fn ack(self: Box<Self>) {
        let acker = self.0;
        settle(async move {
            let _ = acker.ack(BasicAckOptions::default()).await;
        });
    }

    fn requeue(self: Box<Self>) {
        let acker = self.0;
        settle(async move {
            let _ = acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        });
    }
}

#[async_trait]
impl Bus for AmqpBus {
    async fn publish(&self, route: &str, body: Bytes) -> Result<(), BusError> {
        let live = self.live()?;
        self.declared(&live, route).await?;
        let confirm = live
            .publisher
            .basic_publish(
                EXCHANGE.into(),
                route.into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        if confirm.is_nack() {
            return Err(unavailable("the broker refused the message (nack)"));
        }
        Ok(())
    }

    async fn consume(&self, route: &str, prefetch: usize) -> Result<DeliveryStream, BusError> {
        let bus = self.clone();
        let route = route.to_string();
        let prefetch = prefetch.clamp(1, u16::MAX as usize) as u16;
        // The first consumer is set up before this returns (when connected), so a caller
        // that stops right after does not leave a declare or bind half-way on the broker
        // (a bind to a queue deleted meanwhile closes the channel, and lapin then fails the
        // whole connection). Later ones are set up by the stream itself.
        let first = match self.live() {
            Ok(live) => open_consumer(&live, &route, prefetch).await.ok(),
            Err(_) => None,
        };
        let stream = async_stream_consume(bus, route, prefetch, first);
        Ok(Box::pin(stream))
    }

    async fn queue_len(&self, route: &str) -> Result<u64, BusError> {
        let live = self.live()?;
        let queue = declare(&live.admin().await?, route)
            .await
            .map_err(unavailable)?;
        Ok(queue.message_count() as u64)
    }

    async fn drain(&self, route: &str) -> Result<Vec<Bytes>, BusError> {
        let live = self.live()?;
        let admin = live.admin().await?;
        declare(&admin, route).await.map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(got) = admin
            .basic_get(route.into(), BasicGetOptions { no_ack: true })
            .await
            .map_err(unavailable)?
        {
            out.push(Bytes::from(got.delivery.data));
        }
        Ok(out)
    }

    async fn remove_if_empty(&self, route: &str) -> Result<bool, BusError> {
        let live = self.live()?;
        self.inner.declared.lock().remove(route);
        // Looked at first, so the broker is not asked to delete a queue it would refuse to
        // (a refusal closes the channel it came on); `if_empty` still guards the moment
        // between the look and the delete, on a channel of the delete's own.
        // A consumer that is letting go still holds its unacknowledged messages: wait for it
        // (up to 3 s) so that they are counted.
        let mut waiting = declare(&live.admin().await?, route)
            .await
            .map_err(unavailable)?;
        for _ in 0..30 {
            if waiting.consumer_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            waiting = declare(&live.admin().await?, route)
                .await
                .map_err(unavailable)?;
        }
        if waiting.message_count() > 0 || waiting.consumer_count() > 0 {
            return Ok(false);
        }
        let channel = live.conn.create_channel().await.map_err(unavailable)?;
        let deleted = channel
            .queue_delete(
                route.into(),
                lapin::options::QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                },
            )
            .await
            .is_ok();
        if channel.status().connected() {
            let _ = channel.close(200, "done".into()).await;
        }
        Ok(deleted)
    }

    fn kind(&self) -> &'static str {
        "amqp"
    }

    fn trouble(&self) -> Option<String> {
        self.inner.trouble.lock().clone()
    }
}

/// Deliveries from `route`, surviving reconnects: each (re)connection opens a channel with
/// `basic.qos(prefetch)` and a consumer; when it ends, the next connection is awaited.
/// A channel with `basic.qos(prefetch)` consuming `route` (declared and bound first).
async fn open_consumer(live: &Live, route: &str, prefetch: u16) -> lapin::Result<lapin::Consumer> {
    let channel = open_channel(&live.conn).await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    declare(&channel, route).await?;
    channel
        .basic_consume(
            route.into(),
            format!("hornbill-{}", crate::message::new_id()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

fn async_stream_consume(
    bus: AmqpBus,
    route: String,
    prefetch: u16,
    first: Option<lapin::Consumer>,
) -> impl futures::Stream<Item = Delivery> {
    use futures::StreamExt;
    struct State {
        bus: AmqpBus,
        route: String,
        prefetch: u16,
        consumer: Option<lapin::Consumer>,
    }
    let state = State {
        bus,
        route,
        prefetch,
        consumer: first,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(consumer) = st.consumer.as_mut() {
                match consumer.next().await {
                    Some(Ok(d)) => {
                        let delivery = Delivery::new(
                            Bytes::from(d.data),
                            d.redelivered,
                            Box::new(AmqpAcker(d.acker)),
                        );
                        return Some((delivery, st));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(route = %st.route, error = %e, "Consumer failed; resubscribing.");
                        st.consumer = None;
                    }
                    None => st.consumer = None,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let live = st.bus.wait_live().await;
            match open_consumer(&live, &st.route, st.prefetch).await {
                Ok(c) => st.consumer = Some(c),
                Err(e) => {
                    tracing::warn!(route = %st.route, error = %e, "Cannot consume; retrying.");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
}
