//! A cluster of one (the embedded default): this node is the only member and is granted
//! every lease; notices go to its own subscribers.

use super::{CoordError, Coordinator, NodeInfo, Notice, Token};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::mpsc;

#[derive(Default)]
pub struct Local {
    me: Mutex<Option<NodeInfo>>,
    leases: Mutex<HashMap<String, (String, Token)>>,
    next_token: Mutex<u64>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Notice>>>,
}

#[async_trait]
impl Coordinator for Local {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn heartbeat(&self, info: &NodeInfo, _ttl_ms: u64) -> Result<(), CoordError> {
        *self.me.lock() = Some(info.clone());
        Ok(())
    }

    async fn leave(&self, _node: &str) -> Result<(), CoordError> {
        *self.me.lock() = None;
        Ok(())
    }

    async fn members(&self) -> Result<Vec<NodeInfo>, CoordError> {
        Ok(self.me.lock().clone().into_iter().collect())
    }

    async fn acquire(
        &self,
        resource: &str,
        node: &str,
        _ttl_ms: u64,
    ) -> Result<Option<Token>, CoordError> {
        let mut leases = self.leases.lock();
        if leases.contains_key(resource) {
            return Ok(None);
        }
        let mut next = self.next_token.lock();
        *next += 1;
        let token = Token(*next);
        leases.insert(resource.to_string(), (node.to_string(), token));
        Ok(Some(token))
    }

    async fn renew(
        &self,
        resource: &str,
        node: &str,
        token: Token,
        _ttl_ms: u64,
    ) -> Result<bool, CoordError> {
        Ok(self.leases.lock().get(resource) == Some(&(node.to_string(), token)))
    }

    async fn release(&self, resource: &str, node: &str, token: Token) -> Result<(), CoordError> {
        let mut leases = self.leases.lock();
        if leases.get(resource) == Some(&(node.to_string(), token)) {
            leases.remove(resource);
        }
        Ok(())
    }

    async fn holder(&self, resource: &str) -> Result<Option<(String, Token)>, CoordError> {
        Ok(self.leases.lock().get(resource).cloned())
    }

    async fn publish(&self, notice: &Notice) -> Result<(), CoordError> {
        self.subscribers
            .lock()
            .retain(|s| s.send(notice.clone()).is_ok());
        Ok(())
    }

    async fn subscribe(&self) -> mpsc::UnboundedReceiver<Notice> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().push(tx);
        rx
    }
}
