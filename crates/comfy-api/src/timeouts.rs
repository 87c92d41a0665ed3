//! How long each kind of ComfyUI call may take before the backend counts as not answering.
//!
//! A ComfyUI whose Python is hung (or a live proxy in front of a stopped one) accepts connections
//! and never replies; without these limits every call waits for the operating system to give up.
//! The limits are sized per kind of call, not one number for all: a control call is answered from
//! memory in milliseconds, while `/object_info` and file transfers grow with the installation.
//! Transfers are bounded by silence rather than by total time so a large video still moves over a
//! slow link while a silent backend is caught as quickly as for any other call.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Every limit of one backend's client, in one place. Set them with
/// [`ClientOptions::with_timeouts`](crate::ClientOptions::with_timeouts); the defaults suit a
/// ComfyUI on the local network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP (and TLS) connection, for every HTTP call. Default 5 s.
    pub connect: Duration,
    /// Control calls ComfyUI answers from memory: `/system_stats`, `/queue` (read and delete),
    /// `/interrupt`, `/free`, `/features`, `/history/{id}`, `/object_info/{class}`, `/api/jobs/{id}`.
    /// Default 10 s.
    pub control: Duration,
    /// Catalogue reads that grow with the installation: `/object_info` (1.35 MB, about 0.5 s on
    /// ComfyUI 0.26 with few custom nodes), the whole `/history`, model and embedding lists (the
    /// first listing walks the model folders, which can sit on a network drive) and
    /// `/view_metadata`. Default 60 s.
    pub catalog: Duration,
    /// `POST /prompt`: ComfyUI validates the whole graph, custom nodes' checks included, before it
    /// answers. Default 30 s.
    pub submit: Duration,
    /// Uploads and `/view` downloads: the longest silence allowed, before the first byte and between
    /// chunks in either direction. Never a total, so file size does not matter. Default 30 s.
    pub transfer_idle: Duration,
    /// Opening the websocket: the connection, the HTTP upgrade and the first frame. Default 10 s;
    /// after a timeout the backend actor retries with its reconnect backoff.
    pub websocket: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            control: Duration::from_secs(10),
            catalog: Duration::from_secs(60),
            submit: Duration::from_secs(30),
            transfer_idle: Duration::from_secs(30),
            websocket: Duration::from_secs(10),
        }
    }
}

impl Timeouts {
    /// Every limit set to `limit` (tests, or a caller that wants a single number).
    pub fn all(limit: Duration) -> Self {
        Timeouts {
            connect: limit,
            control: limit,
            catalog: limit,
            submit: limit,
            transfer_idle: limit,
            websocket: limit,
        }
    }

    pub(crate) fn limit(&self, kind: CallKind) -> Duration {
        match kind {
            CallKind::Control => self.control,
            CallKind::Catalog => self.catalog,
            CallKind::Submit => self.submit,
        }
    }
}

/// Which total limit a call that is not a transfer gets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallKind {
    Control,
    Catalog,
    Submit,
}

/// When a transfer last showed a sign of life (a chunk sent or received). Clones share the clock,
/// so an upload's body stream can report progress to the watchdog awaiting the whole call.
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<Mutex<Instant>>);

impl Activity {
    pub(crate) fn new() -> Self {
        Activity(Arc::new(Mutex::new(Instant::now())))
    }

    pub(crate) fn touch(&self) {
        // A poisoned clock only means another thread panicked mid-touch; the instant is still valid.
        *self.0.lock().unwrap_or_else(|poison| poison.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Runs `transfer` until it ends, or returns `None` once `idle` has passed without `activity`.
pub(crate) async fn until_idle<T>(
    activity: &Activity,
    idle: Duration,
    transfer: impl Future<Output = T>,
) -> Option<T> {
    let mut transfer = std::pin::pin!(transfer);
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            output = &mut transfer => return Some(output),
            () = tokio::time::sleep_until(deadline) => {
                // The transfer may have moved while we slept: only a full idle period counts.
                if activity.last() + idle <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// How a limit reads in an error message: "10 s", "300 ms", "1.5 s".
pub(crate) fn describe(limit: Duration) -> String {
    if limit < Duration::from_secs(1) {
        format!("{} ms", limit.as_millis())
    } else if limit.subsec_millis() == 0 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{:.1} s", limit.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_naturally() {
        assert_eq!(describe(Duration::from_secs(10)), "10 s");
        assert_eq!(describe(Duration::from_millis(300)), "300 ms");
        assert_eq!(describe(Duration::from_millis(1500)), "1.5 s");
    }

    #[tokio::test]
    async fn a_transfer_that_keeps_moving_is_not_cut() {
        // Real time with wide margins (no paused clock: that needs tokio's test-util feature).
        let activity = Activity::new();
        let idle = Duration::from_millis(250);
        let moving = async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                activity.touch();
            }
        };
        assert!(until_idle(&activity, idle, moving).await.is_some());
        let started = Instant::now();
        let silent = tokio::time::sleep(Duration::from_secs(5));
        assert!(until_idle(&activity, idle, silent).await.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
