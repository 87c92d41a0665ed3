//! Hostile input on the transports of the built binary: unparsable and oversized lines on stdio,
//! a blank HTTP token, slow HTTP headers, too many HTTP sessions, and secrets in debug logs. No
//! ComfyUI is needed: the configured URL is a closed loopback port. Every wait is bounded and every
//! connection goes to 127.0.0.1.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Longest wait for any one answer; generous for a loaded two-core machine.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"transport-faults","version":"0"}}}"#;

/// A loopback port nothing listens on (bound once by us, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn scratch_directory(label: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("comfyui-mcp-{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&directory).expect("scratch directory");
    directory
}

/// The binary with a configuration that reaches no ComfyUI and reads no user files, plus `extra`
/// environment variables.
fn command(label: &str, arguments: &[&str], extra: &[(&str, &str)]) -> Command {
    let home = scratch_directory(label);
    let mut command = Command::new(env!("CARGO_BIN_EXE_comfyui-mcp"));
    command
        .args(arguments)
        .env_clear()
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("COMFYUI_URL", format!("http://127.0.0.1:{}", closed_port()))
        .env("COMFYUI_MCP_DATABASE", home.join("comfyui-mcp.sqlite"))
        .envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Collects a child's stderr until it closes.
fn collect(mut stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stream.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// `comfyui-mcp serve` on stdio, with a line reader on its stdout.
struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
}

impl StdioServer {
    fn start(label: &str, extra: &[(&str, &str)]) -> StdioServer {
        let mut child = command(label, &["serve"], extra)
            .spawn()
            .expect("the binary starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        StdioServer {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).await.expect("write to stdin");
        stdin.write_all(b"\n").await.expect("write to stdin");
        stdin.flush().await.expect("flush stdin");
    }

    /// The next JSON message on stdout.
    async fn next_message(&mut self) -> Value {
        let line = timeout(ANSWER_TIMEOUT, self.stdout.next_line())
            .await
            .expect("the server answers in time")
            .expect("stdout is readable")
            .expect("stdout is still open");
        serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("stdout line is not JSON ({error}): {line}"))
    }

    /// Messages up to and including the answer with `id`.
    async fn messages_until_answer(&mut self, id: i64) -> Vec<Value> {
        let mut messages = Vec::new();
        loop {
            let message = self.next_message().await;
            let done = message["id"] == json!(id) && message.get("method").is_none();
            messages.push(message);
            if done {
                return messages;
            }
        }
    }

    /// Closes stdin, waits for the exit and returns everything the server logged.
    async fn finish(mut self) -> String {
        drop(self.stdin.take());
        let exited = timeout(ANSWER_TIMEOUT, self.child.wait()).await;
        if exited.is_err() {
            let _ = self.child.kill().await;
        }
        timeout(ANSWER_TIMEOUT, self.stderr)
            .await
            .expect("stderr closes")
            .unwrap_or_default()
    }
}

fn parse_errors(messages: &[Value]) -> Vec<&Value> {
    messages
        .iter()
        .filter(|message| message["error"]["code"] == json!(-32700))
        .collect()
}

#[tokio::test]
async fn stdio_answers_unparsable_lines_with_parse_errors() {
    let mut server = StdioServer::start("stdio-garbage", &[]);
    server.send("this is not json").await;
    // Cut off after its id: the answer can still name the request.
    server
        .send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","par"#)
        .await;
    server.send(INITIALIZE).await;
    let messages = server.messages_until_answer(1).await;
    let errors = parse_errors(&messages);
    assert_eq!(
        errors.len(),
        2,
        "two parse errors before the initialize answer: {messages:?}"
    );
    assert_eq!(errors[0]["id"], Value::Null, "{messages:?}");
    assert_eq!(errors[0]["jsonrpc"], "2.0");
    assert_eq!(errors[1]["id"], 7, "{messages:?}");
    let initialized = messages.last().expect("the initialize answer");
    assert!(initialized["result"]["serverInfo"].is_object(), "{initialized}");
    let log = server.finish().await;
    assert!(log.contains("parse error"), "a warning on stderr: {log}");
    assert!(
        !log.contains("this is not json"),
        "the line's content stays out of the log: {log}"
    );
}

#[tokio::test]
async fn stdio_answers_an_oversized_line_and_keeps_serving() {
    let mut server = StdioServer::start("stdio-oversized", &[]);
    let mut stdin = server.stdin.take().expect("stdin");
    // 17 MiB, over the 16 MiB cap, written while the answers are read.
    let writer = tokio::spawn(async move {
        let head = br#"{"jsonrpc":"2.0","id":9,"method":"ping","params":{"padding":""#;
        stdin.write_all(head).await.expect("write to stdin");
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..17 {
            stdin.write_all(&chunk).await.expect("write to stdin");
        }
        stdin.write_all(b"\"}}\n").await.expect("write to stdin");
        stdin
            .write_all(INITIALIZE.as_bytes())
            .await
            .expect("write to stdin");
        stdin.write_all(b"\n").await.expect("write to stdin");
        stdin.flush().await.expect("flush stdin");
        stdin
    });
    let messages = server.messages_until_answer(1).await;
    server.stdin = Some(
        timeout(ANSWER_TIMEOUT, writer)
            .await
            .expect("writes finish")
            .expect("writer"),
    );
    let errors = parse_errors(&messages);
    assert_eq!(errors.len(), 1, "one error for the long line: {messages:?}");
    assert_eq!(errors[0]["id"], 9, "{messages:?}");
    assert!(
        messages.last().expect("answer")["result"].is_object(),
        "{messages:?}"
    );
    server.finish().await;
}

#[tokio::test]
async fn debug_logs_keep_tool_arguments_out() {
    let marker = "hunter2-secret-marker";
    let mut server = StdioServer::start(
        "debug-secrets",
        &[("COMFYUI_MCP_LOG", "debug"), ("COMFYUI_MCP_TOOLSETS", "all")],
    );
    server.send(INITIALIZE).await;
    server.messages_until_answer(1).await;
    server
        .send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await;
    let call = json!({
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {
            "name": "preset_share",
            "arguments": {"action": "import_code", "code": marker, "password": marker}
        }
    });
    server.send(&call.to_string()).await;
    server.messages_until_answer(2).await;
    let log = server.finish().await;
    assert!(log.contains("DEBUG"), "debug logging is on: {log}");
    assert!(
        !log.contains(marker),
        "a tool argument leaked into the log:\n{log}"
    );
}

#[tokio::test]
async fn blank_http_token_refuses_to_start() {
    let mut child = command(
        "blank-token",
        &["serve", "--http", "127.0.0.1:0"],
        &[("COMFYUI_MCP_HTTP_TOKEN", "   ")],
    )
    .spawn()
    .expect("the binary starts");
    let stderr = collect(child.stderr.take().expect("piped stderr"));
    let status = match timeout(ANSWER_TIMEOUT, child.wait()).await {
        Ok(status) => status.expect("exit status"),
        Err(_) => {
            let _ = child.kill().await;
            let log = stderr.await.unwrap_or_default();
            panic!("the server kept running with a blank token:\n{log}");
        }
    };
    let log = stderr.await.unwrap_or_default();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("COMFYUI_MCP_HTTP_TOKEN"), "{log}");
    assert!(!log.contains("listening"), "{log}");
}

/// `comfyui-mcp serve --http 127.0.0.1:0`, with the address it printed.
struct HttpServer {
    _child: Child,
    address: String,
}

impl HttpServer {
    async fn start(label: &str, extra: &[(&str, &str)]) -> HttpServer {
        let mut child = command(label, &["serve", "--http", "127.0.0.1:0"], extra)
            .spawn()
            .expect("the binary starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let address = timeout(ANSWER_TIMEOUT, async {
            while let Some(line) = stderr.next_line().await.expect("stderr is readable") {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    return rest.trim_end_matches("/mcp").to_owned();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server listens in time");
        // Keep draining stderr so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        HttpServer {
            _child: child,
            address,
        }
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    async fn exchange(&self, request: String) -> HttpAnswer {
        let mut stream = TcpStream::connect(&self.address).await.expect("connect");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the request");
        let mut raw = Vec::new();
        timeout(ANSWER_TIMEOUT, stream.read_to_end(&mut raw))
            .await
            .expect("the server finishes its answer in time")
            .expect("read the answer");
        HttpAnswer::parse(&String::from_utf8_lossy(&raw))
    }

    async fn initialize(&self) -> HttpAnswer {
        self.exchange(format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{INITIALIZE}",
            self.address,
            INITIALIZE.len()
        ))
        .await
    }

    async fn delete_session(&self, session: &str) -> HttpAnswer {
        self.exchange(format!(
            "DELETE /mcp HTTP/1.1\r\nHost: {}\r\nMcp-Session-Id: {session}\r\n\
             MCP-Protocol-Version: 2025-06-18\r\nConnection: close\r\n\r\n",
            self.address
        ))
        .await
    }
}

struct HttpAnswer {
    status: u16,
    head: String,
    body: String,
}

impl HttpAnswer {
    fn parse(raw: &str) -> HttpAnswer {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {raw:?}"));
        HttpAnswer {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    fn session(&self) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("mcp-session-id")
                .then(|| value.trim().to_owned())
        })
    }
}

#[tokio::test]
async fn http_closes_a_connection_that_never_finishes_its_headers() {
    let server = HttpServer::start(
        "slow-headers",
        &[("COMFYUI_MCP_HTTP_HEADER_TIMEOUT_SECONDS", "1")],
    )
    .await;
    let mut stream = TcpStream::connect(&server.address).await.expect("connect");
    stream
        .write_all(format!("POST /mcp HTTP/1.1\r\nHost: {}\r\n", server.address).as_bytes())
        .await
        .expect("send part of a header");
    let mut rest = Vec::new();
    let closed = timeout(Duration::from_secs(6), stream.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the connection is still open 6 s after a 1 s header timeout"
    );
}

#[tokio::test]
async fn http_refuses_sessions_beyond_the_cap_until_one_is_deleted() {
    let server = HttpServer::start("session-cap", &[("COMFYUI_MCP_HTTP_MAX_SESSIONS", "2")]).await;
    let first = server.initialize().await;
    assert_eq!(first.status, 200, "{}\n{}", first.head, first.body);
    let first_session = first.session().expect("a session id");
    let second = server.initialize().await;
    assert_eq!(second.status, 200, "{}\n{}", second.head, second.body);
    let refused = server.initialize().await;
    assert_eq!(refused.status, 503, "{}\n{}", refused.head, refused.body);
    assert!(refused.session().is_none());
    let body: Value = serde_json::from_str(&refused.body)
        .unwrap_or_else(|error| panic!("a JSON-RPC body ({error}): {}", refused.body));
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["id"], 1, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("session limit"), "{body}");
    let deleted = server.delete_session(&first_session).await;
    assert!(
        (200..300).contains(&deleted.status),
        "{}\n{}",
        deleted.head,
        deleted.body
    );
    let again = server.initialize().await;
    assert_eq!(again.status, 200, "{}\n{}", again.head, again.body);
}

/// An MCP client that introduces itself under any name it likes, as a real one can.
struct NamedClient(&'static str);

impl rmcp::ClientHandler for NamedClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::default(),
            rmcp::model::Implementation::new(self.0, "1.0"),
        )
    }
}

/// Wrong access codes count against the HTTP peer, whatever name the client gives and however
/// many sessions it opens: renaming yields no fresh budget (and cannot lock out the real client).
#[tokio::test]
async fn http_share_guessing_is_limited_per_peer_not_per_client_name() {
    use rmcp::ServiceExt as _;
    let server = HttpServer::start("share-guessing", &[("COMFYUI_MCP_TOOLSETS", "all")]).await;
    let url = format!("http://{}/mcp", server.address);
    let guess = json!({"action": "import_code", "code": "0000-0000-0000-0000-0000-0000-0000"});
    let mut last = String::new();
    for name in ["guesser-1", "guesser-2", "guesser-3", "claude-code"] {
        let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.clone());
        let client = NamedClient(name).serve(transport).await.expect("initialize");
        for _ in 0..3 {
            let request = rmcp::model::CallToolRequestParams::new("preset_share")
                .with_arguments(guess.as_object().cloned().unwrap_or_default());
            let result = timeout(ANSWER_TIMEOUT, client.call_tool(request))
                .await
                .expect("an answer in time")
                .expect("tools/call answers");
            last = serde_json::to_string(&result.content).unwrap_or_default();
        }
        let _ = client.cancel().await;
    }
    // 12 wrong guesses from one peer over four sessions and names; the limit is 10 per window.
    assert!(last.contains("too many failed attempts"), "{last}");
}
