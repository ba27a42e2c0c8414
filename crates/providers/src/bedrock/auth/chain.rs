//! AWS credentials that are looked up rather than configured: a named profile of the shared
//! files, and the standard chain (environment, web identity, profile, container, EC2 instance
//! metadata), cached and refreshed before they expire.
//!
//! Written as glue over `aws-credential-types` rather than taken from `aws-config`: the official
//! chain brings its own HTTP stack whose default TLS is aws-lc-rs (a C build, and a second TLS
//! provider beside ring) plus the STS client crates; see the workspace `Cargo.toml` for the
//! measurement. The sources implemented here are the ones a gateway runs under (a container
//! task role, an instance profile, a Kubernetes service account, a profile with keys, a
//! `credential_process` or a role to assume); SSO profiles are refused with a message naming the
//! key.
//!
//! # Format
//! - Shared files: INI sections `[name]` (credentials file) or `[profile name]` / `[default]`
//!   (config file) holding `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`;
//!   `#` and `;` start comments; the credentials file wins over the config file per profile.
//! - Container (ECS, EKS Pod Identity): `GET` the full URI, or `http://169.254.170.2` + the
//!   relative URI, with `Authorization` from `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`; JSON
//!   `{AccessKeyId, SecretAccessKey, Token, Expiration}`.
//! - EC2 IMDSv2: `PUT /latest/api/token` (TTL header) for a session token, then
//!   `GET /latest/meta-data/iam/security-credentials/` for the role and the same path plus the
//!   role for JSON as above (with `Code: "Success"`).
//! - Web identity: STS `AssumeRoleWithWebIdentity` (form POST, unsigned) with the token file's
//!   contents; XML answer with `AccessKeyId`, `SecretAccessKey`, `SessionToken`, `Expiration`.
//! - Role profiles: STS `AssumeRole` (form POST, SigV4 for service `sts` with the source's
//!   credentials: `source_profile` or `credential_source`); XML answer as for web identity.
//! - `credential_process`: the profile's command, run by `sh -c` as the AWS SDKs do on Unix,
//!   prints JSON `{Version: 1, AccessKeyId, SecretAccessKey, SessionToken?, Expiration?}` on
//!   standard output and exits 0; without `Expiration` the credentials are kept for good.

use crate::client::{UpstreamClientOptions, build_client};
use aws_credential_types::Credentials;
use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Credentials are renewed this long before they expire, so a request signed with them does not
/// arrive after the expiry (AWS SDKs use five minutes too).
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// A credential endpoint that does not answer within this long fails the attempt.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed lookup, requests fail at once for this long instead of each waiting on the
/// same broken source, so a route falls back without delay.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Credential answers are small; anything larger is refused.
const MAX_ANSWER: usize = 64 * 1024;
/// The container credentials host of ECS tasks.
const ECS_HOST: &str = "http://169.254.170.2";
/// The instance metadata endpoint of EC2.
const IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// A `credential_process` that has not printed its credentials by then is killed: SSO helpers
/// make a network round trip or two, and a request waits on them.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment the sources read, taken once when the provider is configured (token files
/// are re-read at every refresh: they rotate).
#[derive(Debug, Clone, Default)]
pub struct ChainEnv {
    vars: std::collections::HashMap<&'static str, String>,
}

const VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "HOME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
];

impl ChainEnv {
    /// Reads the variables the chain uses through `lookup`.
    pub fn read(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let vars = VARS
            .iter()
            .filter_map(|&k| lookup(k).filter(|v| !v.is_empty()).map(|v| (k, v)))
            .collect();
        Self { vars }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Where credentials are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One profile of the shared files.
    Profile(String),
    /// The first source that applies, in the AWS SDKs' order.
    Chain,
}

/// Why credentials could not be had; the message never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainError(pub String);

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(message: impl Into<String>) -> ChainError {
    ChainError(message.into())
}

/// Credentials of one provider entry, fetched on first use and renewed before they expire. One
/// refresh runs at a time; requests meanwhile keep signing with credentials still valid.
pub struct CredentialCache {
    source: Source,
    region: String,
    env: ChainEnv,
    current: arc_swap::ArcSwapOption<Credentials>,
    /// The last failed lookup and when it happened; guarded by the refresh lock.
    refresh: tokio::sync::Mutex<Option<(SystemTime, ChainError)>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("source", &self.source)
            .field("cached", &self.current.load().is_some())
            .finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// A cache for `source`; `region` is where STS is asked for web-identity credentials.
    pub fn new(source: Source, region: &str, env: ChainEnv) -> Self {
        Self {
            source,
            region: region.to_string(),
            env,
            current: arc_swap::ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// Credentials valid for a while yet, fetched when there are none or they are about to expire.
    pub async fn get(&self, now: SystemTime) -> Result<Arc<Credentials>, ChainError> {
        if let Some(c) = self.current.load_full()
            && fresh(&c, now)
        {
            return Ok(c);
        }
        let mut last_failure = self.refresh.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(c) = self.current.load_full()
            && fresh(&c, now)
        {
            return Ok(c);
        }
        let usable = self
            .current
            .load_full()
            .filter(|c| c.expiry().is_none_or(|t| t > now));
        if let Some((at, e)) = last_failure.as_ref()
            && now.duration_since(*at).unwrap_or_default() < RETRY_AFTER_FAILURE
        {
            return usable.ok_or_else(|| e.clone());
        }
        match resolve(&self.source, &self.env, &self.region).await {
            Ok(c) => {
                *last_failure = None;
                let c = Arc::new(c);
                self.current.store(Some(c.clone()));
                Ok(c)
            }
            Err(e) => match usable {
                // Not renewed, but not expired either: sign with them and try again next time.
                Some(c) => {
                    tracing::warn!(error = %e, "AWS credentials could not be renewed; using the current ones until they expire");
                    *last_failure = Some((now, e));
                    Ok(c)
                }
                None => {
                    *last_failure = Some((now, e.clone()));
                    Err(e)
                }
            },
        }
    }
}

fn fresh(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_none_or(|t| t > now + REFRESH_BEFORE)
}

/// What a profile of the shared files gives: keys, a command that prints them, or a role.
#[derive(Debug, Clone)]
pub enum ProfileEntry {
    /// `aws_access_key_id` and `aws_secret_access_key` (with `aws_session_token`).
    Keys(Credentials),
    /// `credential_process`: run at first use and again before what it printed expires.
    Process(String),
    /// `role_arn`: assumed with STS at first use and again before the role's credentials expire.
    AssumeRole(RoleProfile),
}

/// A profile's role and where the credentials that assume it come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleProfile {
    role_arn: String,
    source: RoleSource,
    session_name: Option<String>,
    external_id: Option<String>,
    duration_seconds: Option<u32>,
}

/// `source_profile` or `credential_source` of a role profile.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleSource {
    /// Another profile (or this one's own keys, when it names itself).
    Profile(String),
    Environment,
    Ec2InstanceMetadata,
    EcsContainer,
}

/// Roles may be assumed from roles this deep (the AWS CLI's chains are rarely longer than two);
/// it also ends a `source_profile` cycle.
const MAX_ROLE_CHAIN: usize = 5;

/// Fetches credentials from `source` once.
pub async fn resolve(
    source: &Source,
    env: &ChainEnv,
    region: &str,
) -> Result<Credentials, ChainError> {
    match source {
        Source::Profile(name) => from_profile(env, name, region).await,
        Source::Chain => {
            if let Some(c) = env_credentials(env) {
                return Ok(c);
            }
            if env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env.get("AWS_ROLE_ARN").is_some()
            {
                return web_identity(env, region).await;
            }
            let profile = env.get("AWS_PROFILE");
            if profile.is_some() || profile_files_exist(env) {
                match from_profile(env, profile.unwrap_or("default"), region).await {
                    Ok(c) => return Ok(c),
                    // Only a named profile must exist; files without a default are skipped.
                    Err(e) if profile.is_some() => return Err(e),
                    Err(_) => {}
                }
            }
            if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
                || env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
            {
                return container(env).await;
            }
            if env
                .get("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            {
                return Err(err(
                    "no AWS credentials found (environment, web identity, profile, container; instance metadata is disabled)",
                ));
            }
            imds(env).await.map_err(|e| {
                err(format!(
                    "no AWS credentials found in the environment, a web identity, a profile or a container, and instance metadata failed: {e}"
                ))
            })
        }
    }
}

// ---- shared files ----

fn home_file(env: &ChainEnv, var: &str, default: &str) -> Option<std::path::PathBuf> {
    match env.get(var) {
        Some(p) => Some(expand_home(env, p)),
        None => env
            .get("HOME")
            .map(|h| std::path::Path::new(h).join(".aws").join(default)),
    }
}

fn expand_home(env: &ChainEnv, path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), env.get("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(home).join(rest),
        _ => std::path::PathBuf::from(path),
    }
}

fn profile_files_exist(env: &ChainEnv) -> bool {
    [
        home_file(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        home_file(env, "AWS_CONFIG_FILE", "config"),
    ]
    .iter()
    .flatten()
    .any(|p| p.is_file())
}

/// The `key = value` pairs of one profile in one file (`config_style`: `[profile name]`
/// headers, `[default]` bare). Hand-written: the AWS format is INI with its own header rules,
/// and only flat keys matter here.
fn profile_section(text: &str, name: &str, config_style: bool) -> Option<Vec<(String, String)>> {
    let mut found: Option<Vec<(String, String)>> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let header = header.trim();
            let section = if config_style && header != "default" {
                header
                    .strip_prefix("profile")
                    .filter(|rest| rest.starts_with(char::is_whitespace))
                    .map(str::trim)
            } else {
                Some(header)
            };
            inside = section == Some(name);
            if inside {
                found.get_or_insert_with(Vec::new);
            }
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            let v = v
                .split(" #")
                .next()
                .unwrap_or(v)
                .split(" ;")
                .next()
                .unwrap_or(v);
            if let Some(f) = found.as_mut() {
                f.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    found
}

async fn from_profile(env: &ChainEnv, name: &str, region: &str) -> Result<Credentials, ChainError> {
    profile_credentials(env, name, region, 0).await
}

/// The credentials profile `name` gives; `depth` counts the roles assumed on the way here.
fn profile_credentials<'a>(
    env: &'a ChainEnv,
    name: &'a str,
    region: &'a str,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Credentials, ChainError>> + Send + 'a>>
{
    Box::pin(async move {
        match profile_entry(env, name)? {
            ProfileEntry::Keys(c) => Ok(c),
            ProfileEntry::Process(command) => {
                credential_process(name, &command, PROCESS_TIMEOUT).await
            }
            ProfileEntry::AssumeRole(role) => {
                if depth >= MAX_ROLE_CHAIN {
                    return Err(err(format!(
                        "AWS profile '{name}': more than {MAX_ROLE_CHAIN} roles in a row (is there a source_profile cycle?)"
                    )));
                }
                let base = match &role.source {
                    // A role profile naming itself takes its own keys as the source.
                    RoleSource::Profile(p) if p == name => own_keys(env, name)?,
                    RoleSource::Profile(p) => profile_credentials(env, p, region, depth + 1)
                        .await
                        .map_err(|e| err(format!("AWS profile '{name}': source_profile: {e}")))?,
                    RoleSource::Environment => env_credentials(env).ok_or_else(|| {
                        err(format!(
                            "AWS profile '{name}': credential_source = Environment, but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
                        ))
                    })?,
                    RoleSource::Ec2InstanceMetadata => imds(env).await.map_err(|e| {
                        err(format!("AWS profile '{name}': instance metadata: {e}"))
                    })?,
                    RoleSource::EcsContainer => container(env)
                        .await
                        .map_err(|e| err(format!("AWS profile '{name}': {e}")))?,
                };
                assume_role(env, name, &role, &base, region).await
            }
        }
    })
}

/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`), when both are set.
fn env_credentials(env: &ChainEnv) -> Option<Credentials> {
    let (id, secret) = (
        env.get("AWS_ACCESS_KEY_ID")?,
        env.get("AWS_SECRET_ACCESS_KEY")?,
    );
    let token = env.get("AWS_SESSION_TOKEN").map(str::to_string);
    Some(Credentials::new(id, secret, token, None, "environment"))
}

/// A profile's `aws_access_key_id` and `aws_secret_access_key` (with `aws_session_token`).
fn static_keys(keys: &[(String, String)]) -> Option<Credentials> {
    let (id, secret) = (
        lookup(keys, "aws_access_key_id")?,
        lookup(keys, "aws_secret_access_key")?,
    );
    let token = lookup(keys, "aws_session_token").map(str::to_string);
    Some(Credentials::new(id, secret, token, None, "profile"))
}

/// The static keys of a profile that is its own `source_profile`.
fn own_keys(env: &ChainEnv, name: &str) -> Result<Credentials, ChainError> {
    static_keys(&profile_keys(env, name)?).ok_or_else(|| {
        err(format!(
            "AWS profile '{name}' is its own source_profile but has no aws_access_key_id and aws_secret_access_key"
        ))
    })
}

/// What profile `name` holds, read from the shared files now.
pub fn profile_entry(env: &ChainEnv, name: &str) -> Result<ProfileEntry, ChainError> {
    let keys = profile_keys(env, name)?;
    let value = |k: &str| lookup(&keys, k);
    // As in the AWS SDKs, a role comes before the profile's own keys (which may be its source).
    if let Some(role_arn) = value("role_arn") {
        return role_profile(name, role_arn, &value).map(ProfileEntry::AssumeRole);
    }
    if let Some(c) = static_keys(&keys) {
        return Ok(ProfileEntry::Keys(c));
    }
    match value("credential_process") {
        Some(command) => Ok(ProfileEntry::Process(command.to_string())),
        None => {
            let unsupported = ["sso_session", "sso_start_url"]
                .into_iter()
                .find(|k| value(k).is_some());
            Err(err(match unsupported {
                Some(k) => format!(
                    "AWS profile '{name}' uses {k}, which the gateway does not support; give the profile aws_access_key_id and aws_secret_access_key, a credential_process (an SSO helper can print credentials) or a role_arn, or use credentials = \"chain\" with a container, instance or web-identity role"
                ),
                None => format!(
                    "AWS profile '{name}' has no aws_access_key_id and aws_secret_access_key"
                ),
            }))
        }
    }
}

/// The role settings of profile `name`, checked now so a mistake stops the start.
fn role_profile<'v>(
    name: &str,
    role_arn: &str,
    value: &dyn Fn(&str) -> Option<&'v str>,
) -> Result<RoleProfile, ChainError> {
    let fail = |what: String| err(format!("AWS profile '{name}': {what}"));
    if value("mfa_serial").is_some() {
        return Err(fail(
            "mfa_serial needs a code typed in at each renewal, which a gateway cannot do; use a role without MFA or a credential_process".into(),
        ));
    }
    let source = match (value("source_profile"), value("credential_source")) {
        (Some(_), Some(_)) => {
            return Err(fail(
                "source_profile and credential_source cannot both be set".into(),
            ));
        }
        (Some(p), None) => RoleSource::Profile(p.to_string()),
        (None, Some(c)) => match c {
            "Environment" => RoleSource::Environment,
            "Ec2InstanceMetadata" => RoleSource::Ec2InstanceMetadata,
            "EcsContainer" => RoleSource::EcsContainer,
            other => {
                return Err(fail(format!(
                    "credential_source '{other}' is not one of Environment, Ec2InstanceMetadata, EcsContainer"
                )));
            }
        },
        (None, None) => {
            return Err(fail(
                "role_arn needs source_profile or credential_source to say whose credentials assume it".into(),
            ));
        }
    };
    let duration_seconds = match value("duration_seconds") {
        None => None,
        Some(d) => match d.parse::<u32>() {
            Ok(n) if (900..=43_200).contains(&n) => Some(n),
            _ => {
                return Err(fail(format!(
                    "duration_seconds '{d}' is not a number of seconds from 900 to 43200"
                )));
            }
        },
    };
    Ok(RoleProfile {
        role_arn: role_arn.to_string(),
        source,
        session_name: value("role_session_name").map(str::to_string),
        external_id: value("external_id").map(str::to_string),
        duration_seconds,
    })
}

/// The last non-empty value of `key` among a profile's pairs.
fn lookup<'k>(keys: &'k [(String, String)], key: &str) -> Option<&'k str> {
    keys.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The `key = value` pairs of profile `name` from both shared files, the credentials file's
/// last so they win.
fn profile_keys(env: &ChainEnv, name: &str) -> Result<Vec<(String, String)>, ChainError> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut seen = false;
    // The config file first, so the credentials file's values win.
    for (var, default, config_style) in [
        ("AWS_CONFIG_FILE", "config", true),
        ("AWS_SHARED_CREDENTIALS_FILE", "credentials", false),
    ] {
        let Some(path) = home_file(env, var, default) else {
            continue;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(format!("cannot read {}: {e}", path.display()))),
        };
        if let Some(section) = profile_section(&text, name, config_style) {
            seen = true;
            keys.extend(section);
        }
    }
    if !seen {
        return Err(err(format!(
            "AWS profile '{name}' is not in the shared credentials or config file"
        )));
    }
    Ok(keys)
}

// ---- credential_process ----

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessCredentials {
    version: Option<u64>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// Runs profile `profile`'s `command` and reads the credentials it prints. Errors name the
/// profile and what went wrong, never what the command printed on standard output.
async fn credential_process(
    profile: &str,
    command: &str,
    timeout: Duration,
) -> Result<Credentials, ChainError> {
    use tokio::io::AsyncReadExt;
    let fail = |what: String| {
        err(format!(
            "AWS profile '{profile}': credential_process {what}"
        ))
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // A group of its own, so a command that outlives its deadline goes with everything it
        // started (a shell pipeline, a helper's helper), not only the shell.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("could not be started: {e}")))?;
    let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(fail("has no output pipes".into()));
    };
    let run = async {
        let (mut out, mut diag) = (Vec::new(), Vec::new());
        let limit = MAX_ANSWER as u64 + 1;
        let (mut stdout, mut stderr) = (stdout.take(limit), stderr.take(limit));
        let (read_out, read_diag) =
            tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut diag));
        read_out.and(read_diag)?;
        if out.len() > MAX_ANSWER {
            return Ok((None, out, diag));
        }
        Ok::<_, std::io::Error>((Some(child.wait().await?), out, diag))
    };
    let (status, out, diag) = match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            return Err(fail(format!(
                "did not finish within {} s",
                timeout.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(fail(format!("could not be read: {e}"))),
        Ok(Ok(v)) => v,
    };
    let Some(status) = status else {
        return Err(fail(format!("printed more than {MAX_ANSWER} bytes")));
    };
    // It exited by itself: what it left running is its own business.
    group.0 = None;
    if !status.success() {
        // Helpers explain themselves on standard error ("run aws sso login"); its last line is
        // what an operator needs, bounded so a chatty helper cannot flood the log.
        let text = String::from_utf8_lossy(&diag);
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let last: String = last.trim().chars().take(200).collect();
        return Err(fail(if last.is_empty() {
            format!("failed ({status})")
        } else {
            format!("failed ({status}): {last}")
        }));
    }
    // serde's messages may quote a value, and a value here may be a secret: say only what is
    // expected.
    let shape = "Version 1 with AccessKeyId and SecretAccessKey";
    let c: ProcessCredentials = serde_json::from_slice(&out).map_err(|_| {
        fail(format!(
            "did not print JSON of the expected shape ({shape})"
        ))
    })?;
    if c.version != Some(1) {
        return Err(fail(match c.version {
            Some(v) => format!("printed Version {v}; the one defined is 1"),
            None => format!("printed no Version ({shape})"),
        }));
    }
    let (Some(id), Some(secret)) = (
        c.access_key_id.filter(|v| !v.is_empty()),
        c.secret_access_key.filter(|v| !v.is_empty()),
    ) else {
        return Err(fail(format!(
            "printed no AccessKeyId and SecretAccessKey ({shape})"
        )));
    };
    let expiry = c
        .expiration
        .as_deref()
        .map(expiry_of)
        .transpose()
        .map_err(fail)?;
    Ok(Credentials::new(
        id,
        secret,
        c.session_token.filter(|v| !v.is_empty()),
        expiry,
        "credential_process",
    ))
}

/// Kills a process group when dropped, unless disarmed by taking its id.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(rustix::process::Pid::from_raw) {
            // Already gone is fine: the group's processes all exited.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

// ---- HTTP sources ----

/// One request to a credential endpoint, with a short deadline and a bounded answer.
async fn fetch(req: Request<Full<Bytes>>) -> Result<(http::StatusCode, Bytes), String> {
    // A client of its own, without pooling: refreshes are rare and may run on any worker.
    let client = build_client(&UpstreamClientOptions {
        connect_timeout: Duration::from_secs(2),
        pool_idle_timeout: Duration::from_secs(1),
        pool_max_idle_per_host: 0,
    });
    let uri = req.uri().clone();
    let work = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| format!("{uri} did not answer within {} s", FETCH_TIMEOUT.as_secs()))?
}

fn request(method: Method, url: &str) -> Result<http::request::Builder, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    Ok(Request::builder().method(method).uri(uri))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonCredentials {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expiration: Option<String>,
}

fn expiry_of(s: &str) -> Result<SystemTime, String> {
    let t = aws_smithy_types::DateTime::from_str(s, aws_smithy_types::date_time::Format::DateTime)
        .map_err(|e| format!("expiration '{s}' is not a date-time: {e}"))?;
    SystemTime::try_from(t).map_err(|e| format!("expiration '{s}': {e}"))
}

fn from_json(body: &[u8], provider: &'static str) -> Result<Credentials, String> {
    let c: JsonCredentials =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    if let Some(code) = c.code.as_deref().filter(|c| *c != "Success") {
        return Err(format!(
            "{code}: {}",
            c.message.as_deref().unwrap_or("no message")
        ));
    }
    let (Some(id), Some(secret)) = (c.access_key_id, c.secret_access_key) else {
        return Err("the answer has no AccessKeyId and SecretAccessKey".into());
    };
    let expiry = c.expiration.as_deref().map(expiry_of).transpose()?;
    Ok(Credentials::new(id, secret, c.token, expiry, provider))
}

async fn container(env: &ChainEnv) -> Result<Credentials, ChainError> {
    let url = match (
        env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ) {
        (Some(rel), _) => format!("{ECS_HOST}{rel}"),
        (None, Some(full)) => full.to_string(),
        (None, None) => return Err(err("no container credentials URI")),
    };
    let token = match (
        env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    ) {
        (Some(file), _) => Some(
            std::fs::read_to_string(expand_home(env, file))
                .map_err(|e| {
                    err(format!(
                        "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: {e}"
                    ))
                })?
                .trim()
                .to_string(),
        ),
        (None, Some(t)) => Some(t.to_string()),
        (None, None) => None,
    };
    let fail = |e: String| err(format!("container credentials ({url}): {e}"));
    let mut req = request(Method::GET, &url).map_err(fail)?;
    if let Some(t) = token {
        let mut v = HeaderValue::from_str(&t)
            .map_err(|_| err("the container authorization token has invalid characters"))?;
        v.set_sensitive(true);
        req = req.header(http::header::AUTHORIZATION, v);
    }
    let req = req
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| fail(e.to_string()))?;
    let (status, body) = fetch(req).await.map_err(fail)?;
    if !status.is_success() {
        return Err(fail(format!("answered {status}")));
    }
    from_json(&body, "container").map_err(fail)
}

async fn imds(env: &ChainEnv) -> Result<Credentials, String> {
    let base = env
        .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or(IMDS_ENDPOINT)
        .trim_end_matches('/')
        .to_string();
    let token_req = request(Method::PUT, &format!("{base}/latest/api/token"))?
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let (status, token) = fetch(token_req).await?;
    if !status.is_success() {
        return Err(format!("the session token request answered {status}"));
    }
    let mut token = HeaderValue::from_bytes(token.trim_ascii())
        .map_err(|_| "the session token has invalid characters".to_string())?;
    token.set_sensitive(true);
    let get = |path: String| {
        request(Method::GET, &format!("{base}{path}")).and_then(|r| {
            r.header("x-aws-ec2-metadata-token", token.clone())
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())
        })
    };
    const ROLES: &str = "/latest/meta-data/iam/security-credentials/";
    let (status, roles) = fetch(get(ROLES.to_string())?).await?;
    if !status.is_success() {
        return Err(format!("the instance has no IAM role ({status})"));
    }
    let roles = String::from_utf8_lossy(&roles);
    let role = roles
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("the instance has no IAM role")?;
    let (status, body) = fetch(get(format!("{ROLES}{role}"))?).await?;
    if !status.is_success() {
        return Err(format!(
            "the credentials of role '{role}' answered {status}"
        ));
    }
    from_json(&body, "instance-metadata")
}

/// STS `AssumeRoleWithWebIdentity` with the token file's current contents.
async fn web_identity(env: &ChainEnv, region: &str) -> Result<Credentials, ChainError> {
    let (Some(file), Some(role)) = (
        env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
        env.get("AWS_ROLE_ARN"),
    ) else {
        return Err(err(
            "web identity needs AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
        ));
    };
    let token = std::fs::read_to_string(expand_home(env, file))
        .map_err(|e| err(format!("cannot read AWS_WEB_IDENTITY_TOKEN_FILE: {e}")))?;
    let session = env.get("AWS_ROLE_SESSION_NAME").unwrap_or("tollgate");
    let endpoint = sts_endpoint(env, region);
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role)
        .append_pair("RoleSessionName", session)
        .append_pair("WebIdentityToken", token.trim())
        .finish();
    let fail = |e: String| err(format!("web identity ({endpoint}): {e}"));
    let req = request(Method::POST, &format!("{endpoint}/"))
        .map_err(fail)?
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| fail(e.to_string()))?;
    let (status, body) = fetch(req).await.map_err(fail)?;
    sts_credentials(status, &body, "web-identity").map_err(fail)
}

/// STS of `region` (or `AWS_ENDPOINT_URL_STS`), without a trailing slash.
fn sts_endpoint(env: &ChainEnv, region: &str) -> String {
    match env.get("AWS_ENDPOINT_URL_STS") {
        Some(e) => e.trim_end_matches('/').to_string(),
        None if region.starts_with("cn-") => format!("https://sts.{region}.amazonaws.com.cn"),
        None => format!("https://sts.{region}.amazonaws.com"),
    }
}

/// The temporary credentials of an STS answer (`AssumeRole`, `AssumeRoleWithWebIdentity`), or
/// STS's own message when it refused.
fn sts_credentials(
    status: http::StatusCode,
    body: &[u8],
    provider: &'static str,
) -> Result<Credentials, String> {
    let text = String::from_utf8_lossy(body);
    if !status.is_success() {
        let message = xml_value(&text, "Message").unwrap_or_else(|| status.to_string());
        return Err(format!("STS refused: {message}"));
    }
    let value =
        |tag: &str| xml_value(&text, tag).ok_or_else(|| format!("the STS answer has no {tag}"));
    let expiry = expiry_of(&value("Expiration")?)?;
    Ok(Credentials::new(
        value("AccessKeyId")?,
        value("SecretAccessKey")?,
        Some(value("SessionToken")?),
        Some(expiry),
        provider,
    ))
}

/// STS `AssumeRole` of `role`, signed with `base` (the source profile's or source's credentials).
async fn assume_role(
    env: &ChainEnv,
    profile: &str,
    role: &RoleProfile,
    base: &Credentials,
    region: &str,
) -> Result<Credentials, ChainError> {
    let endpoint = sts_endpoint(env, region);
    let fail = |e: String| {
        err(format!(
            "AWS profile '{profile}': assuming {} ({endpoint}): {e}",
            role.role_arn
        ))
    };
    let now = SystemTime::now();
    let session = role.session_name.clone().unwrap_or_else(|| {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!("tollgate-{secs}")
    });
    let body = {
        // Its encoding hook is not `Sync`: the serializer must be gone before the await.
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", "AssumeRole")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &role.role_arn)
            .append_pair("RoleSessionName", &session);
        if let Some(d) = role.duration_seconds {
            form.append_pair("DurationSeconds", &d.to_string());
        }
        if let Some(id) = &role.external_id {
            form.append_pair("ExternalId", id);
        }
        Bytes::from(form.finish())
    };
    let uri: http::Uri = format!("{endpoint}/")
        .parse()
        .map_err(|e| fail(format!("not a URL: {e}")))?;
    if uri.host().is_none() {
        return Err(fail("the STS endpoint has no host".into()));
    }
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    super::sigv4_sign("sts", base, region, &uri, &mut headers, &body, now)
        .map_err(|e| fail(format!("signing failed ({e})")))?;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| fail(e.to_string()))?;
    *req.headers_mut() = headers;
    let (status, answer) = fetch(req).await.map_err(fail)?;
    sts_credentials(status, &answer, "assume-role").map_err(fail)
}

/// The text of the first `<tag>…</tag>`, with XML's predefined entities decoded. STS answers are
/// flat and small; a full XML parser would add a dependency for five values.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> ChainEnv {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ChainEnv::read(&|k| map.get(k).cloned())
    }

    #[tokio::test]
    async fn profiles_come_from_both_files_and_the_credentials_file_wins() {
        let dir = std::env::temp_dir().join(format!("tg-aws-profile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let creds = dir.join("credentials");
        let config = dir.join("config");
        std::fs::write(
            &creds,
            "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s0\n\n[work]\naws_access_key_id=AKIDWORK\naws_secret_access_key = s1 ; trailing\naws_session_token = tok\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[profile work]\nregion = us-east-1\naws_access_key_id = AKIDOLD\n[profile assumed]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n[profile onlyconfig]\naws_access_key_id = AKIDCFG\naws_secret_access_key = s2\n",
        )
        .unwrap();
        let e = env(&[
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ]);
        let c = from_profile(&e, "work", "us-east-1").await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDWORK");
        assert_eq!(c.secret_access_key(), "s1");
        assert_eq!(c.session_token(), Some("tok"));
        assert_eq!(
            from_profile(&e, "default", "us-east-1")
                .await
                .unwrap()
                .access_key_id(),
            "AKIDDEFAULT"
        );
        assert_eq!(
            from_profile(&e, "onlyconfig", "us-east-1")
                .await
                .unwrap()
                .access_key_id(),
            "AKIDCFG"
        );
        let missing = from_profile(&e, "nope", "us-east-1").await.unwrap_err();
        assert!(missing.0.contains("'nope'"), "{missing}");
        let ProfileEntry::AssumeRole(assumed) = profile_entry(&e, "assumed").unwrap() else {
            panic!("a role_arn profile is a role to assume");
        };
        assert_eq!(assumed.role_arn, "arn:aws:iam::1:role/x");
        assert_eq!(assumed.source, RoleSource::Profile("default".into()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn role_profiles_are_checked_when_read() {
        let dir = std::env::temp_dir().join(format!("tg-aws-roles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config");
        std::fs::write(
            &config,
            "[profile full]\nrole_arn = arn:aws:iam::123456789012:role/bedrock\nsource_profile = base\nrole_session_name = gw\nexternal_id = ext-1\nduration_seconds = 1800\n\
             [profile ec2]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = Ec2InstanceMetadata\n\
             [profile both]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\ncredential_source = Environment\n\
             [profile neither]\nrole_arn = arn:aws:iam::1:role/r\n\
             [profile odd]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = Laptop\n\
             [profile mfa]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\nmfa_serial = arn:aws:iam::1:mfa/me\n\
             [profile short]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = base\nduration_seconds = 60\n",
        )
        .unwrap();
        let e = env(&[("AWS_CONFIG_FILE", config.to_str().unwrap())]);
        let ProfileEntry::AssumeRole(full) = profile_entry(&e, "full").unwrap() else {
            panic!("full is a role");
        };
        assert_eq!(
            full,
            RoleProfile {
                role_arn: "arn:aws:iam::123456789012:role/bedrock".into(),
                source: RoleSource::Profile("base".into()),
                session_name: Some("gw".into()),
                external_id: Some("ext-1".into()),
                duration_seconds: Some(1800),
            }
        );
        assert!(matches!(
            profile_entry(&e, "ec2").unwrap(),
            ProfileEntry::AssumeRole(RoleProfile {
                source: RoleSource::Ec2InstanceMetadata,
                ..
            })
        ));
        for (name, expected) in [
            ("both", "cannot both be set"),
            ("neither", "needs source_profile or credential_source"),
            ("odd", "credential_source 'Laptop'"),
            ("mfa", "mfa_serial"),
            ("short", "duration_seconds '60'"),
        ] {
            let e = profile_entry(&e, name).unwrap_err();
            assert!(e.0.contains(&format!("'{name}'")), "{e}");
            assert!(e.0.contains(expected), "{name}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_source_profile_cycle_ends_with_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("tg-aws-cycle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config");
        std::fs::write(
            &config,
            "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n\
             [profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n\
             [profile self]\nrole_arn = arn:aws:iam::1:role/s\nsource_profile = self\n",
        )
        .unwrap();
        let e = env(&[("AWS_CONFIG_FILE", config.to_str().unwrap())]);
        let cycle = from_profile(&e, "a", "us-east-1").await.unwrap_err();
        assert!(cycle.0.contains("source_profile cycle"), "{cycle}");
        // Naming itself means its own keys, and this one has none.
        let own = from_profile(&e, "self", "us-east-1").await.unwrap_err();
        assert!(own.0.contains("its own source_profile"), "{own}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn answers_are_read_and_failures_named() {
        let c = from_json(
            br#"{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2026-11-26T12:00:00Z"}"#,
            "container",
        )
        .unwrap();
        assert_eq!(c.session_token(), Some("t"));
        assert!(c.expiry().is_some());
        assert!(
            from_json(br#"{"Code":"Failed","Message":"no"}"#, "x")
                .unwrap_err()
                .contains("Failed")
        );
        assert!(from_json(br#"{"AccessKeyId":"A"}"#, "x").is_err());
        assert!(
            from_json(
                br#"{"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"soon"}"#,
                "x"
            )
            .is_err()
        );
        let xml = "<R><Credentials><AccessKeyId>ASIA</AccessKeyId><SessionToken>a&amp;b</SessionToken></Credentials></R>";
        assert_eq!(xml_value(xml, "SessionToken").as_deref(), Some("a&b"));
        assert_eq!(xml_value(xml, "Expiration"), None);
    }

    #[tokio::test]
    async fn the_chain_takes_the_environment_first_and_reports_when_nothing_applies() {
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:1/creds",
            ),
        ]);
        let c = resolve(&Source::Chain, &e, "us-east-1").await.unwrap();
        assert_eq!(c.access_key_id(), "AKIDENV");
        let e = env(&[
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("HOME", "/nonexistent"),
        ]);
        let msg = resolve(&Source::Chain, &e, "us-east-1")
            .await
            .unwrap_err()
            .0;
        assert!(msg.contains("no AWS credentials"), "{msg}");
    }

    #[tokio::test]
    async fn cached_credentials_are_reused_until_shortly_before_they_expire() {
        let cache = CredentialCache::new(Source::Chain, "us-east-1", env(&[]));
        let now = SystemTime::now();
        let soon = Credentials::new("A", "s", None, Some(now + Duration::from_secs(3600)), "t");
        cache.current.store(Some(Arc::new(soon)));
        assert_eq!(cache.get(now).await.unwrap().access_key_id(), "A");
        // Within the refresh margin the chain is asked again; it fails here (no source), and
        // the still-valid credentials are used meanwhile.
        let later = now + Duration::from_secs(3600) - Duration::from_secs(60);
        let e = env(&[
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("HOME", "/nonexistent"),
        ]);
        let cache2 = CredentialCache::new(Source::Chain, "us-east-1", e);
        cache2.current.store(Some(Arc::new(Credentials::new(
            "B",
            "s",
            None,
            Some(now + Duration::from_secs(3600)),
            "t",
        ))));
        assert_eq!(cache2.get(later).await.unwrap().access_key_id(), "B");
        let expired = now + Duration::from_secs(7200);
        assert!(cache2.get(expired).await.is_err());
    }

    #[tokio::test]
    async fn a_failed_lookup_is_not_repeated_at_once() {
        let dir = std::env::temp_dir().join(format!("tg-aws-retry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("credentials");
        let e = env(&[("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap())]);
        let cache = CredentialCache::new(Source::Profile("p".into()), "us-east-1", e);
        let now = SystemTime::now();
        assert!(cache.get(now).await.is_err());
        std::fs::write(
            &file,
            "[p]\naws_access_key_id = AK\naws_secret_access_key = s\n",
        )
        .unwrap();
        // Within the pause the earlier failure answers; after it the source is asked again.
        assert!(cache.get(now + Duration::from_secs(1)).await.is_err());
        let later = now + RETRY_AFTER_FAILURE + Duration::from_secs(1);
        assert_eq!(cache.get(later).await.unwrap().access_key_id(), "AK");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A directory holding a config file whose profile `helper` runs `command`.
    fn process_profile(tag: &str, command: &str) -> (std::path::PathBuf, ChainEnv) {
        let dir = std::env::temp_dir().join(format!("tg-aws-process-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config");
        std::fs::write(
            &config,
            format!("[profile helper]\nregion = eu-west-1\ncredential_process = {command}\n"),
        )
        .unwrap();
        let e = env(&[
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("HOME", dir.to_str().unwrap()),
        ]);
        (dir, e)
    }

    #[tokio::test]
    async fn a_credential_process_profile_signs_with_what_the_command_prints() {
        let (dir, e) = process_profile(
            "ok",
            r#"printf '%s' '{"Version": 1, "AccessKeyId": "ASIAPROC", "SecretAccessKey": "proc-secret", "SessionToken": "proc-token", "Expiration": "2030-01-02T03:04:05Z"}'"#,
        );
        assert!(matches!(
            profile_entry(&e, "helper").unwrap(),
            ProfileEntry::Process(cmd) if cmd.starts_with("printf")
        ));
        let c = from_profile(&e, "helper", "us-east-1").await.unwrap();
        assert_eq!(c.access_key_id(), "ASIAPROC");
        assert_eq!(c.secret_access_key(), "proc-secret");
        assert_eq!(c.session_token(), Some("proc-token"));
        assert_eq!(
            c.expiry(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_553_445))
        );
        // The chain reaches it through AWS_PROFILE like any other profile.
        let mut chain = e.clone();
        chain.vars.insert("AWS_PROFILE", "helper".into());
        let c = resolve(&Source::Chain, &chain, "eu-west-1").await.unwrap();
        assert_eq!(c.access_key_id(), "ASIAPROC");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn credentials_without_an_expiration_are_kept_and_a_session_token_is_optional() {
        let c = credential_process(
            "p",
            r#"echo '{"Version":1,"AccessKeyId":"AKIDLONG","SecretAccessKey":"s"}'"#,
            PROCESS_TIMEOUT,
        )
        .await
        .unwrap();
        assert_eq!(c.expiry(), None);
        assert_eq!(c.session_token(), None);
        assert!(fresh(
            &c,
            SystemTime::now() + Duration::from_secs(10 * 365 * 86_400)
        ));
    }

    #[tokio::test]
    async fn a_failing_or_misbehaving_command_is_named_without_what_it_printed() {
        let failing = credential_process(
            "sso",
            "echo '{\"SecretAccessKey\":\"leak-me\"}'; echo 'starting' >&2; echo 'the SSO session has expired; run aws sso login' >&2; exit 3",
            PROCESS_TIMEOUT,
        )
        .await
        .unwrap_err();
        assert!(failing.0.contains("AWS profile 'sso'"), "{failing}");
        assert!(failing.0.contains("exit status: 3"), "{failing}");
        assert!(
            failing
                .0
                .ends_with("the SSO session has expired; run aws sso login"),
            "{failing}"
        );
        assert!(!failing.0.contains("leak-me"), "{failing}");

        let cases = [
            (
                r#"echo '{"Version":2,"AccessKeyId":"A","SecretAccessKey":"leak-me"}'"#,
                "Version 2",
            ),
            (
                r#"echo '{"AccessKeyId":"A","SecretAccessKey":"leak-me"}'"#,
                "no Version",
            ),
            (
                r#"echo '{"Version":1,"AccessKeyId":"A"}'"#,
                "no AccessKeyId and SecretAccessKey",
            ),
            (
                r#"echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":7}'"#,
                "expected shape",
            ),
            ("echo leak-me", "expected shape"),
            (
                r#"echo '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"leak-me","Expiration":"soon"}'"#,
                "is not a date-time",
            ),
            ("head -c 70000 /dev/zero", "more than 65536 bytes"),
            ("/nonexistent/helper", "exit status: 127"),
        ];
        for (command, expected) in cases {
            let e = credential_process("p", command, PROCESS_TIMEOUT)
                .await
                .unwrap_err();
            assert!(e.0.contains(expected), "{command}: {e}");
            assert!(!e.0.contains("leak-me"), "{command}: {e}");
        }
    }

    #[tokio::test]
    async fn a_command_that_hangs_is_killed_at_its_deadline_with_what_it_started() {
        let dir = std::env::temp_dir().join(format!("tg-aws-hang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pids = dir.join("pids");
        // A shell that starts a background sleeper and then waits: killing the shell alone
        // would leave the sleeper running.
        let command = format!(
            "sleep 30 & echo $! > {p}; echo $$ >> {p}; wait",
            p = pids.display()
        );
        let started = std::time::Instant::now();
        let e = credential_process("slow", &command, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.0.contains("did not finish within 1 s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let text = std::fs::read_to_string(&pids).unwrap();
        for pid in text.split_whitespace() {
            let alive = || {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
            };
            let until = std::time::Instant::now() + Duration::from_secs(5);
            while alive() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                !alive(),
                "process {pid} of the command outlived its deadline"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
