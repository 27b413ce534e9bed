//! The component's log: stderr, which Spin and edge-host keep per application.

use std::sync::Mutex;

/// Writes `message` to stderr the first time this instance sees it (an outage repeats the same lines).
pub(super) fn log_once(message: &str) {
    static REPORTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    if let Ok(mut reported) = REPORTED.lock()
        && !reported.iter().any(|m| m == message)
    {
        eprintln!("classify-edge: {message}");
        reported.push(message.to_owned());
    }
}
