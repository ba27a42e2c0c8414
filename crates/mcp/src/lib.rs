//! The MCP gateway: one authenticated front for MCP servers with per-team and per-tool access
//! control, credential injection and an audit record of every tool call.
//!
//! # Layout
//! Nothing is served under `/mcp` yet; the crate holds the seam so the server can mount it.

/// Path prefix the MCP gateway will own.
pub const MOUNT: &str = "/mcp";
