//! Runs the scripted upstream as a process, for tests written in other languages and benchmarks.

use std::io::Write as _;
use std::net::SocketAddr;

use clap::Parser;
use tollgate_testkit::{ScriptedUpstream, UpstreamOptions};

/// A strict, scripted fake of the Anthropic Messages API.
#[derive(Parser)]
#[command(name = "scripted-upstream")]
struct Args {
    /// The only accepted `x-api-key` value.
    #[arg(long)]
    api_key: String,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Fixed answers without checks or recording, for benchmarks.
    #[arg(long)]
    fast: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let upstream = ScriptedUpstream::bind(
        args.listen,
        UpstreamOptions {
            api_key: args.api_key,
            fast: args.fast,
        },
    )
    .await?;
    // Test harnesses wait for this exact line to learn the port.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "LISTENING {}", upstream.addr())?;
    stdout.flush()?;
    drop(stdout);
    tokio::signal::ctrl_c().await?;
    drop(upstream);
    Ok(())
}
