//! The embedded bus: in-process bounded queues with prefetch and redelivery.

use super::{Acker, Bus, BusError, Delivery, DeliveryStream};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

#[derive(Default)]
struct Queue {
    /// (body, redelivered)
    ready: Mutex<VecDeque<(Bytes, bool)>>,
    notify: Notify,
}

/// In-process queues. Each route holds at most `max_len` waiting messages.
pub struct MemoryBus {
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    max_len: usize,
}

impl MemoryBus {
    pub fn new(max_len: usize) -> Self {
        MemoryBus {
            queues: Mutex::new(HashMap::new()),
            max_len,
        }
    }

    fn queue(&self, route: &str) -> Arc<Queue> {
        let mut queues = self.queues.lock();
        queues.entry(route.to_string()).or_default().clone()
    }
}

struct MemoryAcker {
    queue: Arc<Queue>,
    body: Bytes,
    _permit: OwnedSemaphorePermit,
}

impl Acker for MemoryAcker {
    fn ack(self: Box<Self>) {}

    fn requeue(self: Box<Self>) {
        let this = *self;
        this.queue.ready.lock().push_front((this.body, true));
        this.queue.notify.notify_one();
        // The permit is released when `this` goes out of scope, after the message is back.
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, route: &str, body: Bytes) -> Result<(), BusError> {
        let queue = self.queue(route);
        {
            let mut ready = queue.ready.lock();
            if ready.len() >= self.max_len {
                return Err(BusError::QueueFull(route.to_string()));
            }
            ready.push_back((body, false));
        }
        queue.notify.notify_one();
        Ok(())
    }

    async fn consume(&self, route: &str, prefetch: usize) -> Result<DeliveryStream, BusError> {
        let queue = self.queue(route);
        let permits = Arc::new(Semaphore::new(prefetch.max(1)));
        let stream = futures::stream::unfold((queue, permits), |(queue, permits)| async move {
            let permit = permits.clone().acquire_owned().await.ok()?;
            loop {
                let next = queue.ready.lock().pop_front();
                if let Some((body, redelivered)) = next {
                    // Others may be waiting too: pass the wake-up on if more is ready.
                    if !queue.ready.lock().is_empty() {
                        queue.notify.notify_one();
                    }
                    let acker = MemoryAcker {
                        queue: queue.clone(),
                        body: body.clone(),
                        _permit: permit,
                    };
                    let delivery = Delivery::new(body, redelivered, Box::new(acker));
                    return Some((delivery, (queue, permits)));
                }
                // notify_one keeps a permit when nobody waits, so a publish between the
                // look above and this wait is not missed.
                queue.notify.notified().await;
            }
        });
        Ok(Box::pin(stream))
    }

    async fn queue_len(&self, route: &str) -> Result<u64, BusError> {
        Ok(self.queue(route).ready.lock().len() as u64)
    }

    async fn drain(&self, route: &str) -> Result<Vec<Bytes>, BusError> {
        let queue = self.queue(route);
        let drained: Vec<Bytes> = queue.ready.lock().drain(..).map(|(b, _)| b).collect();
        Ok(drained)
    }

    async fn remove_if_empty(&self, route: &str) -> Result<bool, BusError> {
        let mut queues = self.queues.lock();
        let empty = queues.get(route).is_some_and(|q| q.ready.lock().is_empty());
        if empty {
            queues.remove(route);
        }
        Ok(empty)
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
