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
    /// Manage workspaces (groups of teams).
    Workspaces {
        #[command(subcommand)]
        action: WorkspacesAction,
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
    /// Manage admin credentials and their roles.
    Admins {
        #[command(subcommand)]
        action: AdminsAction,
    },
    /// Manage stored policies (budgets, rate limits, allowed models).
    Policies {
        #[command(subcommand)]
        action: PoliciesAction,
    },
    /// Manage provider credentials held (encrypted) by the gateway.
    Credentials {
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// Show the admin audit log, newest first.
    Audit {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show the role and scope of the credential in use.
    Whoami,
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
        /// Grouping: user, team, workspace, model, provider, project, session or day.
        #[arg(long, default_value = "user")]
        by: String,
        /// Start of the period: a date (2026-11-01), an RFC 3339 time, or a duration ago (7d).
        #[arg(long)]
        since: Option<String>,
        /// End of the period, exclusive; same forms as --since.
        #[arg(long)]
        until: Option<String>,
    },
    /// Claude Code helpers.
    ClaudeCode {
        #[command(subcommand)]
        action: ClaudeCodeAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspacesAction {
    /// Create a workspace.
    Create { name: String },
    /// List workspaces.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TeamsAction {
    /// Create a team (in the default workspace unless --workspace is given).
    Create {
        name: String,
        #[arg(long)]
        workspace: Option<String>,
    },
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
    /// With --team and no --user it is the team's service key.
    #[command(group(clap::ArgGroup::new("owner").required(true).multiple(true).args(["user", "team"])))]
    Create {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Project the key's requests are attributed to when they send no x-tollgate-project.
        #[arg(long)]
        project: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id; effective on the next request.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AdminsAction {
    /// Create an admin credential; the secret is shown once.
    Create {
        /// A name for the audit log, e.g. the person or automation using it.
        name: String,
        /// org_admin, workspace_admin, team_admin, member or auditor.
        #[arg(long)]
        role: String,
        /// The workspace of a workspace_admin.
        #[arg(long)]
        workspace: Option<String>,
        /// The team of a team_admin.
        #[arg(long)]
        team: Option<String>,
        /// The user of a member.
        #[arg(long)]
        user: Option<String>,
    },
    /// List admin credentials (never their secrets).
    List,
    /// Revoke an admin credential by id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum PoliciesAction {
    /// List stored policies.
    List,
    /// Show one policy.
    Get { id: String },
    /// Create a policy from a TOML or JSON file.
    Create {
        #[arg(long)]
        file: PathBuf,
    },
    /// Replace a policy with the contents of a TOML or JSON file.
    Set {
        id: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// Delete a policy.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum CredentialsAction {
    /// List providers and where credentials are held (never the secrets).
    List,
    /// Store or rotate a provider's credential. The secret is read from a file or the
    /// environment, never from the command line.
    #[command(group(clap::ArgGroup::new("secret").required(true).args(["api_key_file", "api_key_env", "aws_from_env", "service_account_file", "from_file"])))]
    Set {
        /// Provider name as configured.
        provider: String,
        /// org, workspace:NAME or team:NAME (default: the credential's own scope).
        #[arg(long)]
        scope: Option<String>,
        /// A file holding the API key.
        #[arg(long)]
        api_key_file: Option<PathBuf>,
        /// An environment variable holding the API key.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Read AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
        #[arg(long)]
        aws_from_env: bool,
        /// A Google service-account key file.
        #[arg(long)]
        service_account_file: Option<PathBuf>,
        /// A JSON file with the request body ({"api_key"} etc., see the admin API).
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Delete a provider's credential at a scope.
    Delete {
        provider: String,
        #[arg(long)]
        scope: Option<String>,
    },
    /// Re-seal every stored credential under a new master key, without a restart. The
    /// gateway reads the key file itself, so it must be on the gateway's host.
    RotateMaster {
        /// File holding the new key (32 bytes as base64 or hex), e.g. from
        /// `openssl rand -base64 32`.
        #[arg(long)]
        new_key_file: PathBuf,
    },
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
