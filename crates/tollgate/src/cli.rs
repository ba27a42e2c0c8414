//! The command-line grammar.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Tollgate: an AI gateway for teams running Claude Code and other coding agents.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub remote: Remote,
}

/// How admin commands reach the gateway.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Gateway base URL.
    #[arg(
        long,
        env = "TOLLGATE_SERVER",
        default_value = "http://127.0.0.1:8780",
        global = true
    )]
    pub server: String,
    /// Data directory: where `serve` keeps its state, and where admin commands find admin.key
    /// when TOLLGATE_ADMIN_KEY is not set (default ./tollgate-data).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (default ./tollgate.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8780).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage teams.
    Teams {
        #[command(subcommand)]
        action: TeamsAction,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Manage gateway keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Show the request journal, newest first.
    Logs {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        status: Option<u16>,
        /// Only requests newer than this (30s, 15m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
    },
    /// Report spend from the journal.
    Spend {
        /// Grouping: user, team, model, provider, project, session or day.
        #[arg(long, default_value = "user")]
        by: String,
        /// Only requests newer than this (30s, 15m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
    },
    /// Claude Code helpers.
    ClaudeCode {
        #[command(subcommand)]
        action: ClaudeCodeAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeamsAction {
    /// Create a team.
    Create { name: String },
    /// List teams.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Create a user.
    Create {
        name: String,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// List users.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a gateway key (creates the user and team if needed); the key is shown once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id; effective on the next request.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ClaudeCodeAction {
    /// Print the settings.json block a developer pastes into ~/.claude/settings.json.
    Settings {
        /// The developer's gateway key.
        #[arg(long)]
        key: String,
        /// The gateway URL as developers reach it.
        #[arg(long, default_value = "http://127.0.0.1:8780")]
        url: String,
        /// Extra header sent on every request, e.g. 'x-tollgate-project: payments'.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
}
