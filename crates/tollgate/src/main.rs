//! `tollgate`: the AI gateway binary — `serve` runs the gateway, the other commands talk to a
//! running gateway's admin API.
//!
//! # Layout
//! - `cli`: the command-line grammar.
//! - `admin_client`: a small HTTP client for the admin API.
//! - `commands`: one function per command, printing for people or as JSON.
//! - `claude_code`: the `settings.json` block for developers.
//! - `cpu`: the start-up check that the CPU has the features the build targets.

mod admin_client;
mod claude_code;
mod cli;
mod commands;
mod cpu;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let missing = cpu::missing_features();
    if !missing.is_empty() {
        eprintln!(
            "error: this tollgate binary was built for CPUs with {}, which this one lacks; \
             build it for this CPU with RUSTFLAGS=\"-C target-cpu=native\" cargo build --release",
            missing.join(", ")
        );
        return std::process::ExitCode::FAILURE;
    }
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tollgate=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // One crypto provider for every TLS user in the process (upstream client, later OTLP).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
