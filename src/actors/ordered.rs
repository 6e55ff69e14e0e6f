//! Work kept in order per key, concurrent across keys: the events of one message reach its
//! `event_url` in the order they happened (a `submitted` before its `delivery_succeeded`),
//! while other messages' events go on beside them.
//!
//! `Lanes::join(key)` is called where the order is known (synchronously, in arrival order);
//! the returned `Turn` waits for the previous turn of the same key to finish (`wait`), and
//! hands over when dropped. A key with no turn outstanding holds no memory.

use futures::FutureExt;
use futures::future::Shared;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;

type Done = Shared<oneshot::Receiver<()>>;

#[derive(Clone, Default)]
pub struct Lanes {
    /// Per key: the newest turn's number and the signal that it is over.
    tails: Arc<Mutex<HashMap<String, (u64, Done)>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

/// One piece of work's place in its key's lane.
pub struct Turn {
    previous: Option<Done>,
    done: Option<oneshot::Sender<()>>,
    key: String,
    number: u64,
    tails: Arc<Mutex<HashMap<String, (u64, Done)>>>,
}

impl Lanes {
    /// Takes the next place in `key`'s lane.
    pub fn join(&self, key: &str) -> Turn {
        let number = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let previous = self
            .tails
            .lock()
            .insert(key.to_string(), (number, rx.shared()))
            .map(|(_, done)| done);
        Turn {
            previous,
            done: Some(tx),
            key: key.to_string(),
            number,
            tails: self.tails.clone(),
        }
    }

    /// Keys with work outstanding (for tests and metrics).
    pub fn busy(&self) -> usize {
        self.tails.lock().len()
    }
}

impl Turn {
    /// Waits until every earlier turn of the key is over (finished or dropped).
    pub async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = previous.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(());
        }
        let mut tails = self.tails.lock();
        if tails.get(&self.key).is_some_and(|(n, _)| *n == self.number) {
            tails.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn one_key_in_order_others_beside_it() {
        let lanes = Lanes::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // a1 is slow; a2 must wait for it, b1 must not.
        for (key, name, ms) in [("a", "a1", 50), ("a", "a2", 0), ("b", "b1", 0)] {
            let mut turn = lanes.join(key);
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                turn.wait().await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                log.lock().push(name);
                drop(turn);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*log.lock(), ["b1", "a1", "a2"]);
        assert_eq!(lanes.busy(), 0, "no memory kept for idle keys");
    }

    #[tokio::test]
    async fn a_dropped_turn_lets_the_next_go() {
        let lanes = Lanes::default();
        let first = lanes.join("k");
        let mut second = lanes.join("k");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), second.wait())
            .await
            .expect("the next turn goes");
    }
}
