//! One function per command.

use crate::admin_client::{AdminClient, enc};
use crate::cli::{ClaudeCodeAction, Cli, Command, KeysAction, Remote, TeamsAction, UsersAction};
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
        Command::Teams { action } => teams(action, &remote).await,
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
        Command::Spend { by, since } => {
            let mut path = format!("/spend?by={}", enc(&by));
            if let Some(s) = since {
                path.push_str(&format!("&since={}", enc(&s)));
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
        TeamsAction::Create { name } => {
            let v = c
                .call(Method::POST, "/teams", Some(json!({"name": name})))
                .await?;
            print_one(&v, remote.json, |v| {
                format!("{}  {}", s(&v["id"]), s(&v["name"]))
            });
        }
        TeamsAction::List => {
            let v = c.call(Method::GET, "/teams", None).await?;
            print_list(&v, remote.json, &["ID", "NAME", "CREATED"], |t| {
                vec![s(&t["id"]), s(&t["name"]), s(&t["created_at"])]
            });
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
        KeysAction::Create { user, team, name } => {
            let v = c
                .call(
                    Method::POST,
                    "/keys",
                    Some(json!({"user": user, "team": team, "name": name})),
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
                &["ID", "PREFIX", "NAME", "USER", "TEAM", "CREATED", "REVOKED"],
                |k| {
                    vec![
                        s(&k["id"]),
                        format!("{}…", s(&k["prefix"])),
                        s(&k["name"]),
                        s(&k["user"]),
                        s(&k["team"]),
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
