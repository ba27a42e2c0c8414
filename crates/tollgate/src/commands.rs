//! One function per command.

use crate::admin_client::{AdminClient, enc};
use crate::cli::{
    AdminsAction, ClaudeCodeAction, Cli, Command, CredentialsAction, KeysAction, PoliciesAction,
    Remote, TeamsAction, UsersAction, WorkspacesAction,
};
use http::Method;
use serde_json::{Value, json};

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), String> {
    let remote = cli.remote;
    match cli.command {
        Command::Serve { config, listen } => {
            tollgate_server::serve(tollgate_server::ServeOptions {
                config,
                listen,
                data_dir: remote.data_dir,
            })
            .await
        }
        Command::Workspaces { action } => workspaces(action, &remote).await,
        Command::Teams { action } => teams(action, &remote).await,
        Command::Admins { action } => admins(action, &remote).await,
        Command::Policies { action } => policies(action, &remote).await,
        Command::Credentials { action } => credentials(action, &remote).await,
        Command::Audit { limit } => {
            let v = client(&remote)?
                .call(Method::GET, &format!("/audit?limit={limit}"), None)
                .await?;
            print_list(
                &v,
                remote.json,
                &["AT", "ACTOR", "ROLE", "ACTION", "TARGET"],
                |e| {
                    vec![
                        s(&e["at"]),
                        s(&e["actor"]),
                        s(&e["actor_role"]),
                        s(&e["action"]),
                        s(&e["target"]),
                    ]
                },
            );
            Ok(())
        }
        Command::Whoami => {
            let v = client(&remote)?.call(Method::GET, "/whoami", None).await?;
            print_one(&v, remote.json, |v| {
                format!("{}  {}  {}", s(&v["name"]), s(&v["role"]), s(&v["scope"]))
            });
            Ok(())
        }
        Command::Users { action } => users(action, &remote).await,
        Command::Keys { action } => keys(action, &remote).await,
        Command::Logs {
            limit,
            user,
            team,
            session,
            status,
            since,
        } => {
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [
                ("user", user),
                ("team", team),
                ("session", session),
                ("since", since),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", enc(&v)));
                }
            }
            if let Some(s) = status {
                q.push(format!("status={s}"));
            }
            let v = client(&remote)?
                .call(Method::GET, &format!("/requests?{}", q.join("&")), None)
                .await?;
            print_logs(&v, remote.json);
            Ok(())
        }
        Command::Spend { by, since, until } => {
            let mut path = format!("/spend?group_by={}", enc(&by));
            for (k, v) in [("since", since), ("until", until)] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", enc(&v)));
                }
            }
            let v = client(&remote)?.call(Method::GET, &path, None).await?;
            print_spend(&v, &by, remote.json);
            Ok(())
        }
        Command::ClaudeCode {
            action: ClaudeCodeAction::Settings { key, url, headers },
        } => {
            let v = crate::claude_code::settings(&url, &key, &headers)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
            );
            Ok(())
        }
    }
}

fn client(remote: &Remote) -> Result<AdminClient, String> {
    AdminClient::new(remote)
}

async fn teams(action: TeamsAction, remote: &Remote) -> Result<(), String> {
    let c = client(remote)?;
    match action {
        TeamsAction::Create { name, workspace } => {
            let v = c
                .call(
                    Method::POST,
                    "/teams",
                    Some(json!({"name": name, "workspace": workspace})),
                )
                .await?;
            print_one(&v, remote.json, |v| {
                format!("{}  {}", s(&v["id"]), s(&v["name"]))
            });
        }
        TeamsAction::List => {
            let v = c.call(Method::GET, "/teams", None).await?;
            print_list(
                &v,
                remote.json,
                &["ID", "NAME", "WORKSPACE", "CREATED"],
                |t| {
                    vec![
                        s(&t["id"]),
                        s(&t["name"]),
                        s(&t["workspace"]),
                        s(&t["created_at"]),
                    ]
                },
            );
        }
    }
    Ok(())
}

async fn users(action: UsersAction, remote: &Remote) -> Result<(), String> {
    let c = client(remote)?;
    match action {
        UsersAction::Create { name, team, email } => {
            let v = c
                .call(
                    Method::POST,
                    "/users",
                    Some(json!({"name": name, "team": team, "email": email})),
                )
                .await?;
            print_one(&v, remote.json, |v| {
                format!("{}  {}", s(&v["id"]), s(&v["name"]))
            });
        }
        UsersAction::List => {
            let v = c.call(Method::GET, "/users", None).await?;
            print_list(&v, remote.json, &["ID", "NAME", "TEAM", "EMAIL"], |u| {
                vec![s(&u["id"]), s(&u["name"]), s(&u["team"]), s(&u["email"])]
            });
        }
    }
    Ok(())
}

async fn keys(action: KeysAction, remote: &Remote) -> Result<(), String> {
    let c = client(remote)?;
    match action {
        KeysAction::Create {
            user,
            team,
            name,
            project,
        } => {
            let v = c
                .call(
                    Method::POST,
                    "/keys",
                    Some(json!({"user": user, "team": team, "name": name, "project": project})),
                )
                .await?;
            // Without --json, only the key: easy to capture in scripts, shown once.
            print_one(&v, remote.json, |v| s(&v["key"]));
        }
        KeysAction::List => {
            let v = c.call(Method::GET, "/keys", None).await?;
            print_list(
                &v,
                remote.json,
                &[
                    "ID", "PREFIX", "NAME", "USER", "TEAM", "PROJECT", "CREATED", "REVOKED",
                ],
                |k| {
                    vec![
                        s(&k["id"]),
                        format!("{}…", s(&k["prefix"])),
                        s(&k["name"]),
                        if k["service"].as_bool() == Some(true) {
                            "(service)".into()
                        } else {
                            s(&k["user"])
                        },
                        s(&k["team"]),
                        s(&k["project"]),
                        s(&k["created_at"]),
                        s(&k["revoked_at"]),
                    ]
                },
            );
        }
        KeysAction::Revoke { id } => {
            let v = c
                .call(Method::DELETE, &format!("/keys/{}", enc(&id)), None)
                .await?;
            print_one(&v, remote.json, |v| format!("revoked {}", s(&v["id"])));
        }
    }
    Ok(())
}

async fn workspaces(action: WorkspacesAction, remote: &Remote) -> Result<(), String> {
    let c = client(remote)?;
    match action {
        WorkspacesAction::Create { name } => {
            let v = c
                .call(Method::POST, "/workspaces", Some(json!({"name": name})))
                .await?;
            print_one(&v, remote.json, |v| {
                format!("{}  {}", s(&v["id"]), s(&v["name"]))
            });
        }
        WorkspacesAction::List => {
            let v = c.call(Method::GET, "/workspaces", None).await?;
            print_list(&v, remote.json, &["ID", "NAME", "CREATED"], |w| {
                vec![s(&w["id"]), s(&w["name"]), s(&w["created_at"])]
            });
        }
    }
    Ok(())
}

async fn admins(action: AdminsAction, remote: &Remote) -> Result<(), String> {
    let c = client(remote)?;
    match action {
        AdminsAction::Create {
            name,
            role,
            workspace,
            team,
            user,
        } => {
            let v = c
                .call(
                    Method::POST,
                    "/admins",
                    Some(json!({
                        "name": name, "role": role, "workspace": workspace, "team": team,
                        "user": user,
                    })),
                )
                .await?;
            // Without --json, only the secret: shown once, easy to capture.
            print_one(&v, remote.json, |v| s(&v["key"]));
        }
        AdminsAction::List => {
            let v = c.call(Method::GET, "/admins", None).await?;
            print_list(
                &v,
                remote.json,
                &["ID", "NAME", "ROLE", "SCOPE", "CREATED", "REVOKED"],
                |a| {
                    let scope = [
                        ("user", &a["user"]),
                        ("team", &a["team"]),
                        ("workspace", &a["workspace"]),
                    ]
                    .iter()
                    .find(|(_, v)| v.is_string())
                    .map_or("org".to_string(), |(k, v)| format!("{k}:{}", s(v)));
                    vec![
                        s(&a["id"]),
                        s(&a["name"]),
                        s(&a["role"]),
                        scope,
                        s(&a["created_at"]),
                        s(&a["revoked_at"]),
                    ]
                },
            );
        }
        AdminsAction::Revoke { id } => {
            let v = c
                .call(Method::DELETE, &format!("/admins/{}", enc(&id)), None)
                .await?;
            print_one(&v, remote.json, |v| format!("revoked {}", s(&v["id"])));
        }
    }
    Ok(())
}

/// Reads a policy file: TOML when it ends in `.toml`, else JSON (or TOML when it is not JSON).
fn read_policy(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    if !is_toml && let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    toml::from_str::<Value>(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn policy_scope_and_name(p: &Value) -> (String, String) {
    (s(&p["scope"]), s(&p["name"]))
}

async fn policies(action: PoliciesAction, remote: &Remote) -> Result<(), String> {
    let c = client(remote)?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    match action {
        PoliciesAction::List => {
            let v = c.call(Method::GET, "/policies", None).await?;
            print_list(
                &v,
                remote.json,
                &["ID", "SCOPE", "NAME", "BUDGETS", "UPDATED"],
                |p| {
                    let (scope, name) = policy_scope_and_name(p);
                    let budgets = p["budgets"]
                        .as_array()
                        .map(|b| {
                            b.iter()
                                .map(|b| format!("${}/{}", s(&b["amount_usd"]), s(&b["period"])))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_else(|| "-".into());
                    vec![s(&p["id"]), scope, name, budgets, s(&p["updated_at"])]
                },
            );
        }
        PoliciesAction::Get { id } => {
            let v = c
                .call(Method::GET, &format!("/policies/{}", enc(&id)), None)
                .await?;
            print_one(&v, remote.json, pretty);
        }
        PoliciesAction::Create { file } => {
            let body = read_policy(&file)?;
            let v = c.call(Method::POST, "/policies", Some(body)).await?;
            print_one(&v, remote.json, |v| {
                format!("{}  {}", s(&v["id"]), s(&v["scope"]))
            });
        }
        PoliciesAction::Set { id, file } => {
            let body = read_policy(&file)?;
            let v = c
                .call(Method::PUT, &format!("/policies/{}", enc(&id)), Some(body))
                .await?;
            print_one(&v, remote.json, |v| {
                format!("{}  {}", s(&v["id"]), s(&v["scope"]))
            });
        }
        PoliciesAction::Delete { id } => {
            let v = c
                .call(Method::DELETE, &format!("/policies/{}", enc(&id)), None)
                .await?;
            print_one(&v, remote.json, |v| format!("deleted {}", s(&v["deleted"])));
        }
    }
    Ok(())
}

fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    // The error names the file, never its contents.
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

async fn credentials(action: CredentialsAction, remote: &Remote) -> Result<(), String> {
    let c = client(remote)?;
    match action {
        CredentialsAction::List => {
            let v = c.call(Method::GET, "/providers", None).await?;
            let items = v["data"].as_array().cloned().unwrap_or_default();
            if remote.json {
                println!("{}", Value::Array(items));
                return Ok(());
            }
            let mut rows = Vec::new();
            for p in &items {
                let creds = p["credentials"].as_array().cloned().unwrap_or_default();
                if creds.is_empty() {
                    rows.push(vec![
                        s(&p["name"]),
                        s(&p["kind"]),
                        if p["config_credential"].as_bool() == Some(true) {
                            "(config file)".into()
                        } else {
                            "-".into()
                        },
                        "-".into(),
                        "-".into(),
                    ]);
                }
                for cr in creds {
                    rows.push(vec![
                        s(&p["name"]),
                        s(&p["kind"]),
                        s(&cr["scope_name"]),
                        s(&cr["kind"]),
                        s(&cr["rotated_at"]),
                    ]);
                }
            }
            print_table(&["PROVIDER", "KIND", "SCOPE", "SECRET", "ROTATED"], &rows);
        }
        CredentialsAction::Set {
            provider,
            scope,
            api_key_file,
            api_key_env,
            aws_from_env,
            service_account_file,
            from_file,
        } => {
            let mut body = if let Some(f) = from_file {
                serde_json::from_str::<Value>(&read_secret_file(&f)?)
                    .map_err(|_| format!("{} is not a JSON object", f.display()))?
            } else if let Some(f) = api_key_file {
                json!({"api_key": read_secret_file(&f)?})
            } else if let Some(var) = api_key_env {
                let key = std::env::var(&var)
                    .ok()
                    .filter(|k| !k.trim().is_empty())
                    .ok_or_else(|| format!("environment variable {var} is not set"))?;
                json!({"api_key": key.trim()})
            } else if aws_from_env {
                let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
                json!({
                    "aws_access_key_id": var("AWS_ACCESS_KEY_ID").ok_or("AWS_ACCESS_KEY_ID is not set")?,
                    "aws_secret_access_key": var("AWS_SECRET_ACCESS_KEY").ok_or("AWS_SECRET_ACCESS_KEY is not set")?,
                    "aws_session_token": var("AWS_SESSION_TOKEN"),
                })
            } else if let Some(f) = service_account_file {
                json!({"service_account_json": read_secret_file(&f)?})
            } else {
                return Err("no secret given".into());
            };
            if let Some(scope) = scope {
                body["scope"] = json!(scope);
            }
            let v = c
                .call(
                    Method::PUT,
                    &format!("/providers/{}/credentials", enc(&provider)),
                    Some(body),
                )
                .await?;
            print_one(&v, remote.json, |v| {
                format!(
                    "{}  {}  {}  rotated {}",
                    s(&v["provider"]),
                    s(&v["scope_name"]),
                    s(&v["kind"]),
                    s(&v["rotated_at"])
                )
            });
        }
        CredentialsAction::Delete { provider, scope } => {
            let mut path = format!("/providers/{}/credentials", enc(&provider));
            if let Some(scope) = scope {
                path.push_str(&format!("?scope={}", enc(&scope)));
            }
            let v = c.call(Method::DELETE, &path, None).await?;
            print_one(&v, remote.json, |v| {
                format!(
                    "deleted {} at {}",
                    s(&v["deleted"]["provider"]),
                    s(&v["deleted"]["scope_name"])
                )
            });
        }
        CredentialsAction::RotateMaster { new_key_file } => {
            let abs = std::fs::canonicalize(&new_key_file)
                .map_err(|e| format!("{}: {e}", new_key_file.display()))?;
            let v = c
                .call(
                    Method::POST,
                    "/master-key/rotate",
                    Some(json!({"new_key_file": abs.to_string_lossy()})),
                )
                .await?;
            print_one(&v, remote.json, |v| {
                let mut out = format!(
                    "re-sealed {} credential(s) under master key version {}",
                    s(&v["resealed"]),
                    s(&v["key_version"])
                );
                if let Some(n) = v["note"].as_str() {
                    out.push_str(&format!("\n{n}"));
                }
                out
            });
        }
    }
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn print_one(v: &Value, json: bool, human: impl Fn(&Value) -> String) {
    if json {
        println!("{v}");
    } else {
        println!("{}", human(v));
    }
}

fn print_list(v: &Value, json: bool, header: &[&str], row: impl Fn(&Value) -> Vec<String>) {
    let items = v["data"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", Value::Array(items));
        return;
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    print_table(header, &rows);
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.iter().map(|h| h.to_string()).collect()));
    for r in rows {
        println!("{}", line(r.clone()));
    }
}

fn print_logs(v: &Value, json: bool) {
    let items = v["data"].as_array().cloned().unwrap_or_default();
    if json {
        // One record per line, so `jq` and line tools work on long journals.
        for r in &items {
            println!("{r}");
        }
        return;
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            vec![
                s(&r["started_at"]),
                s(&r["status"]),
                s(&r["user"]),
                s(&r["team"]),
                s(&r["model"]),
                format!("{}/{}", s(&r["input_tokens"]), s(&r["output_tokens"])),
                format!(
                    "{}/{}",
                    s(&r["cache_read_input_tokens"]),
                    s(&r["cache_creation_input_tokens"])
                ),
                if r["cost_unknown"].as_bool() == Some(true) {
                    "unknown".into()
                } else {
                    format!("${}", s(&r["cost_usd"]))
                },
                format!("{}ms", s(&r["duration_ms"])),
                s(&r["session_id"]),
                s(&r["error_type"]),
            ]
        })
        .collect();
    print_table(
        &[
            "TIME",
            "STATUS",
            "USER",
            "TEAM",
            "MODEL",
            "IN/OUT",
            "CACHE R/W",
            "COST",
            "DURATION",
            "SESSION",
            "ERROR",
        ],
        &rows,
    );
}

fn print_spend(v: &Value, by: &str, json: bool) {
    let items = v["data"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", Value::Array(items));
        return;
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            vec![
                s(&r["group"]),
                s(&r["requests"]),
                s(&r["input_tokens"]),
                s(&r["output_tokens"]),
                s(&r["cache_read_input_tokens"]),
                s(&r["cache_creation_input_tokens"]),
                format!("${}", s(&r["cost_usd"])),
                s(&r["unknown_cost_requests"]),
            ]
        })
        .collect();
    let by_header = by.to_uppercase();
    print_table(
        &[
            &by_header,
            "REQUESTS",
            "INPUT",
            "OUTPUT",
            "CACHE READ",
            "CACHE WRITE",
            "COST",
            "UNKNOWN COST",
        ],
        &rows,
    );
}
