//! The MCP server's state: the engine, the front end's settings, the tools the operator lets
//! through, and what one session enabled. Every toolset's handlers receive it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use comfy_engine::Engine;
use rmcp::model::Tool;
use rmcp::{Peer, RoleServer};

use super::catalog::Catalog;
use crate::settings::Settings;

/// The MCP server. Cheap to clone: the HTTP transport makes one per request.
#[derive(Clone)]
pub struct ComfyServer {
    pub(crate) engine: Arc<Engine>,
    /// The front end's configuration (toolsets, local files).
    pub(crate) settings: Arc<Settings>,
    /// Every tool the operator lets through, with its toolset.
    pub(crate) catalog: Arc<Catalog>,
    /// The toolsets this session enabled (dynamic mode); one set per session.
    pub(crate) enabled: Arc<RwLock<BTreeSet<String>>>,
    /// Whether tools may read this machine's files (true for stdio unless configured otherwise).
    pub(crate) local_files: bool,
    /// Served over HTTP with the download route: answers about large files name its path.
    pub(crate) download_route: bool,
    /// This session's resource subscriptions (live previews).
    pub(crate) subscriptions: Arc<Subscriptions>,
    /// Sessions told when the saved workflows (and so the tools) change.
    pub(crate) list_changed: Arc<ListChangedPeers>,
}

impl ComfyServer {
    /// A server for a new session: the same engine and tools, its own enabled toolsets.
    pub fn for_session(&self) -> Self {
        ComfyServer {
            enabled: Arc::default(),
            subscriptions: Arc::default(),
            ..self.clone()
        }
    }

    pub(crate) fn enabled_toolsets(&self) -> BTreeSet<String> {
        self.enabled
            .read()
            .map(|enabled| enabled.clone())
            .unwrap_or_default()
    }

    /// The tools this session sees now (saved workflows aside).
    pub(crate) fn visible_tools(&self) -> Vec<Tool> {
        self.catalog.visible(&self.enabled_toolsets())
    }

    /// Whether tools may read and write files on this machine: the configured value, else true on
    /// stdio and false on HTTP.
    pub(crate) fn local_files_allowed(&self) -> bool {
        self.settings.allow_local_files.unwrap_or(self.local_files)
    }
}

/// Sessions to tell when the saved workflows change (sessions that negotiated a protocol with
/// `initialize`; newer ones subscribe with `subscriptions/listen`).
#[derive(Default)]
pub struct ListChangedPeers {
    peers: Mutex<Vec<Peer<RoleServer>>>,
}

impl ListChangedPeers {
    pub fn register(&self, peer: Peer<RoleServer>) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.retain(|known| !known.is_transport_closed());
            peers.push(peer);
        }
    }

    async fn notify_all(&self) {
        let peers: Vec<Peer<RoleServer>> = match self.peers.lock() {
            Ok(mut peers) => {
                peers.retain(|known| !known.is_transport_closed());
                peers.clone()
            }
            Err(_) => return,
        };
        for peer in peers {
            // A session that went away only means nobody is listening there.
            if let Err(error) = peer.notify_tool_list_changed().await {
                tracing::debug!(%error, "tools/list_changed not delivered");
            }
        }
    }
}

/// Sends `notifications/tools/list_changed` to every registered session after each change of the
/// workflows directory, from a task the engine owns.
pub fn forward_list_changes(engine: &Engine, peers: Arc<ListChangedPeers>) {
    engine.on_workflow_changes(move || {
        let peers = peers.clone();
        async move { peers.notify_all().await }
    });
}

/// A session's resource subscriptions: each URI's watcher stops when it is unsubscribed, and
/// every one stops when the session's server is dropped.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    watchers: std::sync::Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
}

impl Subscriptions {
    /// The token that stops `uri`'s new watcher; a watcher the URI had is stopped.
    pub(crate) fn replace(&self, uri: &str) -> tokio_util::sync::CancellationToken {
        let token = tokio_util::sync::CancellationToken::new();
        let previous = self
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(uri.to_owned(), token.clone());
        if let Some(previous) = previous {
            previous.cancel();
        }
        token
    }

    pub(crate) fn remove(&self, uri: &str) {
        let removed = self
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uri);
        if let Some(token) = removed {
            token.cancel();
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        let watchers = self
            .watchers
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for token in watchers.values() {
            token.cancel();
        }
    }
}
