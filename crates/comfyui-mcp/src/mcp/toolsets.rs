//! The dynamic mode's own tools: `list_toolsets` tells a client what it can enable, and
//! `enable_toolset` adds a toolset's tools to this session and tells the client its list changed.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::render::{error_text, json_result};
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, declare_tool};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListToolsetsArguments {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EnableToolsetArguments {
    /// The toolset to add to this session's tools (see list_toolsets).
    toolset: String,
}

/// The two tools a dynamic session starts with.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "list_toolsets",
        "The toolsets this server has, what each is for, its tools, and whether it is enabled in this session. Enable one with enable_toolset.",
        Hints::READ_ONLY,
        ListToolsetsArguments,
        list_toolsets,
    ),
    declare_tool!(
        "enable_toolset",
        "Adds a toolset's tools to this session (the client is told the tool list changed).",
        Hints::UPDATES,
        EnableToolsetArguments,
        enable_toolset,
    ),
];

async fn list_toolsets(
    server: &ComfyServer,
    _arguments: ListToolsetsArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    Ok(json_result(&server.catalog.describe(&server.enabled_toolsets())))
}

async fn enable_toolset(
    server: &ComfyServer,
    arguments: EnableToolsetArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let Some(known) = server.catalog.toolset(&arguments.toolset) else {
        return Err(error_text(format!(
            "no toolset {:?} on this server; list_toolsets names them",
            arguments.toolset
        )));
    };
    let added = server
        .enabled
        .write()
        .map(|mut enabled| enabled.insert(known.to_owned()))
        .unwrap_or(false);
    if added && let Err(error) = context.peer.notify_tool_list_changed().await {
        tracing::debug!(%error, "tools/list_changed not delivered");
    }
    let tools: Vec<String> = server
        .visible_tools()
        .iter()
        .map(|tool| tool.name.to_string())
        .collect();
    Ok(json_result(
        &json!({"enabled": known, "newly": added, "tools": tools}),
    ))
}
