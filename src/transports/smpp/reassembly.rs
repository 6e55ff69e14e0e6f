//! Long inbound messages under way on one bind: which, since when, and how many parts each
//! holds (the parts themselves are in the store). Bounded by `max_reassembly_parts`: a part
//! that takes the total past it drops the oldest other incomplete messages (the likeliest
//! never to complete), each a logged, counted refusal in the session; the message the part
//! belongs to is never the one dropped. `reassembly_timeout` drops the stale ones.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// An incomplete message given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub key: String,
    pub held: usize,
    pub total: u8,
}

struct Entry {
    since: (Instant, u64),
    total: u8,
    held: usize,
}

pub struct Partial {
    messages: HashMap<String, Entry>,
    /// The same messages, oldest first.
    order: BTreeMap<(Instant, u64), String>,
    parts: usize,
    cap: usize,
    seq: u64,
}

impl Partial {
    pub fn new(cap: usize) -> Partial {
        Partial {
            messages: HashMap::new(),
            order: BTreeMap::new(),
            parts: 0,
            cap: cap.max(1),
            seq: 0,
        }
    }

    /// Parts held, all messages.
    pub fn parts(&self) -> usize {
        self.parts
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// `key` now holds `held` of its `total` parts: the messages dropped to bring the parts
    /// held back to the cap, oldest first.
    pub fn hold(&mut self, key: &str, total: u8, held: usize, now: Instant) -> Vec<Dropped> {
        match self.messages.get_mut(key) {
            Some(e) => {
                self.parts = self.parts - e.held + held;
                e.held = held;
            }
            None => {
                self.seq += 1;
                let since = (now, self.seq);
                self.order.insert(since, key.to_string());
                self.messages
                    .insert(key.to_string(), Entry { since, total, held });
                self.parts += held;
            }
        }
        let mut dropped = Vec::new();
        while self.parts > self.cap {
            let Some(oldest) = self.order.values().find(|k| *k != key).cloned() else {
                break;
            };
            dropped.extend(self.remove(&oldest));
        }
        dropped
    }

    /// `key` is complete (or given up elsewhere).
    pub fn remove(&mut self, key: &str) -> Option<Dropped> {
        let e = self.messages.remove(key)?;
        self.order.remove(&e.since);
        self.parts -= e.held;
        Some(Dropped {
            key: key.to_string(),
            held: e.held,
            total: e.total,
        })
    }

    /// The messages whose first part came more than `timeout` ago, taken out.
    pub fn stale(&mut self, timeout: Duration, now: Instant) -> Vec<Dropped> {
        let keys: Vec<String> = self
            .order
            .iter()
            .take_while(|((at, _), _)| now.saturating_duration_since(*at) > timeout)
            .map(|(_, k)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.remove(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_oldest_other_messages_are_dropped() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut p = Partial::new(5);
        assert!(p.hold("a", 3, 1, t0).is_empty());
        assert!(p.hold("a", 3, 2, t0 + s).is_empty());
        assert!(p.hold("b", 4, 2, t0 + s).is_empty());
        assert_eq!(p.parts(), 4);
        // "c" brings it to 6: "a", the oldest, goes.
        let dropped = p.hold("c", 2, 2, t0 + 2 * s);
        assert_eq!(
            dropped,
            [Dropped {
                key: "a".into(),
                held: 2,
                total: 3
            }]
        );
        assert_eq!((p.len(), p.parts()), (2, 4));
        // A part of "b" (the oldest now) does not drop "b" itself, but "c".
        let dropped = p.hold("b", 4, 4, t0 + 3 * s);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].key, "c");
        assert_eq!(p.remove("b").map(|d| d.held), Some(4));
        assert!(p.is_empty() && p.parts() == 0);
    }

    #[test]
    fn stale_messages_are_taken_out() {
        let t0 = Instant::now();
        let mut p = Partial::new(100);
        p.hold("old", 2, 1, t0);
        p.hold("new", 2, 1, t0 + Duration::from_secs(250));
        let stale = p.stale(Duration::from_secs(300), t0 + Duration::from_secs(301));
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].key, "old");
        assert_eq!((p.len(), p.parts()), (1, 1));
    }
}
