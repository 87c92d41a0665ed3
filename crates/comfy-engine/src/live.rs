//! Live previews: the latest frame ComfyUI sent while sampling each recent job (asked for with
//! the prompt's `preview_method`), kept in memory for front ends to show and to announce. New
//! frames and job ends are broadcast; frames are small (latent2rgb or TAESD JPEGs), a frame
//! larger than [`MAXIMUM_FRAME_BYTES`] is not kept, and only the last [`KEPT_JOBS`] jobs are.
//! [`Engine::watch_live_preview`] turns the broadcast into at most one call every
//! [`ANNOUNCE_EVERY`] per watched job, the last frame always announced.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Jobs whose latest frame is kept; older ones are forgotten first.
const KEPT_JOBS: usize = 64;
/// Largest frame kept.
pub const MAXIMUM_FRAME_BYTES: usize = 4 << 20;
/// Changes a slow listener may fall behind by before it skips to the newest.
const CHANNEL_CAPACITY: usize = 256;
/// Shortest time between two announcements of one job's frames (samplers send one a step).
pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(250);

/// What the broadcast says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveChange {
    /// A new frame for this job.
    Frame(String),
    /// This job ended: no more frames.
    Ended(String),
}

/// One job's latest preview frame.
#[derive(Debug, Clone)]
pub struct LiveFrame {
    pub job_id: String,
    pub media_type: String,
    pub image: Bytes,
    /// Frames received for this job so far.
    pub sequence: u64,
    /// The node that sent it (a sampler), when ComfyUI said.
    pub node_id: Option<String>,
}

/// The latest frames, and who hears of new ones.
#[derive(Debug)]
pub struct LivePreviews {
    frames: Mutex<VecDeque<LiveFrame>>,
    changes: broadcast::Sender<LiveChange>,
}

impl Default for LivePreviews {
    fn default() -> Self {
        LivePreviews {
            frames: Mutex::new(VecDeque::new()),
            changes: broadcast::channel(CHANNEL_CAPACITY).0,
        }
    }
}

impl LivePreviews {
    /// Keeps `image` as `job_id`'s latest frame and announces it.
    pub fn store(&self, job_id: &str, media_type: String, image: Bytes, node_id: Option<String>) {
        if image.len() > MAXIMUM_FRAME_BYTES {
            return;
        }
        {
            let mut frames = self
                .frames
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let sequence = match frames.iter().position(|frame| frame.job_id == job_id) {
                Some(index) => frames.remove(index).map_or(1, |frame| frame.sequence + 1),
                None => 1,
            };
            if frames.len() == KEPT_JOBS {
                frames.pop_front();
            }
            frames.push_back(LiveFrame {
                job_id: job_id.to_owned(),
                media_type,
                image,
                sequence,
                node_id,
            });
        }
        // Nobody listening is fine: the frame is still there to read.
        let _ = self.changes.send(LiveChange::Frame(job_id.to_owned()));
    }

    /// Says that `job_id` will get no more frames.
    pub fn end(&self, job_id: &str) {
        let _ = self.changes.send(LiveChange::Ended(job_id.to_owned()));
    }

    /// `job_id`'s latest frame, if one came.
    pub fn latest(&self, job_id: &str) -> Option<LiveFrame> {
        let frames = self
            .frames
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        frames.iter().find(|frame| frame.job_id == job_id).cloned()
    }

    /// New frames and ended jobs from now on.
    pub fn changes(&self) -> broadcast::Receiver<LiveChange> {
        self.changes.subscribe()
    }
}

impl crate::Engine {
    /// `job_id`'s latest sampler preview, if one came (see [`LivePreviews`]).
    pub fn live_preview(&self, job_id: &str) -> Option<LiveFrame> {
        self.live.latest(job_id)
    }

    /// Calls `announce` in an owned task whenever `job_id` has a new frame, at most once every
    /// [`ANNOUNCE_EVERY`] (frames in between are announced together, the last one always), until
    /// the job ends, `stop` fires, the engine stops, or `announce` returns false (its listener
    /// is gone).
    pub fn watch_live_preview<F, Fut>(&self, job_id: String, stop: CancellationToken, mut announce: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        let mut changes = self.live.changes();
        let shutdown = self.cancel.child_token();
        self.tracker.spawn(async move {
            let mut pending = false;
            let mut quiet_until = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep_until(quiet_until), if pending => {
                        pending = false;
                        quiet_until = tokio::time::Instant::now() + ANNOUNCE_EVERY;
                        if !announce().await {
                            return;
                        }
                    }
                    change = changes.recv() => match change {
                        Ok(LiveChange::Frame(id)) => pending |= id == job_id,
                        Ok(LiveChange::Ended(id)) if id == job_id => {
                            if pending {
                                announce().await;
                            }
                            return;
                        }
                        Ok(LiveChange::Ended(_)) => {}
                        // Fell behind: one of the skipped changes may have been this job's.
                        Err(RecvError::Lagged(_)) => pending = true,
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_frame_of_each_recent_job_is_kept() {
        let live = LivePreviews::default();
        let mut changes = live.changes();
        live.store(
            "a",
            "image/jpeg".to_owned(),
            Bytes::from_static(b"one"),
            Some("3".to_owned()),
        );
        live.store("a", "image/jpeg".to_owned(), Bytes::from_static(b"two"), None);
        let frame = live.latest("a").expect("a frame");
        assert_eq!((frame.image.as_ref(), frame.sequence), (&b"two"[..], 2));
        assert_eq!(changes.try_recv(), Ok(LiveChange::Frame("a".to_owned())));
        assert_eq!(changes.try_recv(), Ok(LiveChange::Frame("a".to_owned())));
        assert!(live.latest("b").is_none());

        for index in 0..KEPT_JOBS {
            live.store(
                &format!("job-{index}"),
                "image/png".to_owned(),
                Bytes::from_static(b"x"),
                None,
            );
        }
        assert!(live.latest("a").is_none(), "the oldest job is forgotten");
        assert!(live.latest(&format!("job-{}", KEPT_JOBS - 1)).is_some());

        let huge = Bytes::from(vec![0u8; MAXIMUM_FRAME_BYTES + 1]);
        live.store("big", "image/png".to_owned(), huge, None);
        assert!(live.latest("big").is_none(), "a frame over the bound is not kept");
    }
}
