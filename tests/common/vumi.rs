//! A Vumi application worker as a plain AMQP client (lapin), for the tests of hornbill's
//! `amqp_queue` channels and router destinations.

use super::WAIT;
use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A Vumi application worker as a plain AMQP client: it declares `Q.inbound` and `Q.event`
/// as Vumi does (durable, no arguments), consumes them, and publishes on `Q.outbound`.
pub struct VumiWorker {
    q: String,
    conn: lapin::Connection,
    ch: lapin::Channel,
    consumers: HashMap<&'static str, lapin::Consumer>,
}

impl VumiWorker {
    pub async fn connect(url: &str, q: &str) -> VumiWorker {
        let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.exchange_declare(
            "vumi".into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut consumers = HashMap::new();
        for kind in ["inbound", "event"] {
            let name = format!("{q}.{kind}");
            ch.queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .unwrap();
            ch.queue_bind(
                name.as_str().into(),
                "vumi".into(),
                name.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
            let c = ch
                .basic_consume(
                    name.as_str().into(),
                    format!("test-{kind}").into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            consumers.insert(kind, c);
        }
        VumiWorker {
            q: q.to_string(),
            conn,
            ch,
            consumers,
        }
    }

    pub async fn next(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let consumer = self.consumers.get_mut(kind).unwrap();
        loop {
            let d = tokio::time::timeout(WAIT, consumer.next())
                .await
                .unwrap_or_else(|_| panic!("nothing on {kind}"))
                .unwrap()
                .unwrap();
            let v: Value = serde_json::from_slice(&d.data).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }

    /// Publishes a reply the way Vumi does: persistent, on the `vumi` exchange.
    pub async fn reply(&self, msg: &Value, content: &str) -> String {
        let reply_id = hornbill::message::new_id();
        let reply = json!({
            "message_version": "20110921", "message_type": "user_message", "message_id": reply_id,
            "timestamp": "2026-01-01 00:00:00.000000", "to_addr": msg["from_addr"], "from_addr": msg["to_addr"],
            "in_reply_to": msg["message_id"], "session_event": null, "content": content,
            "transport_name": self.q, "transport_type": "telnet", "transport_metadata": {}, "helper_metadata": {},
            "routing_metadata": {}, "group": null, "provider": null,
        });
        self.ch
            .basic_publish(
                "vumi".into(),
                format!("{}.outbound", self.q).as_str().into(),
                BasicPublishOptions::default(),
                reply.to_string().as_bytes(),
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        reply_id
    }

    pub async fn close(self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}
