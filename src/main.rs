//! The `hornbill` command: `serve` (the default) and `check-config`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hornbill::config::Settings;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

// glibc's malloc showed as a fifth of the server's CPU under load (perf, bench/run.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hornbill",
    version,
    about = "Multi-channel text-messaging engine with a Junebug-compatible HTTP API"
)]
struct Cli {
    /// Config file (TOML). HORNBILL__SECTION__KEY environment variables override it.
    #[arg(long, short, global = true, default_value = "config.toml")]
    config: PathBuf,
    /// Log format on stderr: text or json (overrides [log] format).
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Check a config file, report every problem, exit 1 if there is any.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
}

fn init_tracing(settings: &Settings, format: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format.unwrap_or(&settings.log.format) == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => {
            let path = file.unwrap_or(cli.config);
            match Settings::load(&path, true) {
                Ok(s) => {
                    println!(
                        "{}: OK ({} channel(s) defined)",
                        path.display(),
                        s.channels.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    eprintln!(
                        "{}: {} problem(s):\n{problems}",
                        path.display(),
                        problems.0.len()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        None | Some(Command::Serve) => {
            let settings = match Settings::load(&cli.config, false) {
                Ok(s) => s,
                Err(problems) => {
                    eprintln!(
                        "{}: {} problem(s):\n{problems}",
                        cli.config.display(),
                        problems.0.len()
                    );
                    return ExitCode::FAILURE;
                }
            };
            init_tracing(&settings, cli.log_format.as_deref());
            match serve(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hornbill: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let bind = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = std::net::TcpListener::bind(&bind)
            .with_context(|| format!("cannot listen on {bind}"))?;
        let running = hornbill::start(
            settings,
            hornbill::transports::Registry::builtin(),
            listener,
        )
        .await?;
        tracing::info!(addr = %running.addr, "Hornbill is listening.");
        // A reader that went away (a script reading only the first line) is no reason to stop.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "hornbill listening on http://{}", running.addr);
        if let Some(public) = running.public_addr {
            tracing::info!(addr = %public, "Provider callbacks are served on the public listener.");
            let _ = writeln!(out, "hornbill public listener on http://{public}");
        }
        let _ = out.flush();
        let handle = running.handle.clone();
        actix_web::rt::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Stopping.");
            handle.stop(true).await;
        });
        #[cfg(unix)]
        {
            let handle = running.handle.clone();
            actix_web::rt::spawn(async move {
                if let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    term.recv().await;
                    tracing::info!("Stopping.");
                    handle.stop(true).await;
                }
            });
        }
        running.server.await?;
        Ok(())
    })
}
