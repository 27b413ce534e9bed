//! What an accept loop does when `accept` fails (EMFILE/ENFILE when descriptors run out, ECONNABORTED, …): wait
//! before the next try, doubling up to a cap, and log at most once per interval with the count of failures not
//! logged. Without it the loop spins on a failing `accept`, burning CPU and writing a log line per try. Both
//! servers (native, edge-host) use it; the caller does the sleeping.

use std::time::{Duration, Instant};

/// The first wait after a failure.
const FIRST_DELAY: Duration = Duration::from_millis(5);
/// The longest wait between tries.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// At most one log line per this long.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
    last_logged: Option<Instant>,
    not_logged: u64,
}

/// What to do after a failed accept.
#[derive(Debug, PartialEq, Eq)]
pub struct AcceptFailure {
    /// Sleep this long before accepting again.
    pub wait: Duration,
    /// A line to log now, if one is due.
    pub log: Option<String>,
}

impl AcceptBackoff {
    /// A connection was accepted: the next failure starts from the shortest wait again.
    pub fn succeeded(&mut self) {
        self.delay = None;
    }

    pub fn failed(&mut self, error: &dyn std::fmt::Display, now: Instant) -> AcceptFailure {
        let wait = self.delay.map_or(FIRST_DELAY, |d| (d * 2).min(MAX_DELAY));
        self.delay = Some(wait);
        let due = self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL);
        let log = if due {
            let suppressed = std::mem::take(&mut self.not_logged);
            self.last_logged = Some(now);
            Some(if suppressed > 0 {
                format!(
                    "accept failed: {error} ({suppressed} more failures since the last report); backing off"
                )
            } else {
                format!("accept failed: {error}; backing off")
            })
        } else {
            self.not_logged += 1;
            None
        };
        AcceptFailure { wait, log }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_on_success() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        let waits: Vec<Duration> = (0..10)
            .map(|_| backoff.failed(&"EMFILE", now).wait)
            .collect();
        assert_eq!(waits[0], FIRST_DELAY);
        assert_eq!(waits[1], FIRST_DELAY * 2);
        assert_eq!(waits[9], MAX_DELAY);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        backoff.succeeded();
        assert_eq!(backoff.failed(&"EMFILE", now).wait, FIRST_DELAY);
    }

    #[test]
    fn logs_once_per_interval_with_the_count_of_the_others() {
        let mut backoff = AcceptBackoff::default();
        let start = Instant::now();
        let first = backoff.failed(&"Too many open files", start).log;
        assert_eq!(
            first.as_deref(),
            Some("accept failed: Too many open files; backing off")
        );
        for i in 1..=100 {
            let at = start + Duration::from_millis(i * 10);
            assert_eq!(backoff.failed(&"Too many open files", at).log, None);
        }
        let later = backoff
            .failed(&"Too many open files", start + LOG_INTERVAL)
            .log;
        assert_eq!(
            later.as_deref(),
            Some(
                "accept failed: Too many open files (100 more failures since the last report); backing off"
            )
        );
    }
}
