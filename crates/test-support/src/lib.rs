//! Test support shared by the workspace's integration tests and benchmarks: where the real ComfyUI
//! rig is, a TCP proxy that can cut connections on demand to inject faults between the product
//! and a real ComfyUI, and media made in code to feed in. No mocks of ComfyUI live here.

pub mod media;
pub mod proxy;
pub mod rig;

pub use proxy::FaultProxy;
pub use rig::{RigInstance, assert_rig_version, comfyui_url, expected_comfyui_version, is_current_comfyui};
