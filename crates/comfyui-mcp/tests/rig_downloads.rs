//! The HTTP transport's download route against the rig: `comfyui-mcp serve --http` streams a
//! backend's file whole at `/outputs/<backend>/<type>/<subfolder>/<file>`, byte for byte with
//! its length and type, behind the bearer token, answering loopback host names only; a file the
//! backend lacks is a 404 and a path out of ComfyUI's folders a 400. Needs `COMFYUI_MCP_TEST_URL`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use comfy_engine::Engine;
use comfy_engine::outputs::UploadRequest;
use comfyui_mcp::settings::Settings;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::timeout;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
const TOKEN: &str = "download-route-test-token";

/// The built binary serving HTTP on a free loopback port, against the rig.
struct Served {
    _child: Child,
    address: String,
}

async fn serve() -> Served {
    let home = std::env::temp_dir().join(format!("comfyui-mcp-downloads-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&home).expect("a scratch home");
    let mut child = Command::new(env!("CARGO_BIN_EXE_comfyui-mcp"))
        .args(["serve", "--http", "127.0.0.1:0"])
        .env_clear()
        .env("HOME", &home)
        .env("COMFYUI_URL", test_support::comfyui_url())
        .env("COMFYUI_MCP_DATABASE", home.join("db.sqlite"))
        .env("COMFYUI_MCP_HTTP_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = timeout(ANSWER_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.expect("stderr is readable") {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                return rest.trim_end_matches("/mcp").to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("it listens in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served {
        _child: child,
        address,
    }
}

/// One GET on a new connection: status, head and the raw body.
async fn get(address: &str, path: &str, host: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let authorization = token.map_or_else(String::new, |token| format!("Authorization: Bearer {token}\r\n"));
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    timeout(ANSWER_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read the answer");
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status");
    (status, head, raw[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Dechunks a `Transfer-Encoding: chunked` body (the route streams when it has no length).
fn body_of(head: &str, body: Vec<u8>) -> Vec<u8> {
    if header(head, "transfer-encoding") != Some("chunked") {
        return body;
    }
    let (mut out, mut rest) = (Vec::new(), body.as_slice());
    loop {
        let line_end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("a chunk size");
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).expect("hex"), 16).expect("hex");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[line_end + 4 + size..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_file_streams_whole_over_http() {
    let settings = Settings::resolve(
        &comfyui_mcp::settings::CommandLineSettings {
            comfyui_urls: vec![test_support::comfyui_url()],
            ..Default::default()
        },
        &|_| None,
    )
    .expect("settings");
    let engine = Engine::start(settings.engine.clone())
        .await
        .expect("the engine starts");
    // A PNG of noise, about 200 KB: many chunks on the way through.
    let png = common::noise_png(256);
    let uploaded = engine
        .upload_image(UploadRequest {
            bytes: png.clone(),
            filename: format!("download-{}.png", uuid::Uuid::new_v4()),
            subfolder: "mcp-downloads".to_owned(),
            overwrite: false,
            mask_for: None,
            backend: None,
        })
        .await
        .expect("uploaded");
    let path = format!("/outputs/backend-1/input/mcp-downloads/{}", uploaded.filename);

    let served = serve().await;
    let host = served.address.clone();
    let (status, head, body) = get(&served.address, &path, &host, Some(TOKEN)).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "content-type"), Some("image/png"), "{head}");
    let body = body_of(&head, body);
    assert_eq!(body.len(), png.len(), "{head}");
    assert!(body == png, "the bytes that went in come out");

    // The same bearer token as /mcp.
    let (status, _, _) = get(&served.address, &path, &host, None).await;
    assert_eq!(status, 401);
    // A page that rebinds its domain to 127.0.0.1 gets nothing.
    let (status, _, _) = get(&served.address, &path, "evil.example", Some(TOKEN)).await;
    assert_eq!(status, 403);
    // A file the backend lacks, and a path out of ComfyUI's folders.
    let missing = "/outputs/backend-1/input/mcp-downloads/no-such-file.png";
    let (status, _, _) = get(&served.address, missing, &host, Some(TOKEN)).await;
    assert_eq!(status, 404);
    let escape = "/outputs/backend-1/input/../secrets.png";
    let (status, _, body) = get(&served.address, escape, &host, Some(TOKEN)).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = get(
        &served.address,
        "/outputs/no-backend/input/x.png",
        &host,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 404);
}
