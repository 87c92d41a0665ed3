//! A ComfyUI that sends a file larger than the caller allows (a long video, a batch of large
//! images): `/view` must refuse it on the announced length before reading a byte of the body, or,
//! when no length is announced, stop as soon as the bytes read pass the limit, never holding the
//! whole file. The server here writes real HTTP/1.1 answers as aiohttp does (a `Content-Length`
//! for files, or chunked transfer), and counts what it managed to send.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use comfy_api::{ClientError, ClientOptions, ComfyClient, FileRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MEBIBYTE: usize = 1024 * 1024;

/// Serves every request with a `size`-byte body, announced or chunked; returns its URL and the
/// count of body bytes written so far.
async fn large_file_server(size: usize, announce_length: bool) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let header = if announce_length {
                    format!("HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {size}\r\n\r\n")
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nTransfer-Encoding: chunked\r\n\r\n"
                        .to_owned()
                };
                if stream.write_all(header.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![7u8; 64 * 1024];
                let mut sent = 0;
                while sent < size {
                    let part = &chunk[..chunk.len().min(size - sent)];
                    let result = if announce_length {
                        stream.write_all(part).await
                    } else {
                        let framed = [format!("{:x}\r\n", part.len()).as_bytes(), part, b"\r\n"].concat();
                        stream.write_all(&framed).await
                    };
                    if result.is_err() {
                        return;
                    }
                    sent += part.len();
                    counter.fetch_add(part.len() as u64, Ordering::SeqCst);
                }
                if !announce_length {
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    (format!("http://{address}"), written)
}

fn video() -> FileRef {
    FileRef {
        filename: "clip_00001.mp4".to_owned(),
        subfolder: String::new(),
        kind: "output".to_owned(),
    }
}

#[tokio::test]
async fn an_announced_length_over_the_limit_is_refused_before_the_body() {
    let (url, written) = large_file_server(256 * MEBIBYTE, true).await;
    let client = ComfyClient::new(&url, ClientOptions::default()).expect("client");
    let error = client
        .view(&video(), None, MEBIBYTE as u64)
        .await
        .expect_err("a 256 MiB file over a 1 MiB limit");
    let ClientError::TooLarge { url: at, limit, size } = &error else {
        panic!("expected TooLarge, got {error:?}");
    };
    assert!(at.contains("/view"), "{at}");
    assert_eq!(*limit, MEBIBYTE as u64);
    assert_eq!(*size, Some(256 * MEBIBYTE as u64));
    assert_eq!(
        error.to_string(),
        format!("{at} is 256.0 MiB long (the limit is 1.0 MiB)")
    );
    // The socket buffers hold a few MiB at most: the body was never read through.
    assert!(
        written.load(Ordering::SeqCst) < 64 * MEBIBYTE as u64,
        "sent {} bytes",
        written.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn an_unannounced_body_stops_at_the_limit() {
    let (url, written) = large_file_server(256 * MEBIBYTE, false).await;
    let client = ComfyClient::new(&url, ClientOptions::default()).expect("client");
    let error = client
        .view(&video(), None, 2 * MEBIBYTE as u64)
        .await
        .expect_err("a chunked 256 MiB body over a 2 MiB limit");
    assert!(
        matches!(error, ClientError::TooLarge { size: None, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("larger than allowed (the limit is 2.0 MiB)"),
        "{error}"
    );
    assert!(
        written.load(Ordering::SeqCst) < 64 * MEBIBYTE as u64,
        "sent {} bytes",
        written.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_body_within_the_limit_arrives_whole() {
    for announce_length in [true, false] {
        let (url, _) = large_file_server(3 * MEBIBYTE + 17, announce_length).await;
        let client = ComfyClient::new(&url, ClientOptions::default()).expect("client");
        let download = client
            .view(&video(), None, 3 * MEBIBYTE as u64 + 17)
            .await
            .expect("exactly at the limit");
        assert_eq!(download.bytes.len(), 3 * MEBIBYTE + 17);
        assert_eq!(download.content_type, "video/mp4");
    }
}
