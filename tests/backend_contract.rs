//! One contract for each backend trait, run against every implementation (the embedded ones
//! here; the RabbitMQ and Redis ones join this file with the durable backends).

mod common;

use futures::StreamExt;
use hornbill::bus::{Bus, MemoryBus};
use hornbill::message::{Event, Level, Message, StatusEvent};
use hornbill::store::{Defs, MemoryStore, RateCount, Store, Ttls};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn next(s: &mut hornbill::bus::DeliveryStream) -> Option<hornbill::bus::Delivery> {
    tokio::time::timeout(Duration::from_millis(300), s.next())
        .await
        .ok()
        .flatten()
}

/// Where a requeued delivery goes: back to its place (the embedded bus, RabbitMQ's classic
/// queues), or behind what was queued after it (RabbitMQ's quorum queues).
#[derive(PartialEq)]
enum Requeue {
    InPlace,
    Behind,
}

/// The next deliveries up to the one of `body`, the others acknowledged.
async fn until_body(s: &mut hornbill::bus::DeliveryStream, body: &[u8]) -> hornbill::bus::Delivery {
    loop {
        let d = next(s)
            .await
            .unwrap_or_else(|| panic!("{body:?} was not delivered again"));
        if &d.body[..] == body {
            return d;
        }
        d.ack();
    }
}

async fn bus_contract(bus: Arc<dyn Bus>, prefix: &str, requeue: Requeue) {
    // Each run uses its own routes (the broker outlives test runs).
    let prefix = &format!("{prefix}-{}", uuid_hex());
    let route = format!("{prefix}.outbound");
    bus.drain(&route).await.unwrap();
    for i in 0..5 {
        bus.publish(&route, format!("m{i}").into()).await.unwrap();
    }
    assert_eq!(bus.queue_len(&route).await.unwrap(), 5);
    let mut s = bus.consume(&route, 2).await.unwrap();
    let a = next(&mut s).await.unwrap();
    let b = next(&mut s).await.unwrap();
    assert_eq!((&a.body[..], &b.body[..]), (&b"m0"[..], &b"m1"[..]));
    assert!(
        next(&mut s).await.is_none(),
        "prefetch 2 must hold back the third"
    );
    a.ack();
    let c = next(&mut s).await.unwrap();
    assert_eq!(&c.body[..], b"m2");
    // Unsettled deliveries come back, marked as redelivered.
    drop(b);
    if requeue == Requeue::InPlace {
        let again = next(&mut s).await.unwrap();
        assert_eq!(&again.body[..], b"m1");
        assert!(again.redelivered);
        again.requeue();
        c.ack();
        // Requeued and acked settle concurrently: m1 comes back among the next two.
        let x = next(&mut s).await.unwrap();
        let y = next(&mut s).await.unwrap();
        assert!(
            &x.body[..] == b"m1" || &y.body[..] == b"m1",
            "m1 was not delivered again"
        );
        x.ack();
        y.ack();
    } else {
        // Behind m3 and m4, each time.
        c.ack();
        let again = until_body(&mut s, b"m1").await;
        assert!(again.redelivered);
        again.requeue();
        let last = until_body(&mut s, b"m1").await;
        assert!(last.redelivered);
        last.ack();
    }
    let rest: Vec<_> = bus.drain(&route).await.unwrap();
    // m3 is delivered (prefetch) or waiting; whatever waits is drained.
    assert!(rest.len() <= 2);
    drop(s);
    // Publishing to a route nobody consumes yet keeps the message.
    let late = format!("{prefix}.late");
    bus.drain(&late).await.unwrap();
    bus.publish(&late, "kept".into()).await.unwrap();
    let mut s = bus.consume(&late, 10).await.unwrap();
    let d = next(&mut s).await.unwrap();
    assert_eq!(&d.body[..], b"kept");
    d.ack();
    // Twenty consumers' worth of concurrent publishes all arrive, each once.
    let many = format!("{prefix}.many");
    let publishes = (0..200).map(|i| {
        let bus = bus.clone();
        let many = many.clone();
        async move { bus.publish(&many, format!("n{i}").into()).await }
    });
    for r in futures::future::join_all(publishes).await {
        r.unwrap();
    }
    let mut s = bus.consume(&many, 50).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = next(&mut s).await {
        assert!(seen.insert(d.body.clone()), "delivered twice");
        d.ack();
        if seen.len() == 200 {
            break;
        }
    }
    assert_eq!(seen.len(), 200);
    // A route is removed only when nothing waits in it (RabbitMQ: whatever the queue's type),
    // and the bus goes on working after.
    let gone = format!("{prefix}.gone");
    bus.publish(&gone, "waits".into()).await.unwrap();
    assert!(
        !bus.remove_if_empty(&gone).await.unwrap(),
        "removed with a message in it"
    );
    assert_eq!(bus.queue_len(&gone).await.unwrap(), 1);
    bus.drain(&gone).await.unwrap();
    assert!(
        bus.remove_if_empty(&gone).await.unwrap(),
        "an empty route kept"
    );
    bus.publish(&gone, "after".into()).await.unwrap();
    assert_eq!(bus.drain(&gone).await.unwrap().len(), 1);
    for route in [route, late, many, gone, format!("{prefix}.outbound")] {
        cleanup(bus.as_ref(), &route).await;
    }
}

/// Removes a test route from the broker (the bus has no delete; a plain client does it).
async fn cleanup(bus: &dyn Bus, route: &str) {
    if bus.kind() != "amqp" {
        return;
    }
    let conn =
        lapin::Connection::connect(&common::amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let _ = ch
        .queue_delete(route.into(), lapin::options::QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
}

async fn store_contract(store: Arc<dyn Store>, short_ttl: bool) {
    let cid = format!("c-{}", uuid_hex());
    store
        .save_channel(&cid, &json!({"type": "telnet", "x": [1]}))
        .await
        .unwrap();
    let all = store.load_channels().await.unwrap();
    assert!(all.iter().any(|(id, p)| *id == cid && p["x"] == json!([1])));
    store.delete_channel(&cid).await.unwrap();
    assert!(
        !store
            .load_channels()
            .await
            .unwrap()
            .iter()
            .any(|(id, _)| *id == cid)
    );

    // Routers and their destinations, in Junebug's keys.
    let rid = format!("r-{}", uuid_hex());
    let router = json!({"id": rid, "type": "from_address", "config": {"channel": cid}});
    store.save_def(Defs::Routers, &rid, &router).await.unwrap();
    for did in ["d2", "d1"] {
        let dest = json!({"id": did, "config": {"regular_expression": "^1"}});
        store
            .save_def(Defs::Destinations(&rid), did, &dest)
            .await
            .unwrap();
    }
    let routers = store.load_defs(Defs::Routers).await.unwrap();
    assert!(routers.contains(&(rid.clone(), router)));
    let dests = store.load_defs(Defs::Destinations(&rid)).await.unwrap();
    let ids: Vec<&str> = dests.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["d1", "d2"], "in id order");
    store
        .delete_def(Defs::Destinations(&rid), "d1")
        .await
        .unwrap();
    store
        .delete_def(Defs::Destinations(&rid), "d2")
        .await
        .unwrap();
    store.delete_def(Defs::Routers, &rid).await.unwrap();
    assert!(
        store
            .load_defs(Defs::Destinations(&rid))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .load_defs(Defs::Routers)
            .await
            .unwrap()
            .iter()
            .any(|(id, _)| *id == rid)
    );

    let msg = Message::new(Some("to".into()), Some("from".into()), Some("hi".into()));
    store.save_inbound(&cid, &msg).await.unwrap();
    assert_eq!(
        store.load_inbound(&cid, &msg.message_id).await.unwrap(),
        Some(msg.clone())
    );
    assert_eq!(
        store.load_inbound("other", &msg.message_id).await.unwrap(),
        None
    );

    store
        .save_outbound(&cid, "m1", &json!({"event_url": "http://x"}))
        .await
        .unwrap();
    assert_eq!(
        store.load_outbound(&cid, "m1").await.unwrap().unwrap()["event_url"],
        "http://x"
    );
    let e1 = Event::ack("m1", "s1", &cid);
    let e2 = Event::nack("m1", "no", &cid);
    store.save_event(&cid, &e1).await.unwrap();
    store.save_event(&cid, &e2).await.unwrap();
    let mut events = store.load_events(&cid, "m1").await.unwrap();
    events.sort_by_key(|a| a.timestamp);
    assert_eq!(events, vec![e1, e2]);
    assert!(store.load_events(&cid, "nope").await.unwrap().is_empty());

    let s1 = StatusEvent::new(&cid, "smpp", Level::Down, "connection_lost", "lost");
    let s2 = StatusEvent::new(&cid, "smpp", Level::Ok, "bound", "bound");
    store.save_status(&s1).await.unwrap();
    store.save_status(&s2).await.unwrap();
    assert_eq!(store.load_statuses(&cid).await.unwrap(), vec![s2]);

    let count = |label: &str, n| RateCount {
        cid: cid.clone(),
        label: label.into(),
        bucket: 7,
        n,
    };
    store
        .incr_rates(
            &[count("outbound", 2), count("inbound", 5)],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    store
        .incr_rates(&[count("outbound", 1)], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(store.rate_count(&cid, "outbound", 7).await.unwrap(), 3);
    assert_eq!(store.rate_count(&cid, "inbound", 7).await.unwrap(), 5);
    assert_eq!(store.rate_count(&cid, "outbound", 8).await.unwrap(), 0);

    // An event is saved and its message's record comes back with it.
    let e3 = Event::delivery_report("m1", hornbill::message::DeliveryStatus::Delivered, &cid);
    let record = store.record_event(&cid, &e3).await.unwrap().unwrap();
    assert_eq!(record.event_url.as_deref(), Some("http://x"));
    assert_eq!(store.load_events(&cid, "m1").await.unwrap().len(), 3);
    let orphan = Event::ack("no-record", "s", &cid);
    assert_eq!(store.record_event(&cid, &orphan).await.unwrap(), None);

    // Transport state: set, read, replaced, deleted, and gone after its TTL.
    store
        .set_state(&cid, "smsc:abc", "m1", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.get_state(&cid, "smsc:abc").await.unwrap().as_deref(),
        Some("m1")
    );
    store
        .set_state(&cid, "smsc:abc", "m2", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.get_state(&cid, "smsc:abc").await.unwrap().as_deref(),
        Some("m2")
    );
    assert_eq!(store.get_state("other", "smsc:abc").await.unwrap(), None);
    store.delete_state(&cid, "smsc:abc").await.unwrap();
    assert_eq!(store.get_state(&cid, "smsc:abc").await.unwrap(), None);

    if short_ttl {
        store
            .set_state(&cid, "brief", "x", Duration::from_secs(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            store.get_state(&cid, "brief").await.unwrap(),
            None,
            "state outlived its TTL"
        );
        // TTLs are sliding: a read renews the record.
        let m = Message::new(None, None, None);
        store.save_inbound(&cid, &m).await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            store
                .load_inbound(&cid, &m.message_id)
                .await
                .unwrap()
                .is_some()
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            store
                .load_inbound(&cid, &m.message_id)
                .await
                .unwrap()
                .is_some(),
            "the read renewed it"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            store
                .load_inbound(&cid, &m.message_id)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
    }
}

fn uuid_hex() -> String {
    hornbill::message::new_id()
}

#[tokio::test]
async fn memory_bus_keeps_the_contract() {
    bus_contract(Arc::new(MemoryBus::new(1000)), "contract", Requeue::InPlace).await;
}

#[tokio::test]
async fn memory_bus_refuses_publishes_past_its_bound() {
    let bus = MemoryBus::new(2);
    bus.publish("q", "a".into()).await.unwrap();
    bus.publish("q", "b".into()).await.unwrap();
    assert!(bus.publish("q", "c".into()).await.is_err());
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    let ttls = Ttls {
        inbound: Duration::from_secs(1),
        outbound: Duration::from_secs(60),
    };
    store_contract(Arc::new(MemoryStore::new(ttls)), true).await;
}

#[actix_web::test]
async fn amqp_bus_keeps_the_contract() {
    let bus = hornbill::bus::AmqpBus::connect(&common::amqp_url(), Duration::from_secs(10))
        .await
        .unwrap();
    bus_contract(Arc::new(bus), "contract", Requeue::InPlace).await;
}

/// In a vhost whose default queue type is quorum, the same bus on quorum queues (RabbitMQ
/// 3.10 puts a requeued message behind those queued after it).
#[actix_web::test]
async fn amqp_bus_keeps_the_contract_on_quorum_queues() {
    let vhost = common::Vhost::quorum();
    let bus = hornbill::bus::AmqpBus::connect(&vhost.url(), Duration::from_secs(10))
        .await
        .unwrap();
    bus_contract(Arc::new(bus.clone()), "contract", Requeue::Behind).await;
    let types = vhost.queue_types();
    assert!(
        !types.is_empty() && types.values().all(|t| t == "quorum"),
        "{types:?}"
    );
    assert_eq!(hornbill::bus::Bus::trouble(&bus), None);
}

#[actix_web::test]
async fn redis_store_keeps_the_contract() {
    let ttls = Ttls {
        inbound: Duration::from_secs(1),
        outbound: Duration::from_secs(60),
    };
    let prefix = format!("test-{}", uuid_hex());
    let store = hornbill::store::RedisStore::connect(
        &common::redis_url(),
        Some(&prefix),
        ttls,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    store_contract(Arc::new(store), true).await;
}

async fn webhooks_contract(store: Arc<dyn Store>) {
    let id = uuid_hex();
    store
        .save_webhook(&id, &json!({"url": "http://x", "attempt": 1}))
        .await
        .unwrap();
    let all = store.load_webhooks().await.unwrap();
    assert!(all.iter().any(|(i, j)| *i == id && j["attempt"] == 1));
    store.delete_webhook(&id).await.unwrap();
    assert!(
        !store
            .load_webhooks()
            .await
            .unwrap()
            .iter()
            .any(|(i, _)| *i == id)
    );
}

#[actix_web::test]
async fn both_stores_keep_pending_webhooks() {
    let ttls = Ttls {
        inbound: Duration::from_secs(60),
        outbound: Duration::from_secs(60),
    };
    webhooks_contract(Arc::new(MemoryStore::new(ttls))).await;
    let prefix = format!("test-{}", uuid_hex());
    let redis = hornbill::store::RedisStore::connect(
        &common::redis_url(),
        Some(&prefix),
        ttls,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    webhooks_contract(Arc::new(redis)).await;
}
