//! Channel type `smpp`: an SMPP 3.4 ESME client (transceiver, transmitter, receiver or a
//! transmitter + receiver pair of binds) for a mobile operator's
//! SMSC. Config: Junebug's keys (`twisted_endpoint` "tcp:host:port", `system_id`,
//! `password`, `system_type`, TON/NPI, `registered_delivery`, `smpp_bind_timeout`,
//! `smpp_enquire_link_interval`, ...) plus hornbill's (`data_coding`, `multipart`,
//! `response_timeout`, `reassembly_timeout`, `max_reassembly_parts`). Protocol text layers (GSM 03.38, splitting, receipts) and
//! reading and building PDUs (`pdu`; rusmpp's types) are pure modules here; `session` is the I/O.

pub mod codec;
pub mod config;
pub mod dlr;
pub mod gsm7;
pub mod pdu;
pub mod reassembly;
pub mod session;
pub mod split;

use crate::transports::{TransportContext, TransportError, TransportFactory};
use futures::future::LocalBoxFuture;
use serde_json::Value;

pub struct SmppFactory;

impl TransportFactory for SmppFactory {
    fn name(&self) -> &'static str {
        "smpp"
    }

    fn transport_type(&self, _config: &Value) -> String {
        "sms".into()
    }

    fn graceful_stop(&self) -> bool {
        true
    }

    fn config_schema(&self) -> Value {
        super::config_schema::<config::SmppConfig>()
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        config::SmppConfig::parse(config).map(|_| ())
    }

    fn start(
        &self,
        config: &Value,
        ctx: TransportContext,
    ) -> LocalBoxFuture<'static, Result<(), TransportError>> {
        let cfg = config::SmppConfig::parse(config);
        Box::pin(async move { session::run(cfg.map_err(TransportError::Other)?, ctx).await })
    }
}
