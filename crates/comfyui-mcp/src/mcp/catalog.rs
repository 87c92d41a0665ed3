//! Which tools a session sees. The operator chooses toolsets (`--toolsets`), single tools
//! (`--tools`, `--exclude-tools`) and can leave out everything marked destructive
//! (`--no-destructive-tools`). In dynamic mode (`--dynamic-toolsets`) a session starts with two
//! small tools, `list_toolsets` and `enable_toolset`, and grows its list as the client asks: a
//! client that needs three tools does not carry the schemas of thirty.

use std::collections::BTreeSet;

use rmcp::model::Tool;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Toolset, read_only, tool};
use crate::settings::Settings;

pub(crate) const LIST_TOOLSETS: &str = "list_toolsets";
pub(crate) const ENABLE_TOOLSET: &str = "enable_toolset";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListToolsetsArguments {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnableToolsetArguments {
    /// The toolset to add to this session's tools (see list_toolsets).
    pub toolset: String,
}

/// The tools this server offers, each with its toolset, after the operator's filters.
pub(crate) struct Catalog {
    tools: Vec<(&'static str, Tool)>,
    dynamic: bool,
    /// Toolset name -> what it is for, in registry order.
    descriptions: Vec<(&'static str, &'static str)>,
}

fn management_tools() -> Vec<Tool> {
    vec![
        tool::<ListToolsetsArguments>(
            LIST_TOOLSETS,
            "The toolsets this server has, what each is for, its tools, and whether it is enabled in this session. Enable one with enable_toolset.",
            read_only(),
        ),
        tool::<EnableToolsetArguments>(
            ENABLE_TOOLSET,
            "Adds a toolset's tools to this session (the client is told the tool list changed).",
            super::annotations(false, false, true),
        ),
    ]
}

impl Catalog {
    pub(crate) fn new(settings: &Settings, toolsets: &[Toolset]) -> Catalog {
        let mut tools = Vec::new();
        let mut descriptions: Vec<(&'static str, &'static str)> = Vec::new();
        for toolset in toolsets {
            if !settings.dynamic_toolsets && !settings.toolset_enabled(toolset.name) {
                continue;
            }
            if !descriptions.iter().any(|(name, _)| *name == toolset.name) {
                descriptions.push((toolset.name, toolset.description));
            }
            for candidate in (toolset.tools)() {
                if admitted(settings, &candidate) {
                    tools.push((toolset.name, candidate));
                }
            }
        }
        Catalog {
            tools,
            dynamic: settings.dynamic_toolsets,
            descriptions,
        }
    }

    pub(crate) fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The tools a session with `enabled` toolsets sees (all of them outside dynamic mode).
    pub(crate) fn visible(&self, enabled: &BTreeSet<String>) -> Vec<Tool> {
        let mut visible = if self.dynamic {
            management_tools()
        } else {
            Vec::new()
        };
        visible.extend(
            self.tools
                .iter()
                .filter(|(toolset, _)| !self.dynamic || enabled.contains(*toolset))
                .map(|(_, tool)| tool.clone()),
        );
        visible
    }

    /// The tool `name`, if a session with `enabled` toolsets sees it.
    pub(crate) fn find(&self, name: &str, enabled: &BTreeSet<String>) -> Option<Tool> {
        if !self.is_visible(name, enabled) {
            return None;
        }
        match self.tools.iter().find(|(_, tool)| tool.name == name) {
            Some((_, tool)) => Some(tool.clone()),
            None => management_tools().into_iter().find(|tool| tool.name == name),
        }
    }

    /// Whether `name` is among the tools a session with `enabled` toolsets sees.
    pub(crate) fn is_visible(&self, name: &str, enabled: &BTreeSet<String>) -> bool {
        if self.dynamic && (name == LIST_TOOLSETS || name == ENABLE_TOOLSET) {
            return true;
        }
        self.tools
            .iter()
            .any(|(toolset, tool)| tool.name == name && (!self.dynamic || enabled.contains(*toolset)))
    }

    /// What `list_toolsets` answers.
    pub(crate) fn describe(&self, enabled: &BTreeSet<String>) -> serde_json::Value {
        let toolsets: Vec<serde_json::Value> = self
            .descriptions
            .iter()
            .map(|(name, description)| {
                let tools: Vec<&str> = self
                    .tools
                    .iter()
                    .filter(|(toolset, _)| toolset == name)
                    .map(|(_, tool)| tool.name.as_ref())
                    .collect();
                serde_json::json!({
                    "name": name,
                    "description": description,
                    "tools": tools,
                    "enabled": !self.dynamic || enabled.contains(*name),
                })
            })
            .collect();
        serde_json::json!({ "toolsets": toolsets })
    }

    /// The toolset called `name`, if this server offers it.
    pub(crate) fn toolset(&self, name: &str) -> Option<&'static str> {
        self.descriptions
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(known, _)| *known)
    }

    /// Every tool name the registry knows, whatever the filters (to check `--tools` against).
    pub(crate) fn known_names(toolsets: &[Toolset]) -> BTreeSet<String> {
        toolsets
            .iter()
            .flat_map(|toolset| (toolset.tools)())
            .map(|tool| tool.name.to_string())
            .collect()
    }
}

/// Whether the operator's filters let `tool` through.
fn admitted(settings: &Settings, tool: &Tool) -> bool {
    let name = tool.name.as_ref();
    let destructive = tool
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.destructive_hint)
        .unwrap_or(false);
    settings
        .tools
        .as_ref()
        .is_none_or(|only| only.iter().any(|wanted| wanted == name))
        && !settings.exclude_tools.iter().any(|excluded| excluded == name)
        && !(settings.no_destructive_tools && destructive)
}
