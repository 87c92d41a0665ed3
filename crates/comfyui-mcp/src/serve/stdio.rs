//! MCP over stdin/stdout: newline-delimited JSON-RPC behind a line filter that answers what it
//! cannot use (unparsable lines, non-messages, lines over 16 MiB) instead of leaving the client
//! waiting.

use std::borrow::Cow;
use std::io;
use std::sync::Arc;

use anyhow::Context as _;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{RoleServer, ServiceExt};
use serde::Serialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::jsonrpc::{INVALID_REQUEST, PARSE_ERROR, error_answer, is_usable_id};
use super::signal::shutdown_signal;
use crate::mcp::ComfyServer;
use crate::settings::Settings;
use comfy_engine::Engine;

/// Serves MCP on stdin/stdout until the client closes the stream or a signal arrives.
pub async fn stdio(engine: Arc<Engine>, settings: Arc<Settings>) -> anyhow::Result<()> {
    let server = ComfyServer::new(engine, settings, true);
    // The pipe flavour keeps a pending stdin read cancellable, so a signal ends the process even
    // while the client is silent.
    let (input, output) = rmcp::transport::stdio_pipes();
    let service = server
        .serve(LineTransport::start(input, output, MAX_LINE_BYTES))
        .await
        .context("MCP initialization over stdio failed")?;
    tokio::select! {
        result = service.waiting() => { result.context("MCP stdio session failed")?; }
        () = shutdown_signal() => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stdio: newline-delimited JSON-RPC that answers what it cannot use.

/// Longest stdin line, newline included: rmcp's own cap, which matches its HTTP client's.
const MAX_LINE_BYTES: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;
/// RFC 8259 section 8.1 lets a parser ignore a leading byte order mark; some clients send one.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The stdio transport. rmcp's own drops unparsable and oversized lines without a word, and the
/// client then waits forever for an answer; this one answers them with a JSON-RPC error.
///
/// A reader task owns stdin and hands usable messages over a channel, which keeps `receive`
/// cancellation safe (rmcp polls it inside `select!`). Every line to stdout, rmcp's messages and the
/// reader's error answers alike, is written whole under one lock, so they never interleave.
struct LineTransport<W> {
    incoming: mpsc::Receiver<ClientJsonRpcMessage>,
    output: Arc<Mutex<W>>,
    /// Stops the reader task when the transport goes away.
    _reader: tokio_util::sync::DropGuard,
}

impl<W: AsyncWrite + Send + Unpin + 'static> LineTransport<W> {
    fn start<R: AsyncRead + Send + Unpin + 'static>(input: R, output: W, max_line_bytes: usize) -> Self {
        let output = Arc::new(Mutex::new(output));
        // A small buffer: a client that floods stdin waits for the server instead of filling memory.
        let (sender, incoming) = mpsc::channel(16);
        let lines = BoundedLines::new(input, max_line_bytes);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let reader = read_messages(lines, output.clone(), sender);
        TaskTracker::new().spawn(async move {
            tokio::select! {
                () = stopped.cancelled() => {}
                () = reader => {}
            }
        });
        LineTransport {
            incoming,
            output,
            _reader: stop.drop_guard(),
        }
    }
}

impl<W: AsyncWrite + Send + Unpin + 'static> Transport<RoleServer> for LineTransport<W> {
    type Error = io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), io::Error>> + Send + 'static {
        let output = self.output.clone();
        async move { write_line(&output, &item).await }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ClientJsonRpcMessage>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), io::Error> {
        self.incoming.close();
        Ok(())
    }
}

/// Writes `message` and a newline in one go under the output lock, then flushes.
async fn write_line<W: AsyncWrite + Unpin>(output: &Mutex<W>, message: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    let mut output = output.lock().await;
    output.write_all(&line).await?;
    output.flush().await
}

/// The reader task: forwards messages to rmcp and answers the lines it cannot forward, until stdin
/// closes, stdout fails, or rmcp stops listening.
async fn read_messages<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut lines: BoundedLines<R>,
    output: Arc<Mutex<W>>,
    sender: mpsc::Sender<ClientJsonRpcMessage>,
) {
    let max_line_bytes = lines.max_bytes;
    loop {
        let verdict = match lines.next_line().await {
            Ok(Some(LineRead::Complete(line))) => judge_line(line),
            Ok(Some(LineRead::Oversized(prefix))) => answer_oversized(prefix, max_line_bytes),
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot read stdin; ending the MCP session");
                return;
            }
        };
        match verdict {
            Verdict::Forward(message) => {
                if sender.send(*message).await.is_err() {
                    return;
                }
            }
            Verdict::Answer(answer) => {
                if let Err(error) = write_line(&output, &answer).await {
                    tracing::warn!(%error, "cannot write to stdout; ending the MCP session");
                    return;
                }
            }
            Verdict::Ignore => {}
        }
    }
}

/// What to do with one line of stdin.
#[derive(Debug)]
enum Verdict {
    /// A JSON-RPC message for rmcp (boxed: it is far larger than the other verdicts).
    Forward(Box<ClientJsonRpcMessage>),
    /// An error answer to write back.
    Answer(Value),
    /// Blank lines, and notifications nobody should answer (JSON-RPC never answers a notification).
    Ignore,
}

/// Logs never quote the line: it may carry tool arguments, passwords included.
fn judge_line(line: &[u8]) -> Verdict {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let text = text.strip_prefix(UTF8_BOM).unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Ignore;
    }
    let error = match serde_json::from_slice::<ClientJsonRpcMessage>(text) {
        Ok(message) => return Verdict::Forward(Box::new(message)),
        Err(error) => error,
    };
    if error.is_syntax() || error.is_eof() {
        // Syntax errors name a position, never the text, so they may be logged.
        tracing::warn!(bytes = text.len(), %error, "stdin line is not JSON: answered with a JSON-RPC parse error");
        return Verdict::Answer(error_answer(
            read_id(text),
            PARSE_ERROR,
            &format!("Parse error: {error}"),
        ));
    }
    let Ok(value) = serde_json::from_slice::<Value>(text) else {
        return Verdict::Answer(error_answer(None, PARSE_ERROR, "Parse error"));
    };
    if value.get("method").is_some() && value.get("id").is_none() {
        // A notification of a kind this server does not know, or one with unusable parameters.
        tracing::debug!(bytes = text.len(), "ignoring an unusable notification on stdin");
        return Verdict::Ignore;
    }
    // Data errors may quote values from the message: the client gets them, the log does not.
    tracing::warn!(
        bytes = text.len(),
        "stdin line is not a JSON-RPC message: answered with an invalid request error"
    );
    let id = value.get("id").cloned().filter(is_usable_id);
    Verdict::Answer(error_answer(
        id,
        INVALID_REQUEST,
        &format!("Invalid request: {error}"),
    ))
}

fn answer_oversized(prefix: &[u8], max_bytes: usize) -> Verdict {
    tracing::warn!(
        max_bytes,
        "stdin line longer than the limit: answered with a JSON-RPC parse error, the rest of the line is dropped"
    );
    let message = format!("Parse error: message longer than {max_bytes} bytes, not read");
    Verdict::Answer(error_answer(read_id(prefix), PARSE_ERROR, &message))
}

/// The `id` member of a top-level JSON object, read as far as the text is valid JSON, so a request
/// that is cut off or broken after its id still gets an answer the client can match.
fn read_id(text: &[u8]) -> Option<Value> {
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    // The error is expected (that is why we are here); what was found before it is what counts.
    let _ = IdFinder { found: &mut found }.deserialize(&mut deserializer);
    found.filter(is_usable_id)
}

/// Walks a JSON object's members, keeping `id` and skipping the rest without building them.
struct IdFinder<'a> {
    found: &'a mut Option<Value>,
}

impl<'de> DeserializeSeed<'de> for IdFinder<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdFinder<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "id" {
                *self.found = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// One line read by [`BoundedLines`].
#[derive(Debug, PartialEq)]
enum LineRead<'a> {
    /// A whole line, with its newline unless stdin ended without one.
    Complete(&'a [u8]),
    /// The first `max_bytes` of a longer line; the rest is dropped as it arrives.
    Oversized(&'a [u8]),
}

/// Newline-delimited lines that never hold more than `max_bytes` in memory.
struct BoundedLines<R> {
    input: BufReader<R>,
    line: Vec<u8>,
    max_bytes: usize,
    /// Inside a line already reported as oversized: drop bytes up to its newline.
    discarding: bool,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    fn new(input: R, max_bytes: usize) -> Self {
        BoundedLines {
            input: BufReader::new(input),
            line: Vec::new(),
            max_bytes,
            discarding: false,
        }
    }

    /// The next line; `None` at the end of input. An oversized line is reported as soon as it
    /// crosses the limit, so its client hears back without sending the rest.
    async fn next_line(&mut self) -> io::Result<Option<LineRead<'_>>> {
        self.line.clear();
        loop {
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                let last = !self.discarding && !self.line.is_empty();
                return Ok(last.then_some(LineRead::Complete(&self.line)));
            }
            let newline = available.iter().position(|byte| *byte == b'\n');
            let end = newline.map_or(available.len(), |index| index + 1);
            if self.discarding {
                self.discarding = newline.is_none();
                self.input.consume(end);
                continue;
            }
            let room = self.max_bytes - self.line.len();
            if end > room {
                self.line.extend_from_slice(&available[..room]);
                self.discarding = newline.is_none();
                self.input.consume(end);
                return Ok(Some(LineRead::Oversized(&self.line)));
            }
            self.line.extend_from_slice(&available[..end]);
            self.input.consume(end);
            if newline.is_some() {
                return Ok(Some(LineRead::Complete(&self.line)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer_of(verdict: Verdict) -> Value {
        match verdict {
            Verdict::Answer(answer) => answer,
            other => panic!("expected an error answer, got {other:?}"),
        }
    }

    #[test]
    fn judges_lines() {
        let ping = br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
        assert!(matches!(judge_line(ping), Verdict::Forward(_)));
        assert!(matches!(judge_line(b" \r\n"), Verdict::Ignore));
        let garbage = answer_of(judge_line(b"not json\n"));
        assert_eq!(garbage["error"]["code"], PARSE_ERROR);
        assert_eq!(garbage["id"], Value::Null);
        let cut = answer_of(judge_line(br#"{"jsonrpc":"2.0","id":"a-1","method":"#));
        assert_eq!(cut["id"], "a-1");
        let shapeless = answer_of(judge_line(br#"{"jsonrpc":"2.0","id":4,"result":1,"method":9}"#));
        assert_eq!(shapeless["error"]["code"], INVALID_REQUEST);
        // Notifications are never answered, not even unusable ones.
        let unusable = br#"{"jsonrpc":"1.0","method":"notifications/initialized"}"#;
        assert!(matches!(judge_line(unusable), Verdict::Ignore));
    }

    #[test]
    fn reads_only_a_top_level_id() {
        assert_eq!(read_id(br#"{"params":{"id":5},"id":6"#), Some(json!(6)));
        assert_eq!(read_id(br#"{"params":{"id":5}"#), None);
        assert_eq!(read_id(br#"{"id":{"nested":1}}"#), None);
        assert_eq!(read_id(b"[1,2"), None);
    }

    #[tokio::test]
    async fn bounds_lines_and_drops_the_rest_of_a_long_one() {
        let input: &[u8] = b"short\n0123456789abcdef-tail\nnext\nlast";
        let mut lines = BoundedLines::new(input, 8);
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(LineRead::Complete(b"short\n"))
        );
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(LineRead::Oversized(b"01234567"))
        );
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(LineRead::Complete(b"next\n"))
        );
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(LineRead::Complete(b"last"))
        );
        assert_eq!(lines.next_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn answers_what_it_cannot_forward_and_forwards_the_rest() {
        let (mut client_input, server_input) = tokio::io::duplex(1 << 16);
        let (server_output, client_output) = tokio::io::duplex(1 << 16);
        let mut transport = LineTransport::start(server_input, server_output, 64);
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\",\"p\":\"{}\"}}\n",
            "x".repeat(100)
        );
        let input = format!("garbage\n{long}{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}}\n");
        client_input.write_all(input.as_bytes()).await.unwrap();
        let forwarded = transport.receive().await.expect("the ping is forwarded");
        assert!(serde_json::to_string(&forwarded).unwrap().contains("\"id\":9"));
        let mut answers = BufReader::new(client_output).lines();
        let first: Value = serde_json::from_str(&answers.next_line().await.unwrap().unwrap()).unwrap();
        let second: Value = serde_json::from_str(&answers.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(
            (first["id"].clone(), first["error"]["code"].clone()),
            (Value::Null, json!(PARSE_ERROR))
        );
        assert_eq!(
            (second["id"].clone(), second["error"]["code"].clone()),
            (json!(8), json!(PARSE_ERROR))
        );
    }
}
