//! comfyui-mcp binary
fn main() {}
