//! The `hornbill` command: `serve` (the default) and `check-config`, and the client commands
//! (`logs`, `channels`, `send`) that talk to a running server: `cli`.

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hornbill::config::Settings;
use hornbill::transports::Registry;
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
    about = "Multi-channel text-messaging engine with a Junebug-compatible HTTP API",
    after_help = EXAMPLES
)]
struct Cli {
    /// Config file (TOML). HORNBILL__SECTION__KEY environment variables override it.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config.toml",
        help_heading = SERVER_OPTIONS
    )]
    config: PathBuf,
    /// Log format on stderr: text or json (overrides [log] format).
    #[arg(long, global = true, help_heading = SERVER_OPTIONS)]
    log_format: Option<String>,
    #[command(flatten)]
    client: cli::ClientOpts,
    #[command(subcommand)]
    command: Option<Command>,
}

const SERVER_OPTIONS: &str = "Server options (serve, check-config)";

const EXAMPLES: &str = "\
Examples:
  hornbill                                  run the server on ./config.toml
  hornbill check-config prod.toml           check a config file
  hornbill channels list                    the channels of the server at --url
  hornbill logs tail --channel CID -f       follow a channel's log
  hornbill send --channel CID --to +27831234567 --content Hi

The client commands (logs, channels, send) read HORNBILL_URL, HORNBILL_TOKEN,
HORNBILL_USER and HORNBILL_PASSWORD when --url, --token, --user, --password are not given.";

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Check a config file, report every problem, exit 1 if there is any.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
    #[command(flatten)]
    Client(cli::Command),
}

fn init_tracing(settings: &Settings, format: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log.level))
        // tokio-xmpp traces every byte of its XML streams, SASL exchanges included (a PLAIN
        // login is the password in base64): never, whatever RUST_LOG says.
        .add_directive(
            "tokio_xmpp::xmlstream::capture=off"
                .parse()
                .expect("a valid directive"),
        );
    // Colours only for a terminal: a log collector gets plain lines.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours);
    if format.unwrap_or(&settings.log.format) == "json" {
        builder.json().with_writer(std::io::stderr).init();
    } else {
        // One event, one line: control characters in values are escaped.
        builder
            .with_writer(move || hornbill::telemetry::LineSafe::new(std::io::stderr(), colours))
            .init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Client(command)) => match cli::run(cli.client, command) {
            Ok(()) | Err(cli::Error::Closed) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hornbill: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::CheckConfig { file }) => {
            let path = file.unwrap_or(cli.config);
            match Settings::load(&path, true, &Registry::builtin()) {
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
            let registry = Registry::builtin();
            let settings = match Settings::load(&cli.config, false, &registry) {
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
            match serve(settings, registry) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hornbill: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Raises the open-files soft limit to the hard one, before any thread starts, and says
/// where it stands (`hornbill::limits`).
fn raise_open_files(reserve: usize) {
    match hornbill::limits::raise_open_files() {
        Ok(l) if l.soft > l.before => tracing::info!(
            soft = l.soft,
            hard = l.hard,
            was = l.before,
            fd_reserve = reserve,
            "Open files: soft limit raised to the hard limit."
        ),
        Ok(l) => tracing::info!(
            soft = l.soft,
            hard = l.hard,
            fd_reserve = reserve,
            "Open files: limits as given."
        ),
        Err(e) => tracing::warn!(error = %e, "Open files: cannot read or raise the limit."),
    }
}

fn serve(settings: Settings, registry: Registry) -> anyhow::Result<()> {
    raise_open_files(settings.server.fd_reserve);
    actix_web::rt::System::new().block_on(async move {
        let bind = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = std::net::TcpListener::bind(&bind)
            .with_context(|| format!("cannot listen on {bind}"))?;
        let running = hornbill::start(settings, registry, listener).await?;
        tracing::info!(addr = %running.addr, "Hornbill is listening.");
        // A reader that went away (a script reading only the first line) is no reason to stop.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "hornbill listening on http://{}", running.addr);
        if let Some(public) = running.public_addr {
            tracing::info!(addr = %public, "Provider callbacks are served on the public listener.");
            let _ = writeln!(out, "hornbill public listener on http://{public}");
        }
        let _ = out.flush();
        // A stop hands this node's channels to the others first (bounded by [cluster] grace).
        let stop = {
            let handle = running.handle.clone();
            let core = running.core.clone();
            move || async move {
                tracing::info!("Stopping: handing the channels over.");
                let grace = std::time::Duration::from_secs_f64(core.settings.cluster.grace);
                core.membership.leave(grace).await;
                core.bus.flush(std::time::Duration::from_secs(5)).await;
                tracing::info!("Stopping.");
                handle.stop(true).await;
            }
        };
        let on_interrupt = stop.clone();
        actix_web::rt::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_interrupt().await;
        });
        #[cfg(unix)]
        actix_web::rt::spawn(async move {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                stop().await;
            }
        });
        running.server.await?;
        Ok(())
    })
}
