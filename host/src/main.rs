//! The `sluice` command line: parses arguments and wires the library together.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// A WebAssembly transformation host for change-data-capture streams.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the pipeline described by a configuration file.
    Run {
        /// The TOML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Captures SQL Server CDC changes into Kafka as Debezium change events.
    #[command(args_conflicts_with_subcommands = true)]
    Capture {
        /// The TOML configuration (see README, SQL Server capture).
        #[arg(long, short, required = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: Option<CaptureCommand>,
    },
    /// Tools for plugin authors.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// The dead-letter topic.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Runs the events a plugin dead-lettered through the version now in service and
    /// publishes what it produces; resumable, never replays an event twice.
    Replay {
        /// The `sluice run` configuration (its Kafka sink, dead-letter topic, plugins).
        #[arg(long, short)]
        config: PathBuf,
        /// The plugin whose dead letters to replay.
        #[arg(long)]
        plugin: String,
        /// Start at this offset (every partition) or UTC time (2026-12-05T07:00:00Z)
        /// instead of the replay group's position; earlier dead letters are passed by.
        #[arg(long)]
        since: Option<sluice::dlq::Bound>,
        /// Stop after this offset or time.
        #[arg(long)]
        until: Option<sluice::dlq::Bound>,
        /// Run and report; publish and commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// The replay's consumer group (default `sluice-replay.<plugin>`).
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum CaptureCommand {
    /// Prints the `sluice capture` TOML for a Debezium SQL Server connector's JSON
    /// configuration (what is not converted is listed in a comment).
    Convert {
        /// The connector's JSON (`{"name":...,"config":{...}}` or the bare `config`).
        connector: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Compiles a plugin project into a component: Rust (`Cargo.toml`, `wasm32-wasip2`,
    /// release), JavaScript (`package.json`, componentize-js) or Python (`pyproject.toml`,
    /// componentize-py).
    Build {
        /// The plugin project's directory (or a Cargo workspace of plugins).
        crate_dir: PathBuf,
        /// Copy the components into this directory (created if missing).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the build writes (Rust: cargo's target directory; JavaScript and Python:
        /// `<dir>/js`, `<dir>/python`). Default: cargo's configuration, else `<project>/dist`.
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Creates a plugin project from a template, ready to build and test.
    New {
        /// The plugin's name (a-z, 0-9, - and _): the directory and the component's name.
        name: String,
        /// The language of the project.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// The directory to create the project in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Validates a plugins directory (manifests, components, init) without running it.
    Check {
        /// The plugins directory (`<team>/<name>.toml` + `<name>.wasm`).
        dir: PathBuf,
    },
    /// Restores the version of a plugin that the last hot reload replaced.
    Rollback {
        /// The plugins directory a running `sluice run` watches.
        dir: PathBuf,
        /// The plugin's name.
        name: String,
    },
    /// Makes a shadow or canary version the serving version of the plugin it runs beside
    /// (a running sluice swaps it in at a batch boundary and stops the candidate).
    Promote {
        /// The plugins directory a running `sluice run` watches.
        dir: PathBuf,
        /// The shadow or canary plugin's name.
        name: String,
    },
    /// Runs a plugin over events and prints (or checks) what it produces.
    Test {
        /// The plugin component.
        plugin: PathBuf,
        /// Debezium events as JSON lines (see samples/README.md).
        #[arg(long)]
        input: PathBuf,
        /// Expected records as JSON lines; exits with 1 when the output differs.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// A plugin config entry `key=value` (repeatable).
        #[arg(long = "config", value_parser = parse_key_value)]
        config: Vec<(String, String)>,
        /// Overrides the topic of every input record.
        #[arg(long)]
        topic: Option<String>,
        /// Events per plugin call.
        #[arg(long, default_value_t = 256, value_parser = at_least_one)]
        batch_size: usize,
    },
    /// Runs two versions of a plugin over the same events and prints, event by event,
    /// where what they would publish differs (topic, key, value, headers other than
    /// lineage); exits with 1 when any event differs, 2 when it cannot compare.
    Diff {
        /// The version in service.
        old: PathBuf,
        /// The version to deploy.
        new: PathBuf,
        /// Debezium events as JSON lines (see samples/README.md).
        #[arg(long)]
        input: PathBuf,
        /// A config entry `key=value` both versions get (repeatable).
        #[arg(long = "config", value_parser = parse_key_value)]
        config: Vec<(String, String)>,
        /// A config entry for the old version only, replacing a `--config` one (repeatable).
        #[arg(long = "old-config", value_parser = parse_key_value)]
        old_config: Vec<(String, String)>,
        /// A config entry for the new version only, replacing a `--config` one (repeatable).
        #[arg(long = "new-config", value_parser = parse_key_value)]
        new_config: Vec<(String, String)>,
        /// Overrides the topic of every input record.
        #[arg(long)]
        topic: Option<String>,
        /// Events per plugin call.
        #[arg(long, default_value_t = 256, value_parser = at_least_one)]
        batch_size: usize,
        /// How many differing events to print (all are counted).
        #[arg(long, default_value_t = 20)]
        max_differences: usize,
    },
}

/// The languages `sluice plugin new` has templates for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Lang {
    Rust,
    Js,
    Python,
}

/// How long `sluice run` waits, once the pipeline has stopped, for blocking work still
/// running (a plugin compile or `init` abandoned at shutdown) before exiting anyway.
/// Such work has no result anyone needs; a second covers a file write in flight.
const ABANDON_BLOCKING_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A count of at least 1 (`--batch-size`).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not key=value"))
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: in a file or a pipe the escape codes are noise to every
    // log tool downstream.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let config = sluice::config::load(&config)?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let stats = runtime.block_on(sluice::app::run(config, shutdown_signal()));
            // A plugin still compiling or in `init` when shutdown came runs on a blocking
            // thread nobody waits for any more; dropping the runtime would wait for it.
            runtime.shutdown_timeout(ABANDON_BLOCKING_AFTER);
            stats?.log("all", "pipeline finished");
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq {
            command:
                DlqCommand::Replay {
                    config,
                    plugin,
                    since,
                    until,
                    dry_run,
                    group,
                },
        } => {
            let loaded = sluice::config::load(&config)?;
            let replay = sluice::dlq::Replay {
                plugin,
                since,
                until,
                dry_run,
                group,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let report = runtime
                .block_on(sluice::dlq::replay(&loaded, &replay))
                .with_context(|| format!("dlq replay ({})", config.display()))?;
            if dry_run {
                print!("dry run (nothing published or committed): ");
            }
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Capture {
            command: Some(CaptureCommand::Convert { connector }),
            ..
        } => {
            let json = std::fs::read_to_string(&connector)
                .with_context(|| format!("reading {}", connector.display()))?;
            let toml = sluice_capture::convert::convert(&json)
                .with_context(|| format!("converting {}", connector.display()))?;
            print!("{toml}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Capture { config, .. } => {
            let Some(config) = config else {
                bail!("sluice capture: --config <file> is required");
            };
            let config = sluice_capture::config::load_any(&config)?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime
                .block_on(sluice_capture::run_config_any(&config, shutdown_signal()))
                .context("sluice capture")?;
            tracing::info!("capture stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command: PluginCommand::Check { dir },
        } => {
            let runtime = sluice_runtime::Runtime::new(Default::default())?;
            let results = sluice_pipeline::reload::check_directory(&runtime, &dir)
                .with_context(|| format!("reading {}", dir.display()))?;
            if results.is_empty() {
                bail!(
                    "{}: no plugin manifests (<team>/<name>.toml) found",
                    dir.display()
                );
            }
            let mut failed = 0;
            for result in &results {
                match &result.outcome {
                    Ok(summary) => println!("ok    {}: {summary}", result.manifest.display()),
                    Err(reason) => {
                        failed += 1;
                        println!("FAIL  {reason}");
                    }
                }
            }
            println!("{} plugins, {failed} refused", results.len());
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Plugin {
            command: PluginCommand::Rollback { dir, name },
        } => {
            let restored =
                sluice_pipeline::reload::rollback(&dir, &name).map_err(anyhow::Error::msg)?;
            for path in restored {
                println!("restored {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command: PluginCommand::Promote { dir, name },
        } => {
            let done = sluice_pipeline::reload::promote(&dir, &name).map_err(anyhow::Error::msg)?;
            for line in done {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command: PluginCommand::New { name, lang, dir },
        } => {
            let language = match lang {
                Lang::Rust => sluice_plugin_build::Language::Rust,
                Lang::Js => sluice_plugin_build::Language::JavaScript,
                Lang::Python => sluice_plugin_build::Language::Python,
            };
            let project = sluice::plugin_new::create(&dir, &name, language)?;
            println!("{}", project.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command:
                PluginCommand::Build {
                    crate_dir,
                    out,
                    target_dir,
                },
        } => {
            let components = sluice_plugin_build::build_plugin(&crate_dir, target_dir.as_deref())?;
            for component in components {
                let path = match &out {
                    Some(dir) => {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                        let name = component
                            .file_name()
                            .context("component path without a file name")?;
                        let copy = dir.join(name);
                        std::fs::copy(&component, &copy).with_context(|| {
                            format!("copying {} to {}", component.display(), copy.display())
                        })?;
                        copy
                    }
                    None => component,
                };
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command:
                PluginCommand::Diff {
                    old,
                    new,
                    input,
                    config,
                    old_config,
                    new_config,
                    topic,
                    batch_size,
                    max_differences,
                },
        } => {
            let diff = sluice::plugin_diff::PluginDiff {
                old,
                new,
                input,
                config,
                old_config,
                new_config,
                topic,
                batch_size,
                max_differences,
                cache_dir: None,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            // As diff(1): 0 the same, 1 different, 2 could not compare, so a CI step can
            // tell a changed output from a broken plugin or input.
            let comparison = match runtime.block_on(sluice::plugin_diff::run(&diff)) {
                Ok(comparison) => comparison,
                Err(e) => {
                    eprintln!("error: {:#}", anyhow::Error::from(e));
                    return Ok(ExitCode::from(2));
                }
            };
            print!("{}", sluice::plugin_diff::render(&comparison));
            Ok(if comparison.any_difference() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Plugin {
            command:
                PluginCommand::Test {
                    plugin,
                    input,
                    expect,
                    config,
                    topic,
                    batch_size,
                },
        } => {
            let test = sluice::plugin_test::PluginTest {
                plugin,
                input,
                config,
                topic,
                batch_size,
                cache_dir: None,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let result = runtime.block_on(sluice::plugin_test::run(&test))?;
            let Some(expect) = expect else {
                for line in &result.lines {
                    println!("{line}");
                }
                eprintln!(
                    "{} records ({} dead letters)",
                    result.lines.len(),
                    result.stats.dead_lettered
                );
                return Ok(ExitCode::SUCCESS);
            };
            let expected = std::fs::read_to_string(&expect)
                .with_context(|| format!("reading {}", expect.display()))?;
            let expected: Vec<String> = expected.lines().map(str::to_owned).collect();
            let differences = sluice::plugin_test::compare(&result.lines, &expected);
            if differences.is_empty() {
                println!(
                    "ok: {} records match {}",
                    result.lines.len(),
                    expect.display()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "FAILED: {} differences from {}",
                    differences.len(),
                    expect.display()
                );
                for difference in differences {
                    println!("{difference}");
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops sluice cleanly");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
