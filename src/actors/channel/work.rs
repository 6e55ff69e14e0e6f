//! The channel's two workers beside its actor: events handed on in order per message, and
//! inbound messages and statuses stored and published one after another.

use super::*;

/// Hands events to the channel's forwarder, up to 64 at once but one at a time per message
/// (so its webhooks are queued in the order the events happened), then settles the outbound
/// delivery each one answers. In process, not over the bus: the forwarder answers once the
/// event is stored and its webhook saved (the same guarantee as a confirmed publish, at half
/// the broker's work per message). Without a forwarder (the channel is stopping) the event
/// goes to `<cid>.event` for the next one.
pub(super) async fn publish_events(
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    rx: mpsc::UnboundedReceiver<EventJob>,
) {
    let route = routes::event(&shared.id);
    let lanes = crate::actors::ordered::Lanes::default();
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
        .map(|(event, delivery): EventJob| {
            let (core, shared, route) = (core.clone(), shared.clone(), route.clone());
            // Taken here, in arrival order: the message's earlier events go first.
            let mut turn = lanes.join(&event.user_message_id);
            async move {
                turn.wait().await;
                let forwarder = shared.forwarder.read().clone();
                let handed = match forwarder {
                    Some(f) => f
                        .send(crate::actors::forwarder::OwnEvent(event.clone()))
                        .await
                        .is_ok(),
                    None => false,
                };
                if !handed {
                    let body = event.to_bytes();
                    retry(&shared, "publish the event", || {
                        core.bus.publish(&route, body.clone())
                    })
                    .await;
                }
                drop(turn);
                if let Some(d) = delivery {
                    d.ack();
                    shared
                        .unsettled
                        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
        .buffer_unordered(64)
        .for_each(|()| async {})
        .await;
}

/// The ordered worker behind `InOrder`: stores and publishes, retrying while the backends are
/// unavailable, so nothing the transport reported is dropped.
pub(super) async fn run_in_order(
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    mut rx: mpsc::UnboundedReceiver<InOrder>,
) {
    let cid = shared.id.clone();
    while let Some(job) = rx.recv().await {
        match job {
            InOrder::Inbound(msg) => {
                retry(&shared, "store the inbound message", || {
                    core.store.save_inbound(&cid, &msg)
                })
                .await;
                let body = msg.to_bytes();
                let route = routes::inbound(&cid);
                retry(&shared, "publish the inbound message", || {
                    core.bus.publish(&route, body.clone())
                })
                .await;
            }
            InOrder::Status(status) => {
                shared
                    .metrics
                    .read()
                    .status(&status.component, &status.status);
                let previous = core
                    .store
                    .load_statuses(&cid)
                    .await
                    .ok()
                    .and_then(|all| all.into_iter().find(|s| s.component == status.component));
                retry(&shared, "store the status", || {
                    core.store.save_status(&status)
                })
                .await;
                let changed =
                    previous.is_none_or(|p| p.status != status.status || p.kind != status.kind);
                if let (true, Some(url)) = (changed, shared.spec().status_url.clone()) {
                    core.webhooks.do_send(PostWebhook {
                        kind: HookKind::Status,
                        url,
                        token: None,
                        body: serde_json::to_vec(&status).unwrap_or_default().into(),
                        message_id: None,
                        log: shared.log.clone(),
                    });
                }
            }
        }
    }
}
