//! Process-wide resource limits: open files (README, "Limits").
//!
//! At start `raise_open_files` raises the open-files soft limit (RLIMIT_NOFILE) to the hard
//! one, with the `rlimit` crate. Then `[server] fd_reserve` descriptors are kept for the
//! management API, the public listener, the store, the bus, log files and webhooks:
//! listeners that take anonymous connections (telnet channels) ask `room_for_connection`
//! before keeping one, and refuse it when the process is within the reserve of its limit,
//! so a flood of idle connections cannot leave the APIs unable to accept. Open descriptors
//! are counted in `/proc/self/fd` (Linux); where that cannot be read, nothing is refused on
//! this ground. Descriptors and the reserve are the process's, so servers started in one
//! process (some tests) share them.
//!
//! Also `LogEvery`: a refusal that can come in floods is written to a channel log at most
//! once per interval, with the count of those not written.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Descriptors kept free for the APIs and the backends by default (`[server] fd_reserve`).
pub const DEFAULT_FD_RESERVE: usize = 128;

static RESERVE: AtomicUsize = AtomicUsize::new(DEFAULT_FD_RESERVE);

/// The open-files limits before and after `raise_open_files`.
#[derive(Clone, Copy, Debug)]
pub struct OpenFileLimits {
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the open-files soft limit to the hard limit (a process may do so without
/// privileges): the limits before and after.
pub fn raise_open_files() -> std::io::Result<OpenFileLimits> {
    let (before, hard) = rlimit::Resource::NOFILE.get()?;
    let soft = rlimit::increase_nofile_limit(u64::MAX)?;
    Ok(OpenFileLimits { before, soft, hard })
}

/// The open-files soft limit in force.
pub fn soft_limit() -> Option<u64> {
    rlimit::Resource::NOFILE.get_soft().ok()
}

/// Sets the number of descriptors anonymous connections leave free.
pub fn set_fd_reserve(n: usize) {
    RESERVE.store(n, Ordering::Relaxed);
}

pub fn fd_reserve() -> usize {
    RESERVE.load(Ordering::Relaxed)
}

/// Why an anonymous connection is not kept: the process's open files and its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom {
    pub open: usize,
    pub limit: u64,
    pub reserve: usize,
}

/// Descriptors the process has open (`/proc/self/fd`, less the one reading it uses). An
/// error of its own: at the limit, the directory cannot even be opened (EMFILE).
pub fn open_files() -> std::io::Result<usize> {
    let n = std::fs::read_dir("/proc/self/fd")?.count();
    Ok(n.saturating_sub(1))
}

/// Whether `open` descriptors leave the reserve free under `limit`.
pub fn leaves_reserve(open: usize, limit: u64, reserve: usize) -> bool {
    (open as u64).saturating_add(reserve as u64) < limit
}

/// The last count of open files and when it was made, and the connections kept since.
static COUNTED: std::sync::Mutex<Option<(Instant, usize)>> = std::sync::Mutex::new(None);
static KEPT_SINCE: AtomicUsize = AtomicUsize::new(0);
/// How long a count is trusted while the process is far from its limit (a count costs a
/// read of /proc/self/fd: about 0.2 ms at 1,000 descriptors).
const RECOUNT: Duration = Duration::from_millis(100);

/// Whether one more anonymous connection (already accepted: its descriptor is counted)
/// may be kept. Counted afresh unless a count under `RECOUNT` old, plus the connections
/// kept since, leaves twice the reserve free.
pub fn room_for_connection() -> Result<(), NoRoom> {
    let Some(limit) = soft_limit() else {
        return Ok(());
    };
    let reserve = fd_reserve();
    let last = *COUNTED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, n)) = last {
        let estimate = n.saturating_add(KEPT_SINCE.load(Ordering::Relaxed));
        if at.elapsed() < RECOUNT && leaves_reserve(estimate, limit, reserve.saturating_mul(2)) {
            KEPT_SINCE.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }
    let open = match open_files() {
        Ok(n) => n,
        // No descriptor left even to look: certainly no room.
        Err(e) if matches!(e.raw_os_error(), Some(24) | Some(23)) => {
            usize::try_from(limit).unwrap_or(usize::MAX)
        }
        Err(_) => return Ok(()),
    };
    *COUNTED.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), open));
    KEPT_SINCE.store(0, Ordering::Relaxed);
    if leaves_reserve(open, limit, reserve) {
        Ok(())
    } else {
        Err(NoRoom {
            open,
            limit,
            reserve,
        })
    }
}

/// How many connections the public listener takes at once, in all (`[public]
/// max_connections`, at most half of what the open-files limit leaves above the reserve,
/// and at least 16), and per worker (actix counts per worker).
pub fn public_connections(
    configured: usize,
    limit: Option<u64>,
    reserve: usize,
    workers: usize,
) -> (usize, usize) {
    let mut total = configured.max(1);
    if let Some(limit) = limit {
        let room = usize::try_from(limit.saturating_sub(reserve as u64) / 2).unwrap_or(usize::MAX);
        total = total.min(room.max(16));
    }
    let workers = workers.max(1);
    (total, total.div_ceil(workers))
}

/// A log line about a refusal that may come in floods: written at most once per `every`.
#[derive(Debug)]
pub struct LogEvery {
    every: Duration,
    last: Option<Instant>,
    unwritten: u64,
}

impl LogEvery {
    pub fn new(every: Duration) -> LogEvery {
        LogEvery {
            every,
            last: None,
            unwritten: 0,
        }
    }

    /// `Some(n)` when this one is to be written, `n` being how many were not written since
    /// the last; `None` when it is not.
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(at) if now.duration_since(at) < self.every => {
                self.unwritten += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unwritten))
            }
        }
    }
}

/// " (N more since the last entry)" for a line written after `due` said `Some(N)`.
pub fn more_since(unwritten: u64) -> String {
    if unwritten == 0 {
        String::new()
    } else {
        format!(" ({unwritten} more since the last entry)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept() {
        assert!(leaves_reserve(100, 256, 128));
        assert!(!leaves_reserve(128, 256, 128));
        assert!(!leaves_reserve(300, 256, 128));
        assert!(
            !leaves_reserve(0, 100, 128),
            "a reserve above the limit leaves nothing"
        );
    }

    #[test]
    fn open_files_are_counted() {
        let before = open_files().unwrap();
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let with = open_files().unwrap();
        drop(f);
        // Other test threads open and close files too: at least one more, not exactly.
        assert!(with >= 1 && before >= 3, "{before} then {with}");
        assert!(soft_limit().unwrap() > 0);
    }

    #[test]
    fn the_public_listener_gets_at_most_half_of_what_is_above_the_reserve() {
        assert_eq!(
            public_connections(4096, Some(1_048_576), 128, 2),
            (4096, 2048)
        );
        assert_eq!(public_connections(4096, Some(1024), 128, 2), (448, 224));
        assert_eq!(public_connections(4096, Some(256), 128, 4), (64, 16));
        assert_eq!(public_connections(4096, Some(100), 128, 1), (16, 16));
        assert_eq!(public_connections(10, None, 128, 3), (10, 4));
    }

    #[test]
    fn floods_are_logged_once_per_interval_with_a_count() {
        let mut every = LogEvery::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(every.due(t0), Some(0));
        assert_eq!(every.due(t0 + Duration::from_secs(1)), None);
        assert_eq!(every.due(t0 + Duration::from_secs(2)), None);
        assert_eq!(every.due(t0 + Duration::from_secs(11)), Some(2));
        assert_eq!(more_since(2), " (2 more since the last entry)");
        assert_eq!(more_since(0), "");
    }
}
