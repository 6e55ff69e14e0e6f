//! The rate limit of a channel (`rate_limit_count` per `rate_limit_window`).

use std::time::Duration;

/// Token bucket: `count` tokens per `window`, bursting up to `count`. On tokio's clock, so
/// its tests run on a paused one, exactly.
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl TokenBucket {
    pub fn new(count: u64, window_secs: u64) -> Option<TokenBucket> {
        if count == 0 {
            return None;
        }
        let window = window_secs.max(1) as f64;
        Some(TokenBucket {
            capacity: count as f64,
            per_sec: count as f64 / window,
            tokens: count as f64,
            at: tokio::time::Instant::now(),
        })
    }

    fn refill(&mut self) {
        let now = tokio::time::Instant::now();
        let gained = now.duration_since(self.at).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + gained).min(self.capacity);
        self.at = now;
    }

    pub fn try_take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is there.
    pub fn wait(&mut self) -> Duration {
        self.refill();
        Duration::from_secs_f64(((1.0 - self.tokens) / self.per_sec).max(0.001))
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_bursts_then_refills_at_its_rate() {
        assert!(TokenBucket::new(0, 1).is_none(), "no limit");
        let mut b = TokenBucket::new(10, 2).unwrap();
        // The burst: `count` at once, then none.
        for _ in 0..10 {
            assert!(b.try_take());
        }
        assert!(!b.try_take());
        // 10 per 2 s: the next token in 200 ms, exactly.
        assert_eq!(b.wait(), Duration::from_millis(200));
        tokio::time::advance(Duration::from_millis(199)).await;
        assert!(!b.try_take());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(b.try_take());
        assert!(!b.try_take());
        // Idle for a long time: it holds at most `count`.
        tokio::time::advance(Duration::from_secs(3600)).await;
        let burst = (0..20).take_while(|_| b.try_take()).count();
        assert_eq!(burst, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_of_zero_counts_as_one_second() {
        let mut b = TokenBucket::new(4, 0).unwrap();
        for _ in 0..4 {
            assert!(b.try_take());
        }
        assert_eq!(b.wait(), Duration::from_millis(250));
    }
}
