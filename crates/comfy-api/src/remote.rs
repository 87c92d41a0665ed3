//! The one HTTP call that does not go to ComfyUI: fetching an input (an image, a video, an
//! audio clip) that a caller names by URL, so it can be staged on the backend. The caller is not
//! trusted: only `http`/`https`, no credentials in the URL, every address the name resolves to
//! is checked (no loopback, private, link-local, shared, multicast or unspecified address unless
//! the operator allows private networks), the connection goes to the address that was checked
//! (a second DNS answer cannot swap it), each redirect is checked the same way, and the body is
//! read up to a size limit and within the transfer timeouts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::StatusCode;
use url::Url;

use crate::timeouts::Timeouts;

/// Most redirects followed.
const MAXIMUM_REDIRECTS: usize = 5;

/// Longest one request may take, body included: a server that trickles bytes cannot hold a call
/// open for long (the idle limit alone would let it).
const MAXIMUM_REQUEST_TIME: Duration = Duration::from_secs(120);

/// What can go wrong fetching an input by URL; each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("refused URL {url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("cannot fetch {url}: {message}")]
    Failed { url: String, message: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} is larger than the {limit} bytes an input may have")]
    TooLarge { url: String, limit: u64 },
}

/// A fetched input: its bytes, the type the server declared, and the file name in its path.
#[derive(Debug)]
pub struct FetchedInput {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    /// The URL the bytes came from, after redirects.
    pub final_url: String,
}

/// Fetches `url` within `limit` bytes; `allow_private` lets it reach loopback and private
/// networks (for an operator whose inputs live there).
pub async fn fetch_input(
    url: &str,
    limit: u64,
    allow_private: bool,
    timeouts: &Timeouts,
) -> Result<FetchedInput, FetchError> {
    let mut current = parse(url)?;
    for _ in 0..=MAXIMUM_REDIRECTS {
        let address = checked_address(&current, allow_private).await?;
        let host = current.host_str().unwrap_or_default().to_owned();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.transfer_idle)
            .timeout(MAXIMUM_REQUEST_TIME)
            .resolve(&host, address)
            .no_proxy()
            .build()
            .map_err(|error| failed(&current, error))?;
        let mut response = client
            .get(current.clone())
            .send()
            .await
            .map_err(|error| failed(&current, error))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| FetchError::Failed {
                    url: current.to_string(),
                    message: format!("a {status} redirect without a Location"),
                })?;
            let next = current.join(location).map_err(|error| FetchError::Refused {
                url: current.to_string(),
                reason: format!("an unreadable redirect: {error}"),
            })?;
            current = parse(next.as_str())?;
            continue;
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status {
                url: current.to_string(),
                status: status.as_u16(),
            });
        }
        let too_large = || FetchError::TooLarge {
            url: current.to_string(),
            limit,
        };
        if response.content_length().is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.split(';').next().unwrap_or(value).trim().to_owned());
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| failed(&current, error))? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        let file_name = current
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .filter(|name| !name.is_empty())
            .map(str::to_owned);
        return Ok(FetchedInput {
            bytes,
            content_type,
            file_name,
            final_url: current.to_string(),
        });
    }
    Err(FetchError::Refused {
        url: url.to_owned(),
        reason: format!("more than {MAXIMUM_REDIRECTS} redirects"),
    })
}

fn failed(url: &Url, error: reqwest::Error) -> FetchError {
    let message = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        message
    };
    FetchError::Failed {
        url: url.to_string(),
        message,
    }
}

fn parse(raw: &str) -> Result<Url, FetchError> {
    let refused = |reason: &str| FetchError::Refused {
        url: raw.chars().take(300).collect(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw).map_err(|error| refused(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused("only http and https URLs are fetched"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(FetchError::Refused {
            url: shown.to_string(),
            reason: "credentials in the URL are not sent".to_owned(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refused("the URL has no host"));
    }
    Ok(url)
}

/// The address to connect to: every address the host resolves to must be public (or
/// `allow_private`), so no answer among several can point inside.
async fn checked_address(url: &Url, allow_private: bool) -> Result<SocketAddr, FetchError> {
    let refused = |reason: String| FetchError::Refused {
        url: url.to_string(),
        reason,
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(address)) => vec![SocketAddr::new(IpAddr::V4(address), port)],
        Some(url::Host::Ipv6(address)) => vec![SocketAddr::new(IpAddr::V6(address), port)],
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::time::timeout(Duration::from_secs(10), tokio::net::lookup_host((name, port)));
            lookup
                .await
                .map_err(|_| refused(format!("resolving {name} timed out")))?
                .map_err(|error| refused(format!("cannot resolve {name}: {error}")))?
                .collect()
        }
        None => Vec::new(),
    };
    let first = *addresses
        .first()
        .ok_or_else(|| refused("the host resolves to no address".to_owned()))?;
    if !allow_private && let Some(inside) = addresses.iter().find(|address| !is_public(address.ip())) {
        return Err(refused(format!(
            "it points at {}, a loopback, private or link-local address (an operator can allow those with COMFYUI_MCP_ALLOW_PRIVATE_URLS=true)",
            inside.ip()
        )));
    }
    Ok(first)
}

/// Whether an address is on the public internet.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(address) => is_public_v4(address),
        IpAddr::V6(address) => match address.to_ipv4_mapped() {
            Some(mapped) => is_public_v4(mapped),
            None => is_public_v6(address),
        },
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [first, second, ..] = address.octets();
    let shared = first == 100 && (64..128).contains(&second); // 100.64.0.0/10, carrier-grade NAT
    let benchmarking = first == 198 && (18..20).contains(&second);
    let reserved = first >= 240;
    !(address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_documentation()
        || first == 0
        || shared
        || benchmarking
        || reserved)
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let first = address.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    let documentation = first == 0x2001 && address.segments()[1] == 0x0db8;
    !(address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        || unique_local
        || link_local
        || documentation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(inside.parse().expect("address")), "{inside}");
        }
        for outside in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(outside.parse().expect("address")), "{outside}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_request() {
        for (url, reason) in [
            ("file:///etc/passwd", "only http and https"),
            ("ftp://example.org/a.mp4", "only http and https"),
            ("http://user:secret@example.org/a.mp4", "credentials"),
            ("not a url", "relative URL"),
        ] {
            let error = parse(url).expect_err(url).to_string();
            assert!(error.contains(reason), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[tokio::test]
    async fn loopback_and_metadata_addresses_are_refused_unless_allowed() {
        let timeouts = Timeouts::default();
        for url in [
            "http://127.0.0.1:9/a.png",
            "http://[::1]:9/a.png",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:9/a.png",
        ] {
            let error = fetch_input(url, 1024, false, &timeouts).await.expect_err(url);
            assert!(
                matches!(&error, FetchError::Refused { reason, .. } if reason.contains("loopback, private or link-local")),
                "{url}: {error}"
            );
        }
        // Allowed, the same URL is tried (and fails to connect: nothing listens on port 9).
        let error = fetch_input("http://127.0.0.1:9/a.png", 1024, true, &timeouts)
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, FetchError::Failed { .. }), "{error}");
    }
}
