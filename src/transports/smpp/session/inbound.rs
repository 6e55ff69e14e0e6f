//! What an SMSC sends a session: deliver_sm and data_sm as inbound messages (long ones
//! joined from parts kept in the store, at most `max_reassembly_parts` waiting) or as
//! delivery receipts, matched to their message by SMSC id.

use super::*;

impl Session<'_> {
    /// A deliver_sm or data_sm: a delivery receipt, or a message (or one part of one).
    /// `line` is the PDU and its answer for the channel log (`log_protocol`), written with
    /// the message id they turn out to concern.
    pub(super) async fn incoming(&mut self, pdu: &Pdu, line: Option<(String, String)>) {
        let log = |mid: Option<&str>, line| protocol_lines(&self.link.reporter, mid, line);
        let Some(incoming) = inspect(pdu) else {
            log(None, line);
            return;
        };
        let (from, to, dc, body, udh_len, concat, ussd_op, session_info) = match incoming {
            Incoming::Receipt { smsc_id, status } => {
                match smsc_id {
                    Some(id) => {
                        tokio::task::spawn_local(receipt(self.link.clone(), id, status, line));
                    }
                    None => {
                        log(None, line);
                        self.link
                            .reporter
                            .log(crate::logs::WARNING, "A delivery receipt without an id")
                    }
                }
                return;
            }
            Incoming::Message {
                from,
                to,
                data_coding,
                body,
                udh_len,
                concat,
                ussd_op,
                session_info,
            } => (
                from,
                to,
                data_coding,
                body,
                udh_len,
                concat,
                ussd_op,
                session_info,
            ),
        };
        let default = self.cfg.default_coding();
        let text = match concat {
            Some((r, total, seqn)) if total > 1 => {
                let part = StoredPart::new(dc, udh_len, &body);
                match self
                    .part(format!("parts:{from}:{to}:{r}:{total}"), total, seqn, part)
                    .await
                {
                    Some(parts) => join_parts(&parts, default),
                    None => {
                        log(None, line);
                        return;
                    }
                }
            }
            _ => split::decode(dc, &body, udh_len, default),
        };
        let mut msg = Message::new(Some(to), Some(from), Some(text));
        msg.transport_type = Some("sms".into());
        if ussd_op.is_some() || session_info.is_some() {
            ussd_inbound(&mut msg, ussd_op, session_info);
        }
        log(Some(&msg.message_id), line);
        self.link
            .reporter
            .report(TransportReport::Inbound(Box::new(msg)));
    }

    /// Keeps one part of a long inbound message in the store (so that, with Redis, parts
    /// survive a restart); all of them, in order, once the last has come.
    async fn part(
        &mut self,
        key: String,
        total: u8,
        seqn: u8,
        part: StoredPart,
    ) -> Option<Vec<StoredPart>> {
        let link = self.link;
        let mut parts: BTreeMap<u8, StoredPart> =
            match link.store.get_state(&link.channel_id, &key).await {
                Ok(Some(json)) => serde_json::from_str(&json).unwrap_or_default(),
                _ => BTreeMap::new(),
            };
        parts.insert(seqn, part);
        if parts.len() >= total as usize {
            self.partial.remove(&key);
            let _ = link.store.delete_state(&link.channel_id, &key).await;
            return Some(parts.into_values().collect());
        }
        let crowded_out = self.partial.hold(&key, total, parts.len(), Instant::now());
        for d in crowded_out {
            crate::telemetry::limit_reached(&link.channel_id, crate::telemetry::Limit::SmppParts);
            // Each one a message lost: logged every time (the SMSC is no anonymous crowd).
            link.reporter.log(
                crate::logs::ERROR,
                format!(
                    "Dropping an incomplete long message ({}, {} of {} parts): more than {} parts were waiting (max_reassembly_parts)",
                    d.key,
                    d.held,
                    d.total,
                    self.cfg.max_reassembly_parts(),
                ),
            );
            let _ = link.store.delete_state(&link.channel_id, &d.key).await;
        }
        let json = serde_json::to_string(&parts).unwrap_or_default();
        let keep = self.cfg.reassembly_timeout() + Duration::from_secs(60);
        if let Err(e) = link
            .store
            .set_state(&link.channel_id, &key, &json, keep)
            .await
        {
            link.reporter.log(
                crate::logs::ERROR,
                format!("Cannot keep a message part: {e}"),
            );
        }
        None
    }
}

/// A received PDU and the answer to it, in the channel log.
fn protocol_lines(reporter: &Reporter, mid: Option<&str>, lines: Option<(String, String)>) {
    if let Some((pdu, answer)) = lines {
        reporter.protocol(Dir::In, mid, || pdu);
        reporter.protocol(Dir::Out, mid, || answer);
    }
}

/// A receipt for an SMSC id: the message it belongs to gets a delivery report. A receipt
/// that comes before the submit_sm_resp finds nothing yet and is retried briefly; one that
/// repeats a final status finds nothing and is logged.
async fn receipt(
    ctx: Link,
    smsc_id: String,
    status: crate::message::DeliveryStatus,
    line: Option<(String, String)>,
) {
    let log = |mid: Option<&str>, line| protocol_lines(&ctx.reporter, mid, line);
    for attempt in 0..20 {
        for form in dlr::id_forms(&smsc_id) {
            if let Ok(Some(mid)) = ctx
                .store
                .get_state(&ctx.channel_id, &format!("smsc:{form}"))
                .await
            {
                // A final status ends the mapping: a repeated receipt is logged, not
                // reported twice.
                if status != crate::message::DeliveryStatus::Pending {
                    let _ = ctx
                        .store
                        .delete_state(&ctx.channel_id, &format!("smsc:{form}"))
                        .await;
                }
                log(Some(&mid), line);
                ctx.reporter.report(TransportReport::DeliveryReport {
                    message_id: mid,
                    status,
                });
                return;
            }
        }
        if attempt < 19 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    log(None, line);
    ctx.reporter.log(
        crate::logs::WARNING,
        format!("Delivery receipt for unknown SMSC id {smsc_id}"),
    );
}
