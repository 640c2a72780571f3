//! `meshsim`: view, summarise, check and convert the traces meshsim tests write.
//!
//! ```text
//! meshsim view target/meshsim/my_test/trace.json           # writes trace.html beside it
//! meshsim view --serve target/meshsim/my_test/trace.json   # serves it on 127.0.0.1
//! meshsim stats --cdf target/meshsim/my_test/trace.json
//! meshsim export --format pubsub-pb target/meshsim/my_test/trace.json
//! meshsim import traced/trace.1700000000.pb.gz -o go-run.json
//! meshsim validate target/meshsim/*/trace.json
//! ```
//!
//! All the work is done by the `meshsim` library (`meshsim::view`, `meshsim::export`,
//! `Trace::tally`, `Trace::check`); this binary parses arguments and picks file names.

mod serve;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use meshsim::Trace;
use meshsim::export::{chrome, graph, interop, pubsub};

/// View, summarise, check and convert meshsim traces.
#[derive(Debug, Parser)]
#[command(name = "meshsim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a trace's viewer (one self-contained HTML file) next to it, or serve it on
    /// 127.0.0.1 and print the URL.
    View {
        /// The trace file (JSON, as tests write it).
        trace: PathBuf,
        /// Where to write the HTML (default: beside the trace, `trace.json` -> `trace.html`).
        #[arg(short, long, conflicts_with = "serve")]
        out: Option<PathBuf>,
        /// Serve the viewer on 127.0.0.1 instead of writing a file, until interrupted.
        #[arg(long)]
        serve: bool,
        /// The port to serve on (default: any free port).
        #[arg(long, default_value_t = 0, requires = "serve")]
        port: u16,
    },
    /// Print event counts, per-message statistics and the delivery-delay CDF, as
    /// go-libp2p-pubsub's `tracestat` does.
    Stats {
        /// The trace file.
        trace: PathBuf,
        /// Also print the event counts of every node.
        #[arg(long)]
        per_node: bool,
        /// Also print the cumulative distribution of delivery delays.
        #[arg(long)]
        cdf: bool,
        /// Print the figures as JSON in `tracestat -json`'s shape instead of tables.
        #[arg(long, conflicts_with_all = ["per_node", "cdf"])]
        json: bool,
    },
    /// Convert a trace to a format other tools read.
    Export {
        /// The trace file.
        trace: PathBuf,
        /// The format to write.
        #[arg(short, long, value_enum)]
        format: Format,
        /// Where to write (default: beside the trace, with the format's extension; a folder
        /// for `interop` and `all`). `-` writes to standard output (not for folders).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Convert a go-libp2p-pubsub trace (length-delimited protobuf, gzip-compressed or not,
    /// or its JSON form) to a meshsim trace, which `view` and `stats` then read.
    Import {
        /// The go trace file.
        input: PathBuf,
        /// Where to write the meshsim trace (default: beside the input, `.meshsim.json`).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Check trace files: JSON syntax (with line and column), format version, and
    /// consistency (ids, time order, link shapes). Exits with 1 if any file has a problem.
    Validate {
        /// The trace files.
        #[arg(required = true)]
        traces: Vec<PathBuf>,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// go-libp2p-pubsub TraceEvents, length-delimited protobuf (what `PBTracer` writes).
    PubsubPb,
    /// The same, gzip-compressed (what `traced` writes and `tracestat` reads).
    PubsubPbGz,
    /// go-libp2p-pubsub TraceEvents as ND-JSON (what its JSONTracer writes).
    PubsubJson,
    /// libp2p gossipsub-interop per-node output (a folder its analysis scripts read).
    Interop,
    /// Chrome / Perfetto trace-event JSON (open in ui.perfetto.dev or chrome://tracing).
    Chrome,
    /// The topology as GraphML.
    Graphml,
    /// The topology as Graphviz DOT.
    Dot,
    /// The topology as Shadow-style GML.
    Gml,
    /// Every format above, and the trace itself, into one folder.
    All,
}

impl Format {
    /// The default output name's suffix, replacing the trace's `.json`.
    fn suffix(self) -> &'static str {
        match self {
            Format::PubsubPb => ".pb",
            Format::PubsubPbGz => ".pb.gz",
            Format::PubsubJson => ".pubsub.json",
            Format::Interop => ".interop",
            Format::Chrome => ".chrome.json",
            Format::Graphml => ".graphml",
            Format::Dot => ".dot",
            Format::Gml => ".gml",
            Format::All => ".exports",
        }
    }
}

type Failure = Box<dyn std::error::Error>;

/// `println!` that returns an error instead of panicking when stdout is closed (`| head`).
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        // The reader went away (`meshsim stats ... | head`): not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meshsim: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::View {
            trace,
            out,
            serve,
            port,
        } => {
            let t = Trace::load(&trace)?;
            if serve {
                serve::serve(meshsim::view::render(&t), port, &trace)?;
            } else {
                let out = out.unwrap_or_else(|| meshsim::view::viewer_path(&trace));
                meshsim::view::write(&t, &out)?;
                say!("viewer written to {}", out.display());
            }
        }
        Command::Stats {
            trace,
            per_node,
            cdf,
            json,
        } => {
            let t = Trace::load(&trace)?;
            let tally = t.tally();
            if json {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&meshsim::export::tracestat::to_json(&tally, &t))?
                );
            } else {
                say!(
                    "{}: {} ({}, {}), {} nodes, {} links, {} messages, {} events\n",
                    trace.display(),
                    t.meta.test,
                    t.meta.backend,
                    t.meta.shaping,
                    t.topology.nodes.len(),
                    t.topology.links.len(),
                    t.messages.len(),
                    t.events.len()
                );
                say!("{}", tally.counts_table(&t, per_node));
                say!("{}", t.summary());
                if cdf {
                    say!("delivery delay from publish, all messages:");
                    say!("{}", tally.cdf_table());
                }
            }
        }
        Command::Export { trace, format, out } => {
            let t = Trace::load(&trace)?;
            let out = out.unwrap_or_else(|| beside(&trace, format.suffix()));
            if matches!(format, Format::Interop | Format::All) {
                if out == Path::new("-") {
                    return Err("this format is a folder: give a folder to --out".into());
                }
                if format == Format::All {
                    meshsim::export::write_all(&t, &out)?;
                } else {
                    interop::write(&t, &out)?;
                }
            } else {
                let bytes = match format {
                    Format::PubsubPb => pubsub::to_protobuf(&t),
                    Format::PubsubPbGz => pubsub::to_protobuf_gz(&t),
                    Format::PubsubJson => pubsub::to_json(&t).into_bytes(),
                    Format::Chrome => chrome::to_json(&t).into_bytes(),
                    Format::Graphml => graph::to_graphml(&t).into_bytes(),
                    Format::Dot => graph::to_dot(&t).into_bytes(),
                    Format::Gml => graph::to_gml(&t).into_bytes(),
                    Format::Interop | Format::All => unreachable!("handled above"),
                };
                if out == Path::new("-") {
                    std::io::stdout().write_all(&bytes)?;
                    return Ok(ExitCode::SUCCESS);
                }
                write_file(&out, &bytes)?;
            }
            say!("written to {}", out.display());
        }
        Command::Import { input, out } => {
            let bytes = std::fs::read(&input).map_err(|e| format!("{}: {e}", input.display()))?;
            let name = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "imported".into());
            let pubsub::Imported { trace: t, summary } = pubsub::import_named(&bytes, &name)?;
            let out = out.unwrap_or_else(|| beside(&input, ".meshsim.json"));
            t.save(&out)?;
            say!(
                "read {} go trace events ({:?}); {} nodes, {} messages, {} events; written to {}",
                summary.events,
                summary.source,
                t.topology.nodes.len(),
                t.messages.len(),
                t.events.len(),
                out.display()
            );
            for (reason, n) in &summary.skipped {
                say!("  skipped {n}: {reason}");
            }
            if summary.inferred_senders > 0 {
                say!(
                    "  {} deliveries named no sender: taken from the RPC that carried them, else the message's origin",
                    summary.inferred_senders
                );
            }
        }
        Command::Validate { traces } => {
            let mut bad = 0;
            for path in &traces {
                match Trace::load(path) {
                    Err(e) => {
                        bad += 1;
                        say!("{e}");
                    }
                    Ok(t) => {
                        let problems = t.check();
                        if problems.is_empty() {
                            say!(
                                "{}: ok ({} nodes, {} messages, {} events)",
                                path.display(),
                                t.topology.nodes.len(),
                                t.messages.len(),
                                t.events.len()
                            );
                        } else {
                            bad += 1;
                            for p in &problems {
                                say!("{}: {p}", path.display());
                            }
                        }
                    }
                }
            }
            if bad > 0 {
                eprintln!(
                    "meshsim: {bad} of {} trace files have problems",
                    traces.len()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dir/trace.json` -> `dir/trace<suffix>`.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    path.with_file_name(format!("{stem}{suffix}"))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()).into())
}
