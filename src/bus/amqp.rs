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
//!
//! `[bus] url` may name several brokers (the nodes of a cluster), separated by commas. The
//! first connect tries them in order; a reconnect after a lost connection starts with the
//! address after the one that was lost and goes round the list, so that hornbill moves to
//! another node when its own goes away. Each address is shown in logs and errors without
//! its password.
//!
//! Quorum queues: in a vhost whose default queue type is `quorum`, the queues hornbill and
//! Vumi workers declare (durable, no arguments) are quorum queues, and everything above
//! works unchanged on them but one operation, `queue.delete` with `if-empty`, which
//! RabbitMQ refuses for quorum queues with a connection error. `remove_if_empty` therefore
//! asks the queue's type first and deletes a quorum queue unconditionally right after
//! finding it empty.

use super::{Acker, Bus, BusError, Delivery, DeliveryStream};
use async_trait::async_trait;
use bytes::Bytes;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Vumi's exchange.
pub const EXCHANGE: &str = "vumi";

/// Longest one address may take to connect (TCP, AMQP handshake, channel, confirms) before
/// the next one is tried: a node that went away may leave its address unanswered rather
/// than refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The addresses `[bus] url` names: one AMQP URL, or several separated by commas. A piece
/// without `://` belongs to the address before it (a password may hold a comma).
pub fn addresses(url: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in url.split(',') {
        match out.last_mut() {
            Some(last) if !piece.contains("://") => {
                last.push(',');
                last.push_str(piece);
            }
            _ => out.push(piece.to_string()),
        }
    }
    out.into_iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect()
}

/// One address, parsed as the connection will use it; the error names the address
/// without its password.
pub fn check_address(raw: &str) -> Result<AMQPUri, String> {
    let shown = crate::redact::url(raw);
    let bad = |why: String| format!("{shown} is not an AMQP URL: {why}");
    let parsed = url::Url::parse(raw).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "amqp" | "amqps") {
        return Err(bad("the scheme must be amqp:// or amqps://".into()));
    }
    match parsed.host_str() {
        None | Some("") => return Err(bad("no host".into())),
        Some(h) if h.contains(',') => {
            return Err(bad(
                "a host holds a comma (separate addresses with commas, each starting with amqp:// or amqps://)".into(),
            ));
        }
        Some(_) => {}
    }
    // The parser's messages may quote the whole URL: never with its password.
    raw.parse::<AMQPUri>()
        .map_err(|e| bad(e.replace(raw, &shown)))
}

/// A broker to connect to, and how logs show it.
struct Address {
    uri: AMQPUri,
    shown: String,
}

struct Live {
    conn: Connection,
    publisher: Channel,
    /// Declares and queue inspections: a channel apart from the publisher's, opened again
    /// when the broker closed it (a refused operation closes the channel it came on).
    admin: Mutex<Option<Channel>>,
    generation: u64,
    /// Which of the addresses this connection went to.
    address: usize,
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
    /// The brokers, in the order `[bus] url` names them.
    addresses: Vec<Address>,
    /// The address the next (re)connect tries first.
    next: Mutex<usize>,
    /// `connection_name`, shown by `rabbitmqctl list_connections client_properties`.
    name: String,
    live: Mutex<Option<Arc<Live>>>,
    /// Set by `Bus::flush` before a graceful exit: no reconnecting after that.
    closing: std::sync::atomic::AtomicBool,
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
    /// Connects (waiting up to `wait` for a broker) and starts the watchdog on the current
    /// runtime, which then carries the connection's I/O. `url` is `[bus] url`: one address or
    /// several, separated by commas, tried in order.
    pub async fn connect(url: &str, wait: Duration) -> Result<AmqpBus, BusError> {
        AmqpBus::connect_as(url, "hornbill", wait).await
    }

    /// As `connect`, the connection named `name` on the broker.
    pub async fn connect_as(url: &str, name: &str, wait: Duration) -> Result<AmqpBus, BusError> {
        let addresses = addresses(url)
            .iter()
            .map(|raw| {
                check_address(raw).map(|uri| Address {
                    uri,
                    shown: crate::redact::url(raw),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(BusError::Unavailable)?;
        if addresses.is_empty() {
            return Err(BusError::Unavailable("no RabbitMQ address given".into()));
        }
        let bus = AmqpBus {
            inner: Arc::new(Inner {
                addresses,
                next: Mutex::new(0),
                name: name.to_string(),
                live: Mutex::new(None),
                closing: Default::default(),
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

    /// One connection and its confirming publisher channel, to `address`.
    async fn open(&self, address: &Address) -> lapin::Result<(Connection, Channel)> {
        let properties =
            ConnectionProperties::default().with_connection_name(self.inner.name.as_str().into());
        let conn = Connection::connect_uri(address.uri.clone(), properties).await?;
        let publisher = open_channel(&conn).await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok((conn, publisher))
    }

    /// Connects to the first address that answers, starting with `next` and going round
    /// the list once. With several addresses, the error names each one and why it failed.
    async fn reconnect(&self) -> Result<(), BusError> {
        let addresses = &self.inner.addresses;
        let start = *self.inner.next.lock();
        let mut failures = Vec::new();
        for k in 0..addresses.len() {
            let index = (start + k) % addresses.len();
            let address = &addresses[index];
            let why = match tokio::time::timeout(CONNECT_TIMEOUT, self.open(address)).await {
                Ok(Ok((conn, publisher))) => {
                    self.install(conn, publisher, index);
                    return Ok(());
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            };
            if addresses.len() > 1 {
                tracing::warn!(address = %address.shown, error = %why, "RabbitMQ address unreachable; trying the next one.");
                failures.push(format!("{}: {why}", address.shown));
            } else {
                failures.push(why);
            }
        }
        Err(unavailable(failures.join("; ")))
    }

    fn install(&self, conn: Connection, publisher: Channel, address: usize) {
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
            address,
        }));
        *self.inner.next.lock() = address;
        *self.inner.trouble.lock() = None;
        let shown = &self.inner.addresses[address].shown;
        tracing::info!(generation, address = %shown, "Connected to RabbitMQ at {shown}.");
    }

    /// Notices a lost connection and reconnects, backing off from 0.5 s to 5 s.
    async fn watch(&self) {
        let mut delay = Duration::from_millis(500);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if self.inner.closing.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
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

    /// Forgets the connection; the next reconnect starts with the address after its own.
    fn mark_down(&self, why: &str) {
        let lost = self.inner.live.lock().take();
        if let Some(live) = lost {
            let addresses = &self.inner.addresses;
            *self.inner.next.lock() = (live.address + 1) % addresses.len();
            let shown = &addresses[live.address].shown;
            tracing::warn!(address = %shown, "RabbitMQ {why} ({shown}); reconnecting.");
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

/// Acks and nacks issued and not yet written to the broker (`Bus::flush` waits for them).
static SETTLING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Settling;

impl Drop for Settling {
    fn drop(&mut self) {
        SETTLING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn settle(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        SETTLING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let guard = Settling;
        h.spawn(async move {
            let _guard = guard;
            fut.await
        });
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
        // Quorum queues refuse `if-empty` with a connection error, which would drop every
        // channel of the bus: the queue's type is asked first, by a declare naming
        // `x-queue-type: quorum`, which only a quorum queue accepts (a classic one refuses it,
        // closing only the channel it came on). Its answer counts the queue's messages and
        // consumers again, right before the delete, which cannot be conditional then.
        let probe = live.conn.create_channel().await.map_err(unavailable)?;
        let mut quorum = FieldTable::default();
        quorum.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        let deleted = match probe
            .queue_declare(route.into(), QueueDeclareOptions::durable(), quorum)
            .await
        {
            Ok(q) if q.message_count() > 0 || q.consumer_count() > 0 => false,
            Ok(_) => probe
                .queue_delete(route.into(), Default::default())
                .await
                .is_ok(),
            Err(_) => {
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
                deleted
            }
        };
        if probe.status().connected() {
            let _ = probe.close(200, "done".into()).await;
        }
        Ok(deleted)
    }

    async fn flush(&self, within: Duration) {
        let until = tokio::time::Instant::now() + within;
        while SETTLING.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A clean close: the broker has every frame written before it (acks included)
        // before it puts back what is still unacknowledged.
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let live = self.inner.live.lock().clone();
        if let Some(live) = live {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                live.conn.close(200, "hornbill stopping".into()),
            )
            .await;
        }
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
