//! A failing or panicking transport is restarted with backoff and loses nothing, while the
//! other channels keep flowing.

mod common;
use common::*;
use futures::future::LocalBoxFuture;
use hornbill::message::Level;
use hornbill::transports::{
    Registry, TransportCommand, TransportContext, TransportError, TransportFactory, TransportReport,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A channel type that panics on "boom" until healed, and acks everything else.
struct Crashy {
    delivered: Arc<Mutex<Vec<String>>>,
    healed: Arc<AtomicBool>,
    starts: Arc<AtomicUsize>,
}

impl TransportFactory for Crashy {
    fn name(&self) -> &'static str {
        "crashy"
    }
    fn transport_type(&self, _: &Value) -> String {
        "sms".into()
    }
    fn validate(&self, _: &Value) -> Result<(), String> {
        Ok(())
    }
    fn start(
        &self,
        _: &Value,
        mut ctx: TransportContext,
    ) -> LocalBoxFuture<'static, Result<(), TransportError>> {
        let delivered = self.delivered.clone();
        let healed = self.healed.clone();
        self.starts.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            ctx.status("crashy", Level::Ok, "running", "up");
            while let Some(TransportCommand::Send(msg)) = ctx.commands.recv().await {
                let content = msg.content.clone().unwrap_or_default();
                if content == "boom" && !healed.load(Ordering::SeqCst) {
                    panic!("boom in the transport");
                }
                delivered.lock().unwrap().push(content);
                ctx.report(TransportReport::Ack {
                    sent_message_id: msg.message_id.clone(),
                    message_id: msg.message_id,
                });
            }
            Ok(())
        })
    }
}

#[actix_web::test]
async fn a_panicking_transport_recovers_without_losing_messages() {
    let crashy = Arc::new(Crashy {
        delivered: Default::default(),
        healed: Default::default(),
        starts: Default::default(),
    });
    let mut registry = Registry::builtin();
    registry.register(crashy.clone());
    let mut settings = hornbill::config::Settings::default();
    settings.public.port = 0;
    settings.log.logging_path = String::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let running = hornbill::start(settings, registry, listener).await.unwrap();
    let api = Api {
        base: format!("http://{}", running.addr),
        http: reqwest::Client::new(),
    };
    actix_web::rt::spawn(running.server);

    let mock = receiver().await;
    let a = api
        .create(json!({"type": "crashy", "config": {}, "mo_url": mock.uri()}))
        .await;
    let (body, port) = telnet_body(&mock.uri());
    let b = api.create(body).await;
    let user = User::connect(port).await;

    let ev = format!("{}/ev", mock.uri());
    let boom = api
        .send(&a, json!({"to": "1", "content": "boom", "event_url": ev}))
        .await;
    api.send(&a, json!({"to": "1", "content": "after", "event_url": ev}))
        .await;
    eventually("channel A down", || async {
        let st = api.channel(&a).await["status"].clone();
        (st["components"]["transport"]["status"] == "down"
            && crashy.starts.load(Ordering::SeqCst) >= 2)
            .then_some(())
    })
    .await;
    // Channel B is not affected while A crashes and restarts.
    api.send(&b, json!({"to": user.address, "content": "still flowing"}))
        .await;
    user.wait_line("still flowing").await;
    assert!(crashy.delivered.lock().unwrap().is_empty());

    crashy.healed.store(true, Ordering::SeqCst);
    let boom_id = boom["message_id"].clone();
    wait_hit(&mock, "boom submitted", |p, b| {
        p == "/ev" && b["message_id"] == boom_id
    })
    .await;
    eventually("both delivered", || async {
        let d = crashy.delivered.lock().unwrap().clone();
        (d.len() >= 2).then_some(())
    })
    .await;
    assert_eq!(*crashy.delivered.lock().unwrap(), vec!["boom", "after"]);
    let st = api.channel(&a).await["status"].clone();
    assert_eq!(st["components"]["transport"]["status"], "ok", "{st}");
    let logs = api.logs(&a).await;
    assert!(
        logs.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .starts_with("Transport panicked: boom in the transport; restarting in")
            && e["level"] == 40),
        "{logs:?}"
    );
    running.handle.stop(false).await;
}

#[tokio::test]
async fn a_telnet_channel_whose_port_is_taken_recovers_when_it_is_freed() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (body, port) = telnet_body(&mock.uri());
    let squatter = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    let cid = api.create(body).await;
    eventually("bind failure reported", || async {
        let st = api.channel(&cid).await["status"].clone();
        (st["status"] == "down" && st["components"]["telnet"]["type"] == "bind_failed")
            .then_some(())
    })
    .await;
    drop(squatter);
    let user = User::connect(port).await;
    let addr = user.address.clone();
    wait_hit(&mock, "new session after recovery", |_, b| {
        b["from"] == json!(addr)
    })
    .await;
    let st = api.channel(&cid).await["status"].clone();
    assert_eq!(st["status"], "ok", "{st}");
}
