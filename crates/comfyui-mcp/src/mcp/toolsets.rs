//! The dynamic mode's own tools: `list_toolsets` tells a client what it can enable, and
//! `enable_toolset` adds a toolset's tools to this session and tells the client its list changed.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalog::ToolsetListing;
use super::render::error_text;
use super::server::ComfyServer;
use super::tool::{Hints, Structured, ToolDeclaration, declare_tool};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListToolsetsArguments {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EnableToolsetArguments {
    /// The toolset to add to this session's tools (see list_toolsets).
    toolset: String,
}

/// What `enable_toolset` answers.
#[derive(Debug, Serialize, JsonSchema)]
struct EnabledToolset {
    /// The toolset now enabled.
    enabled: String,
    /// Whether this call enabled it (false: it was already).
    newly: bool,
    /// Every tool this session now sees.
    tools: Vec<String>,
}

/// The two tools a dynamic session starts with.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "list_toolsets",
        "The toolsets this server has, what each is for, its tools, and whether it is enabled in this session. Enable one with enable_toolset.",
        Hints::READ_ONLY,
        ListToolsetsArguments => ToolsetListing,
        list_toolsets,
    ),
    declare_tool!(
        "enable_toolset",
        "Adds a toolset's tools to this session (the client is told the tool list changed).",
        Hints::UPDATES,
        EnableToolsetArguments => EnabledToolset,
        enable_toolset,
    ),
];

async fn list_toolsets(
    server: &ComfyServer,
    _arguments: ListToolsetsArguments,
    _context: &RequestContext<RoleServer>,
) -> Structured<ToolsetListing> {
    Ok(server.catalog.describe(&server.enabled_toolsets()))
}

async fn enable_toolset(
    server: &ComfyServer,
    arguments: EnableToolsetArguments,
    context: &RequestContext<RoleServer>,
) -> Structured<EnabledToolset> {
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
    Ok(EnabledToolset {
        enabled: known.to_owned(),
        newly: added,
        tools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::catalog::ToolsetSummary;
    use crate::mcp::tool::conformance::assert_conforms;

    #[test]
    fn the_dynamic_tools_conform_to_their_schemas() {
        let listing = ToolsetListing {
            toolsets: vec![ToolsetSummary {
                name: "core".into(),
                description: "the basics".into(),
                tools: vec!["status".into()],
                enabled: false,
            }],
        };
        assert_conforms(TOOLS, "list_toolsets", &listing);
        let enabled = EnabledToolset {
            enabled: "core".into(),
            newly: true,
            tools: vec!["list_toolsets".into(), "status".into()],
        };
        assert_conforms(TOOLS, "enable_toolset", &enabled);
    }
}
