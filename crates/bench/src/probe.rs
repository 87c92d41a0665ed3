//! A timing proxy between the server and ComfyUI, for the diagnostic runs that show where the
//! server's time goes. It forwards bytes unchanged and notes, with the wall-clock time it saw
//! them, every HTTP request the server makes, every response head, and each websocket frame that
//! ends a prompt (`executing` with `node: null`). The extra hop costs a little, so the headline
//! figures never go through it.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::direct::wall_clock_milliseconds;

/// Bytes kept from the end of one read to find patterns split across reads.
const CARRY: usize = 512;

/// What the proxy saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Sighting {
    /// A request head from the server, e.g. `GET /history/abc`; `path` has no query string.
    Request {
        method: String,
        path: String,
        query: String,
    },
    /// The status line of a response from ComfyUI.
    Response { status: String },
    /// ComfyUI's websocket frame that ends a prompt.
    PromptEnded { prompt_id: String },
}

#[derive(Debug, Clone)]
pub struct Event {
    pub at_milliseconds: f64,
    pub sighting: Sighting,
}

pub struct TimingProxy {
    pub url: String,
    events: Arc<Mutex<Vec<Event>>>,
    acceptor: JoinHandle<()>,
}

impl Drop for TimingProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl TimingProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream_url`'s host.
    pub async fn start(upstream_url: &str) -> anyhow::Result<TimingProxy> {
        let authority = upstream_url
            .strip_prefix("http://")
            .context("the timing proxy needs an http:// ComfyUI URL")?
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen for the timing proxy")?;
        let address = listener.local_addr().context("the timing proxy has no address")?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio::spawn(accept(listener, authority, events.clone()));
        Ok(TimingProxy {
            url: format!("http://{address}"),
            events,
            acceptor,
        })
    }

    /// Everything seen between `from` and `to` (wall-clock milliseconds), in order.
    pub fn events_between(&self, from: f64, to: f64) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .events
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|event| event.at_milliseconds >= from && event.at_milliseconds <= to)
            .collect();
        events.sort_by(|left, right| left.at_milliseconds.total_cmp(&right.at_milliseconds));
        events
    }
}

async fn accept(listener: TcpListener, upstream: String, events: Arc<Mutex<Vec<Event>>>) {
    while let Ok((client, _)) = listener.accept().await {
        let upstream = upstream.clone();
        let events = events.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let outward = pump(client_read, server_write, Direction::ToComfyUi, events.clone());
            let inward = pump(server_read, client_write, Direction::FromComfyUi, events);
            let _ = tokio::join!(outward, inward);
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToComfyUi,
    FromComfyUi,
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    direction: Direction,
    events: Arc<Mutex<Vec<Event>>>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut window: Vec<u8> = Vec::new();
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let at_milliseconds = wall_clock_milliseconds();
        let carried = window.len();
        window.extend_from_slice(&buffer[..read]);
        let sightings = scan(&window, carried, direction);
        if !sightings.is_empty()
            && let Ok(mut events) = events.lock()
        {
            events.extend(sightings.into_iter().map(|sighting| Event {
                at_milliseconds,
                sighting,
            }));
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
        let keep = window.len().min(CARRY);
        window.drain(..window.len() - keep);
    }
    let _ = to.shutdown().await;
}

/// Patterns in `window` that end after its first `carried` bytes (those were scanned before).
fn scan(window: &[u8], carried: usize, direction: Direction) -> Vec<Sighting> {
    let mut found = Vec::new();
    match direction {
        Direction::ToComfyUi => {
            for method in ["GET", "POST", "PUT", "DELETE"] {
                let pattern = format!("{method} /");
                for start in positions(window, pattern.as_bytes()) {
                    let rest = &window[start + method.len() + 1..];
                    let Some(end) = find(rest, b" HTTP/1.1\r\n") else {
                        continue;
                    };
                    if start + method.len() + 1 + end + 11 <= carried {
                        continue;
                    }
                    let target = String::from_utf8_lossy(&rest[..end]);
                    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                    found.push((
                        start,
                        Sighting::Request {
                            method: method.to_owned(),
                            path: path.to_owned(),
                            query: query.to_owned(),
                        },
                    ));
                }
            }
        }
        Direction::FromComfyUi => {
            for start in positions(window, b"HTTP/1.1 ") {
                let rest = &window[start..];
                let Some(end) = find(rest, b"\r\n") else {
                    continue;
                };
                if start + end + 2 <= carried {
                    continue;
                }
                let status = String::from_utf8_lossy(&rest[9..end]).into_owned();
                found.push((start, Sighting::Response { status }));
            }
            for start in positions(window, b"\"node\": null") {
                let rest = &window[start..];
                let Some(id_start) = find(rest, b"\"prompt_id\": \"") else {
                    continue;
                };
                let id_start = id_start + 14;
                let Some(id_length) = rest.get(id_start..).and_then(|tail| find(tail, b"\"")) else {
                    continue;
                };
                if start + id_start + id_length < carried {
                    continue;
                }
                let prompt_id = String::from_utf8_lossy(&rest[id_start..id_start + id_length]).into_owned();
                found.push((start, Sighting::PromptEnded { prompt_id }));
            }
        }
    }
    found.sort_by_key(|(start, _)| *start);
    found.into_iter().map(|(_, sighting)| sighting).collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn positions<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(move |(_, window)| *window == needle)
        .map(|(position, _)| position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, query: &str) -> Sighting {
        Sighting::Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
        }
    }

    #[test]
    fn finds_requests_once_across_reads() {
        let first = b"POST /prompt HTTP/1.1\r\nhost: x\r\n\r\n{}GET /history/ab".to_vec();
        assert_eq!(
            scan(&first, 0, Direction::ToComfyUi),
            vec![request("POST", "/prompt", "")]
        );
        let mut window = first.clone();
        window.extend_from_slice(b"c HTTP/1.1\r\n\r\nGET /view?filename=a.png HTTP/1.1\r\n");
        assert_eq!(
            scan(&window, first.len(), Direction::ToComfyUi),
            vec![
                request("GET", "/history/abc", ""),
                request("GET", "/view", "filename=a.png"),
            ]
        );
    }

    #[test]
    fn finds_prompt_ends_and_responses() {
        let frame = b"HTTP/1.1 200 OK\r\n\x81\x50{\"type\": \"executing\", \"data\": {\"node\": null, \"display_node\": null, \"prompt_id\": \"p-1\"}}";
        assert_eq!(
            scan(frame, 0, Direction::FromComfyUi),
            vec![
                Sighting::Response {
                    status: "200 OK".to_owned()
                },
                Sighting::PromptEnded {
                    prompt_id: "p-1".to_owned()
                },
            ]
        );
        assert!(scan(frame, frame.len(), Direction::FromComfyUi).is_empty());
    }

    #[tokio::test]
    async fn forwards_bytes_and_notes_requests() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_address = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = upstream.accept().await.unwrap();
            let mut received = vec![0u8; 1024];
            let read = socket.read(&mut received).await.unwrap();
            assert!(received[..read].starts_with(b"GET /queue"));
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            socket.write_all(answer).await.unwrap();
        });
        let proxy = TimingProxy::start(&format!("http://{upstream_address}"))
            .await
            .unwrap();
        let before = wall_clock_milliseconds();
        let address = proxy.url.trim_start_matches("http://").to_owned();
        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET /queue HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.ends_with(b"\r\n\r\nok"));
        let sightings: Vec<Sighting> = proxy
            .events_between(before, wall_clock_milliseconds())
            .into_iter()
            .map(|event| event.sighting)
            .collect();
        let ok = Sighting::Response {
            status: "200 OK".to_owned(),
        };
        assert_eq!(sightings, vec![request("GET", "/queue", ""), ok]);
    }
}
