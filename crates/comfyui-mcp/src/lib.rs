//! comfyui-mcp as a library: the front ends over the engine (`comfy-engine`): the MCP server,
//! the transports, the terminal commands and configuration. The binary in `main.rs` only wires these together; tests
//! and benchmarks use them directly.

pub mod audit_commands;
pub mod cli;
pub mod mcp;
pub mod serve;
pub mod settings;
pub mod workflow_commands;
