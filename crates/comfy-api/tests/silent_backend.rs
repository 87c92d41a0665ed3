//! A ComfyUI that accepts connections and never answers (hung Python, a stopped process behind a
//! live proxy): every call must fail with the timeout error, naming the backend, the call and the
//! limit, within its configured bound — never hang. Each test runs under a wall-clock guard so a
//! regression fails instead of stalling the suite.

use std::future::Future;
use std::time::{Duration, Instant};

use comfy_api::{
    Backend, BackendOptions, ClientError, ClientOptions, ComfyClient, FileRef, PromptRequest, Timeouts,
    UploadKind,
};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The timeout the tests configure; small so the suite stays fast.
const LIMIT: Duration = Duration::from_millis(300);
/// How long any one call may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(2);

/// Accepts every connection and reads whatever arrives, never writing a byte. Returns its URL.
async fn silent_listener() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while matches!(stream.read(&mut buffer).await, Ok(read) if read > 0) {}
            });
        }
    });
    format!("http://{address}")
}

fn short_options() -> ClientOptions {
    ClientOptions::default().with_timeouts(Timeouts::all(LIMIT))
}

/// Runs `call` under the wall-clock guard and checks it failed with a timeout naming `url`.
async fn expect_timeout<T: std::fmt::Debug>(
    url: &str,
    what: &str,
    call: impl Future<Output = Result<T, ClientError>>,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for more than {BOUND:?}"));
    let elapsed = started.elapsed();
    let error = result.expect_err("a silent backend cannot succeed");
    let message = error.to_string();
    assert!(elapsed < BOUND, "{what} took {elapsed:?}");
    assert!(
        matches!(&error, ClientError::Timeout { limit, .. } if *limit == LIMIT),
        "{what}: {error:?}"
    );
    assert!(error.is_transient(), "{what}: a timeout is worth retrying");
    assert!(message.contains("did not answer"), "{what}: {message}");
    assert!(message.contains(url), "{what}: {message}");
}

#[tokio::test]
async fn system_stats_times_out() {
    let url = silent_listener().await;
    let client = ComfyClient::new(&url, short_options()).expect("client");
    expect_timeout(&url, "system_stats", client.system_stats()).await;
}

#[tokio::test]
async fn object_info_times_out() {
    let url = silent_listener().await;
    let client = ComfyClient::new(&url, short_options()).expect("client");
    expect_timeout(&url, "object_info", client.object_info()).await;
    expect_timeout(&url, "object_info_text", client.object_info_text()).await;
}

#[tokio::test]
async fn queue_prompt_times_out() {
    let url = silent_listener().await;
    let client = ComfyClient::new(&url, short_options()).expect("client");
    let request = PromptRequest {
        prompt: json!({}),
        client_id: "silent-test".to_owned(),
        prompt_id: "00000000-0000-0000-0000-000000000000".to_owned(),
        extra_data: None,
        front: false,
        number: None,
        partial_execution_targets: None,
    };
    expect_timeout(&url, "queue_prompt", client.queue_prompt(&request)).await;
}

#[tokio::test]
async fn upload_times_out() {
    let url = silent_listener().await;
    let client = ComfyClient::new(&url, short_options()).expect("client");
    // Larger than the socket buffers would hold if the listener stopped reading: the body streams.
    let bytes = vec![0u8; 4 << 20];
    let upload = client.upload_image(bytes, "silent.png", "", UploadKind::Input, false);
    expect_timeout(&url, "upload_image", upload).await;
}

#[tokio::test]
async fn view_times_out() {
    let url = silent_listener().await;
    let client = ComfyClient::new(&url, short_options()).expect("client");
    let file = FileRef {
        filename: "silent.png".to_owned(),
        subfolder: String::new(),
        kind: "output".to_owned(),
    };
    expect_timeout(&url, "view", client.view(&file, None, 1 << 30)).await;
}

#[tokio::test]
async fn the_message_names_backend_call_and_limit() {
    let url = silent_listener().await;
    let client = ComfyClient::new(&url, short_options()).expect("client");
    let error = tokio::time::timeout(BOUND, client.system_stats())
        .await
        .expect("bounded")
        .expect_err("silent");
    assert_eq!(
        error.to_string(),
        format!("ComfyUI at {url} did not answer GET /system_stats within 300 ms")
    );
}

#[test]
fn default_limits_are_seconds_not_minutes() {
    let defaults = ClientOptions::default().timeouts;
    assert_eq!(defaults, Timeouts::default());
    assert_eq!(defaults.connect, Duration::from_secs(5));
    assert_eq!(defaults.control, Duration::from_secs(10));
    assert_eq!(defaults.catalog, Duration::from_secs(60));
    assert_eq!(defaults.submit, Duration::from_secs(30));
    assert_eq!(defaults.transfer_idle, Duration::from_secs(30));
    assert_eq!(defaults.websocket, Duration::from_secs(10));
}

#[tokio::test]
async fn backend_reports_a_silent_websocket() {
    let url = silent_listener().await;
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let options = BackendOptions {
        client: short_options(),
        ..BackendOptions::default()
    };
    let backend = Backend::start(&url, options, cancel.clone(), &tracker).expect("backend");
    let reported = tokio::time::timeout(BOUND, async {
        loop {
            let state = backend.connection();
            if let Some(error) = state.last_error {
                return (state.connected, error);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    cancel.cancel();
    let (connected, error) = reported.expect("the actor reports the failed connect within the bound");
    assert!(!connected);
    assert!(error.contains("did not answer"), "{error}");
    assert!(error.contains(&url), "{error}");
}
