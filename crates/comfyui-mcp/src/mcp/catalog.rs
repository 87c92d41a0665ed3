//! Which tools a session sees. The operator chooses toolsets (`--toolsets`), single tools
//! (`--tools`, `--exclude-tools`) and can leave out everything marked destructive
//! (`--no-destructive-tools`). In dynamic mode (`--dynamic-toolsets`) a session starts with two
//! small tools, `list_toolsets` and `enable_toolset`, and grows its list as the client asks: a
//! client that needs three tools does not carry the schemas of thirty.

use std::collections::{BTreeSet, HashMap};

use rmcp::model::Tool;
use schemars::JsonSchema;
use serde::Serialize;

use super::tool::{Handler, ToolDeclaration};
use crate::settings::Settings;

/// A toolset: a name the operator and clients choose by, and its tools. Several entries may share
/// one name (a toolset written in more than one file).
pub(crate) struct Toolset {
    pub name: &'static str,
    /// What the toolset is for, as `list_toolsets` tells a client.
    pub description: &'static str,
    pub tools: &'static [ToolDeclaration],
}

/// One admitted tool: its toolset, its declaration, and the `Tool` built from it once.
struct Entry {
    toolset: &'static str,
    declaration: &'static ToolDeclaration,
    tool: Tool,
}

/// The tools this server offers, each with its toolset, after the operator's filters.
pub(crate) struct Catalog {
    entries: Vec<Entry>,
    /// Tool name -> index in `entries`, so a call finds its handler once.
    by_name: HashMap<&'static str, usize>,
    /// The dynamic mode's own tools (empty outside it).
    management: Vec<Entry>,
    dynamic: bool,
    /// Toolset name -> what it is for, in registry order.
    descriptions: Vec<(&'static str, &'static str)>,
}

fn entry(toolset: &'static str, declaration: &'static ToolDeclaration) -> Entry {
    Entry {
        toolset,
        declaration,
        tool: declaration.tool(),
    }
}

impl Catalog {
    pub(crate) fn new(
        settings: &Settings,
        toolsets: &'static [Toolset],
        management: &'static [ToolDeclaration],
    ) -> Catalog {
        let mut entries = Vec::new();
        let mut descriptions: Vec<(&'static str, &'static str)> = Vec::new();
        for toolset in toolsets {
            if !settings.dynamic_toolsets && !settings.toolset_enabled(toolset.name) {
                continue;
            }
            if !descriptions.iter().any(|(name, _)| *name == toolset.name) {
                descriptions.push((toolset.name, toolset.description));
            }
            for declaration in toolset.tools {
                if admitted(settings, declaration) {
                    entries.push(entry(toolset.name, declaration));
                }
            }
        }
        let management = if settings.dynamic_toolsets {
            management
                .iter()
                .map(|declaration| entry("", declaration))
                .collect()
        } else {
            Vec::new()
        };
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| (entry.declaration.name, index))
            .collect();
        Catalog {
            entries,
            by_name,
            management,
            dynamic: settings.dynamic_toolsets,
            descriptions,
        }
    }

    pub(crate) fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The tools a session with `enabled` toolsets sees (all of them outside dynamic mode).
    pub(crate) fn visible(&self, enabled: &BTreeSet<String>) -> Vec<Tool> {
        self.management
            .iter()
            .chain(self.entries.iter().filter(|entry| self.sees(entry, enabled)))
            .map(|entry| entry.tool.clone())
            .collect()
    }

    fn sees(&self, entry: &Entry, enabled: &BTreeSet<String>) -> bool {
        !self.dynamic || enabled.contains(entry.toolset)
    }

    fn lookup(&self, name: &str, enabled: &BTreeSet<String>) -> Option<&Entry> {
        if let Some(entry) = self
            .management
            .iter()
            .find(|entry| entry.declaration.name == name)
        {
            return Some(entry);
        }
        let entry = &self.entries[*self.by_name.get(name)?];
        self.sees(entry, enabled).then_some(entry)
    }

    /// The tool `name`, if a session with `enabled` toolsets sees it.
    pub(crate) fn find(&self, name: &str, enabled: &BTreeSet<String>) -> Option<Tool> {
        self.lookup(name, enabled).map(|entry| entry.tool.clone())
    }

    /// The handler of `name`, if a session with `enabled` toolsets sees the tool.
    pub(crate) fn handler(&self, name: &str, enabled: &BTreeSet<String>) -> Option<Handler> {
        self.lookup(name, enabled).map(|entry| entry.declaration.handler)
    }

    /// What `list_toolsets` answers.
    pub(crate) fn describe(&self, enabled: &BTreeSet<String>) -> ToolsetListing {
        let toolsets = self
            .descriptions
            .iter()
            .map(|(name, description)| ToolsetSummary {
                name: (*name).to_owned(),
                description: (*description).to_owned(),
                tools: self
                    .entries
                    .iter()
                    .filter(|entry| entry.toolset == *name)
                    .map(|entry| entry.declaration.name.to_owned())
                    .collect(),
                enabled: !self.dynamic || enabled.contains(*name),
            })
            .collect();
        ToolsetListing { toolsets }
    }

    /// The toolset called `name`, if this server offers it.
    pub(crate) fn toolset(&self, name: &str) -> Option<&'static str> {
        self.descriptions
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(known, _)| *known)
    }
}

/// What `list_toolsets` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ToolsetListing {
    pub toolsets: Vec<ToolsetSummary>,
}

/// One toolset: what it is for, its tools (after the operator's filters) and whether this
/// session has it.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ToolsetSummary {
    pub name: String,
    pub description: String,
    pub tools: Vec<String>,
    pub enabled: bool,
}

/// Every tool the registry knows, whatever the filters, with its toolset.
pub(crate) fn every_tool(
    toolsets: &'static [Toolset],
) -> impl Iterator<Item = (&'static str, &'static ToolDeclaration)> {
    toolsets.iter().flat_map(|toolset| {
        toolset
            .tools
            .iter()
            .map(move |declaration| (toolset.name, declaration))
    })
}

/// Whether the operator's filters let `declaration` through.
fn admitted(settings: &Settings, declaration: &ToolDeclaration) -> bool {
    let name = declaration.name;
    settings
        .tools
        .as_ref()
        .is_none_or(|only| only.iter().any(|wanted| wanted == name))
        && !settings.exclude_tools.iter().any(|excluded| excluded == name)
        && !(settings.no_destructive_tools && declaration.hints.destructive)
}
