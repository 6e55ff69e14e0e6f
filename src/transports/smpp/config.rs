//! The `smpp` channel config: Junebug's keys (`JUNEBUG-API.md` §5) plus hornbill's own.

use super::split::{Coding, Concat};

/// The bind a session makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Transceiver,
    Transmitter,
    Receiver,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Transceiver => "transceiver",
            Role::Transmitter => "transmitter",
            Role::Receiver => "receiver",
        }
    }

    pub fn sends(self) -> bool {
        self != Role::Receiver
    }
}
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmppConfig {
    /// "tcp:host:port" (Twisted client endpoint), or "tcp:host=H:port=P".
    pub twisted_endpoint: String,
    pub system_id: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub system_type: Option<String>,
    #[serde(default)]
    pub interface_version: Option<Value>,
    #[serde(default)]
    pub service_type: Option<String>,
    #[serde(default)]
    pub address_range: Option<String>,
    #[serde(default)]
    pub source_addr: Option<String>,
    #[serde(default)]
    pub source_addr_ton: Option<u8>,
    #[serde(default)]
    pub source_addr_npi: Option<u8>,
    #[serde(default)]
    pub dest_addr_ton: Option<u8>,
    #[serde(default)]
    pub dest_addr_npi: Option<u8>,
    /// Ask for delivery receipts (default true).
    #[serde(default)]
    pub registered_delivery: Option<bool>,
    /// Seconds (Junebug's default 30).
    #[serde(default)]
    pub smpp_bind_timeout: Option<f64>,
    /// Seconds (Junebug's default 55).
    #[serde(default)]
    pub smpp_enquire_link_interval: Option<f64>,
    #[serde(default)]
    pub initial_reconnect_delay: Option<f64>,
    /// hornbill: seconds to wait for a submit_sm_resp before the message is retried.
    #[serde(default)]
    pub response_timeout: Option<f64>,
    /// hornbill: seconds the parts of a long inbound message wait for the rest (300).
    #[serde(default)]
    pub reassembly_timeout: Option<f64>,
    /// hornbill: parts of long inbound messages waiting for the rest, at most (10000); past
    /// it the oldest incomplete messages are dropped.
    #[serde(default)]
    pub max_reassembly_parts: Option<usize>,
    /// hornbill: "gsm7" (default when the text fits), "gsm7_packed", "latin1" or "ucs2".
    #[serde(default)]
    pub data_coding: Option<String>,
    /// hornbill: "udh8" (default), "udh16", "sar" or "payload".
    #[serde(default)]
    pub multipart: Option<String>,
    /// hornbill: "transceiver" (default), "transmitter", "receiver", or "pair" (a
    /// transmitter and a receiver bind, two connections, for SMSCs without transceivers).
    #[serde(default)]
    pub bind_mode: Option<String>,
    // Junebug/Vumi keys accepted and not (yet) used by hornbill.
    #[serde(default)]
    pub mt_tps: Option<Value>,
    #[serde(default)]
    pub throttle_delay: Option<Value>,
    #[serde(default)]
    pub submit_sm_expiry: Option<Value>,
    #[serde(default)]
    pub disable_ack: Option<Value>,
    #[serde(default)]
    pub disable_delivery_report: Option<Value>,
    #[serde(default)]
    pub third_party_id_expiry: Option<Value>,
    #[serde(default)]
    pub split_bind_prefix: Option<Value>,
    #[serde(default)]
    pub codec_class: Option<Value>,
    #[serde(default)]
    pub delivery_report_processor: Option<Value>,
    #[serde(default)]
    pub deliver_short_message_processor: Option<Value>,
    #[serde(default)]
    pub submit_short_message_processor: Option<Value>,
    #[serde(default)]
    pub delivery_report_processor_config: Option<Value>,
    #[serde(default)]
    pub deliver_short_message_processor_config: Option<Value>,
    #[serde(default)]
    pub submit_short_message_processor_config: Option<Value>,
}

/// Default of `max_reassembly_parts`.
pub const DEFAULT_REASSEMBLY_PARTS: usize = 10_000;
/// Largest `max_reassembly_parts` accepted.
pub const MAX_REASSEMBLY_PARTS: usize = 10_000_000;

fn secs(v: Option<f64>, default: f64) -> Duration {
    Duration::from_secs_f64(v.filter(|s| *s > 0.0).unwrap_or(default))
}

impl SmppConfig {
    pub fn parse(config: &Value) -> Result<SmppConfig, String> {
        let cfg: SmppConfig = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        cfg.host_port()?;
        let seconds: Vec<(&str, f64)> = [
            ("smpp_bind_timeout", cfg.smpp_bind_timeout),
            ("smpp_enquire_link_interval", cfg.smpp_enquire_link_interval),
            ("initial_reconnect_delay", cfg.initial_reconnect_delay),
            ("response_timeout", cfg.response_timeout),
            ("reassembly_timeout", cfg.reassembly_timeout),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        crate::transports::check_seconds(&seconds)?;
        if let Some(n) = cfg.max_reassembly_parts
            && !(1..=MAX_REASSEMBLY_PARTS).contains(&n)
        {
            return Err(format!(
                "max_reassembly_parts must be from 1 to {MAX_REASSEMBLY_PARTS} (got {n})"
            ));
        }
        if let Some(tps) = cfg.mt_tps.as_ref().filter(|v| !v.is_null()) {
            let ok = tps
                .as_f64()
                .is_some_and(|t| t == 0.0 || (0.01..=100_000.0).contains(&t));
            if !ok {
                return Err(format!(
                    "mt_tps must be 0 (no limit) or a number of messages a second from 0.01 to 100000 (got {tps})"
                ));
            }
        }
        if cfg.system_id.is_empty() || cfg.system_id.len() > 15 {
            return Err("system_id must be 1 to 15 characters".into());
        }
        if cfg.password.as_deref().is_some_and(|p| p.len() > 8) {
            return Err("password must be at most 8 characters".into());
        }
        if let Some(dc) = &cfg.data_coding
            && !matches!(dc.as_str(), "gsm7" | "gsm7_packed" | "latin1" | "ucs2")
        {
            return Err(format!(
                "data_coding {dc:?} must be gsm7, gsm7_packed, latin1 or ucs2"
            ));
        }
        if let Some(m) = &cfg.multipart
            && !matches!(m.as_str(), "udh8" | "udh16" | "sar" | "payload")
        {
            return Err(format!(
                "multipart {m:?} must be udh8, udh16, sar or payload"
            ));
        }
        if let Some(m) = &cfg.bind_mode
            && !matches!(
                m.as_str(),
                "transceiver" | "transmitter" | "receiver" | "pair"
            )
        {
            return Err(format!(
                "bind_mode {m:?} must be transceiver, transmitter, receiver or pair"
            ));
        }
        Ok(cfg)
    }

    /// The binds the channel makes, each with its status component.
    pub fn binds(&self) -> Vec<(Role, &'static str)> {
        match self.bind_mode.as_deref() {
            Some("transmitter") => vec![(Role::Transmitter, "smpp")],
            Some("receiver") => vec![(Role::Receiver, "smpp")],
            Some("pair") => vec![(Role::Transmitter, "smpp"), (Role::Receiver, "smpp_rx")],
            _ => vec![(Role::Transceiver, "smpp")],
        }
    }

    fn host_port(&self) -> Result<(String, u16), String> {
        let bad = || {
            format!(
                "twisted_endpoint {:?} is not of the form \"tcp:host:port\"",
                self.twisted_endpoint
            )
        };
        let rest = self.twisted_endpoint.strip_prefix("tcp:").ok_or_else(bad)?;
        let (mut host, mut port) = (None, None);
        for (i, part) in rest.split(':').enumerate() {
            if let Some(h) = part.strip_prefix("host=") {
                host = Some(h.to_string());
            } else if let Some(p) = part.strip_prefix("port=") {
                port = p.parse().ok();
            } else if i == 0 {
                host = Some(part.to_string());
            } else if i == 1 {
                port = part.parse().ok();
            }
        }
        match (host, port) {
            (Some(h), Some(p)) if !h.is_empty() => Ok((h, p)),
            _ => Err(bad()),
        }
    }

    pub fn address(&self) -> String {
        let (h, p) = self.host_port().unwrap_or_default();
        format!("{h}:{p}")
    }

    pub fn bind_timeout(&self) -> Duration {
        secs(self.smpp_bind_timeout, 30.0)
    }

    pub fn enquire_link_interval(&self) -> Duration {
        secs(self.smpp_enquire_link_interval, 55.0)
    }

    pub fn initial_reconnect_delay(&self) -> Duration {
        secs(self.initial_reconnect_delay, 1.0)
    }

    pub fn response_timeout(&self) -> Duration {
        secs(self.response_timeout, 30.0)
    }

    /// Junebug's `mt_tps`: submit_sm a second (none or 0: unlimited).
    pub fn mt_tps(&self) -> Option<f64> {
        self.mt_tps
            .as_ref()
            .and_then(Value::as_f64)
            .filter(|t| *t > 0.0)
    }

    /// How long parts of a long inbound message wait for the rest.
    pub fn reassembly_timeout(&self) -> Duration {
        secs(self.reassembly_timeout, 300.0)
    }

    /// Parts of long inbound messages one bind keeps waiting for the rest.
    pub fn max_reassembly_parts(&self) -> usize {
        self.max_reassembly_parts
            .unwrap_or(DEFAULT_REASSEMBLY_PARTS)
    }

    pub fn registered_delivery(&self) -> bool {
        self.registered_delivery.unwrap_or(true)
    }

    /// The configured coding, if one is (else chosen per message).
    pub fn configured_coding(&self) -> Option<Coding> {
        match self.data_coding.as_deref() {
            Some("gsm7") => Some(Coding::Gsm7 { packed: false }),
            Some("gsm7_packed") => Some(Coding::Gsm7 { packed: true }),
            Some("latin1") => Some(Coding::Latin1),
            Some("ucs2") => Some(Coding::Ucs2),
            _ => None,
        }
    }

    /// What data_coding 0 means inbound.
    pub fn default_coding(&self) -> Coding {
        match self.data_coding.as_deref() {
            Some("gsm7_packed") => Coding::Gsm7 { packed: true },
            Some("latin1") => Coding::Latin1,
            _ => Coding::Gsm7 { packed: false },
        }
    }

    pub fn concat(&self) -> Concat {
        match self.multipart.as_deref() {
            Some("udh16") => Concat::Udh16,
            Some("sar") => Concat::Sar,
            Some("payload") => Concat::Payload,
            _ => Concat::Udh8,
        }
    }
}
