//! The `switchyard` command line: parse flags, set up logging, load the policy, run, exit codes.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchyard::{Limits, Policy, classify};

/// mimalloc instead of the system allocator: the request path allocates and frees many small
/// short-lived buffers (headers, JSON, rows), which glibc's malloc served at about 8 % of the
/// CPU time at saturation (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A cost-aware routing proxy for LLM APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Async worker threads (default: the CPUs this process may run on). With one, the runtime
    /// is single-threaded: no work-stealing scheduler, about 10 % less CPU per request when
    /// pinned to one core (docs/BENCHMARKS.md).
    #[arg(long, global = true, env = "SWITCHYARD_THREADS")]
    threads: Option<std::num::NonZeroUsize>,
}

#[derive(Subcommand)]
enum Command {
    /// Zero setup: simulated providers, the proxy, a replay of sample prompts and a report.
    Demo {
        /// Proxy address (an ephemeral port is used if it is taken).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Dashboard address (an ephemeral port is used if it is taken).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: SocketAddr,
        /// Exit after the report instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Run the proxy.
    Serve(ServeArgs),
    /// Validate policy files; every error with file:line:column. Exit 1 on any error.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show how a prompt or request would be classified and routed, with candidate costs.
    /// Calls nothing.
    Explain {
        #[arg(long, env = "SWITCHYARD_POLICY")]
        policy: PathBuf,
        /// A full chat request (JSON) instead of a prompt.
        #[arg(long, conflicts_with = "prompt")]
        request: Option<String>,
        /// The prompt, as one user message to `model: auto`.
        prompt: Vec<String>,
    },
    /// Classify JSONL requests: one line out per line in, same order.
    Classify {
        #[arg(long)]
        input: Option<PathBuf>,
        #[arg(long)]
        output: Option<PathBuf>,
        /// Take weights and difficulty thresholds from this policy.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Fit the classifier from labelled JSONL (held-out rows are never used).
    Train {
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        epochs: Option<u32>,
    },
    /// Held-out task accuracy, macro-F1, confusion, and routing quality (APGR, CPT).
    Eval {
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<PathBuf>,
        /// Weights to evaluate (default: the embedded ones).
        #[arg(long)]
        weights: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// A month's spend, tokens and savings by a dimension, and each budget's standing.
    Report {
        #[command(flatten)]
        store: StoreArgs,
        /// The policy, for budget limits (optional).
        #[arg(long, env = "SWITCHYARD_POLICY")]
        policy: Option<PathBuf>,
        /// YYYY-MM (default: the current UTC month).
        #[arg(long)]
        month: Option<String>,
        #[arg(long, value_enum, default_value = "model")]
        by: By,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
    },
    /// Re-decide a month of recorded traffic under a new policy: old vs new cost, routing mix,
    /// and which budgets would have hit their caps, on which day.
    Simulate {
        /// The policy to try.
        #[arg(long)]
        policy: PathBuf,
        /// The policy that served the traffic (for the recorded tier mix).
        #[arg(long)]
        current: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        /// YYYY-MM (default: the current UTC month).
        #[arg(long)]
        month: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Virtual keys: `keys new` prints a fresh key and its hash; `keys hash KEY` the hash.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// A simulated OpenAI-compatible provider (for load tests): no latency unless asked.
    #[command(hide = true)]
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Time to first token, in milliseconds.
        #[arg(long, default_value_t = 0)]
        ttft_ms: u64,
        /// Delay between streamed tokens, in microseconds.
        #[arg(long, default_value_t = 0)]
        per_token_us: u64,
        /// Answer every N-th request with a 500 (0: never).
        #[arg(long, default_value_t = 0)]
        fault_every: u64,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// A fresh random key, and the `sha256` line for the policy.
    New {
        /// The key's name in the policy.
        #[arg(long, default_value = "my-app")]
        name: String,
        #[arg(long)]
        team: Option<String>,
    },
    /// The SHA-256 of an existing key.
    Hash { key: String },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum By {
    Task,
    Model,
    Route,
    Team,
    Key,
    Tier,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

/// Where the ledger lives.
#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// The SQLite ledger's directory (when no --store is given).
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    data_dir: PathBuf,
    /// `postgres://user:password@host:5432/db` for the PostgreSQL store shared by several
    /// replicas (budgets hold across all of them). Unset: SQLite in --data-dir.
    #[arg(long = "store", env = "SWITCHYARD_STORE_URL", hide_env_values = true)]
    url: Option<String>,
    /// This replica's name in the shared store (default: hostname-pid). Restarting under the
    /// same name releases the reservations its previous process left.
    #[arg(long, env = "SWITCHYARD_REPLICA_ID")]
    replica_id: Option<String>,
    /// Reservations of a replica not heard from for this long are released by the others.
    #[arg(long, env = "SWITCHYARD_REPLICA_TTL_SECS", default_value_t = 30)]
    replica_ttl_secs: u64,
    /// With `?sslmode=require` in the store URL: PEM certificates to trust besides the public
    /// web roots (a private CA, or a managed database's CA bundle).
    #[arg(long, env = "SWITCHYARD_STORE_CA_FILE")]
    store_ca_file: Option<PathBuf>,
}

impl StoreArgs {
    fn is_postgres(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.is_empty())
    }

    async fn open(&self) -> anyhow::Result<switchyard::budget::Store> {
        let replica = self.replica_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "switchyard".to_owned());
            format!("{host}-{}", std::process::id())
        });
        switchyard::budget::Store::open(
            self.url.as_deref(),
            &self.data_dir,
            &replica,
            Duration::from_secs(self.replica_ttl_secs.max(1)),
            self.store_ca_file.as_deref(),
        )
        .await
        .context("cannot open the ledger")
    }
}

/// The store `report` and `simulate` read: it must already exist.
async fn open_report_store(store: &StoreArgs) -> anyhow::Result<switchyard::budget::Store> {
    if !store.is_postgres() && !store.data_dir.join("ledger.sqlite3").exists() {
        anyhow::bail!(
            "no ledger in {} (set --data-dir or --store)",
            store.data_dir.display()
        );
    }
    store.open().await
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The routing policy (YAML).
    #[arg(long, env = "SWITCHYARD_POLICY")]
    policy: PathBuf,
    /// Proxy listen address.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Admin listener: dashboard, /api/v1, /metrics, /healthz, /readyz. Beyond loopback it
    /// needs SWITCHYARD_ADMIN_TOKEN (read from the environment only).
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    admin_listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "SWITCHYARD_MAX_BODY_BYTES", default_value_t = 4 << 20)]
    max_body_bytes: usize,
    /// Time allowed until response headers, in milliseconds.
    #[arg(long, env = "SWITCHYARD_REQUEST_TIMEOUT_MS", default_value_t = 300_000)]
    request_timeout_ms: u64,
    /// Requests handled at once; more wait.
    #[arg(long, env = "SWITCHYARD_MAX_CONCURRENCY", default_value_t = 4096)]
    max_concurrency: usize,
    /// After SIGTERM/Ctrl-C, how long in-flight requests may take, in milliseconds.
    #[arg(long, env = "SWITCHYARD_SHUTDOWN_GRACE_MS", default_value_t = 30_000)]
    shutdown_grace_ms: u64,
    /// Keep polling sockets for this many µs after each request instead of sleeping (0: off).
    /// Saves the wake-ups of an idle core (tens of µs per request under a hypervisor) at the
    /// price of a full core while requests come closer together than this; an idle proxy
    /// still uses no CPU. Needs the single-threaded runtime (one CPU, or `--threads 1`).
    #[arg(long, env = "SWITCHYARD_BUSY_POLL_US", default_value_t = 0)]
    busy_poll_us: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let threads = cli
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, std::num::NonZeroUsize::get);
    if let Command::Serve(args) = &cli.command
        && args.busy_poll_us > 0
        && threads > 1
    {
        eprintln!(
            "error: --busy-poll-us needs the single-threaded runtime, but {threads} worker threads were asked for or found; pass --threads 1 (or pin the process to one CPU with taskset)"
        );
        return ExitCode::FAILURE;
    }
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Check { files } => return check(&files),
        Command::Explain {
            policy,
            request,
            prompt,
        } => explain(&policy, request, &prompt),
        Command::Classify {
            input,
            output,
            policy,
        } => classify(input, output, policy),
        Command::Train {
            data,
            out,
            seed,
            epochs,
        } => train(&data, &out, seed, epochs),
        Command::Eval {
            data,
            weights,
            json,
        } => eval(&data, weights.as_deref(), json),
        Command::Report {
            store,
            policy,
            month,
            by,
            format,
        } => runtime.block_on(async move {
            let store = open_report_store(&store).await?;
            tokio::task::spawn_blocking(move || {
                report(store, policy.as_deref(), month.as_deref(), by, format)
            })
            .await?
        }),
        Command::Keys { command } => keys(command),
        Command::Simulate {
            policy,
            current,
            store,
            month,
            json,
        } => runtime.block_on(async move {
            let store = open_report_store(&store).await?;
            tokio::task::spawn_blocking(move || {
                simulate(&policy, current.as_deref(), store, month.as_deref(), json)
            })
            .await?
        }),
        Command::Demo {
            listen,
            admin_listen,
            once,
        } => runtime.block_on(async {
            switchyard::demo::run(
                switchyard::demo::Options {
                    listen,
                    admin_listen,
                    metrics: install_metrics(),
                    once,
                },
                shutdown_signal(),
            )
            .await
            .map(|_summary| ())
            .map_err(anyhow::Error::from)
        }),
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::MockUpstream {
            listen,
            ttft_ms,
            per_token_us,
            fault_every,
        } => runtime.block_on(async move {
            let profile = switchyard::demo::upstream::Profile {
                time_to_first_token: Duration::from_millis(ttft_ms),
                per_token: Duration::from_micros(per_token_us),
                fault_every,
                ..switchyard::demo::upstream::Profile::instant("mock")
            };
            let addr = switchyard::demo::upstream::start(listen, profile).await?;
            println!("{addr}");
            shutdown_signal().await;
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,switchyard=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        match Policy::load(file) {
            Ok(policy) => println!(
                "{}: ok ({} providers, {} models, {} routes)",
                file.display(),
                policy.providers.len(),
                policy.models.len(),
                policy.routes.len()
            ),
            Err(err) => {
                failed = true;
                eprintln!("{err}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let policy_has_no_keys = Policy::load(&args.policy)?.keys.is_empty();
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_concurrency: args.max_concurrency.max(1),
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        ..Limits::default()
    };
    let admin = admin_from_env(args.admin_listen)?;
    let store = args.store.open().await?;
    let policy_path = args.policy.clone();
    let mut state = tokio::task::spawn_blocking(move || {
        switchyard::state_from_file(&policy_path, limits, store, switchyard::system_clock())
    })
    .await??;
    if args.store.is_postgres() {
        switchyard::spawn_ledger_refresh(state.clone(), Duration::from_secs(1));
    }
    let traces = switchyard::telemetry::traces_from_env(&|name| std::env::var(name).ok())
        .context("cannot set up OpenTelemetry tracing")?;
    if let Some(provider) = &traces {
        state.traces = switchyard::telemetry::Traces::from_provider(provider);
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    if args.busy_poll_us > 0 {
        state.busy_poll =
            switchyard::busy_poll::BusyPoll::start(Duration::from_micros(args.busy_poll_us));
    }
    switchyard::spawn_reload_triggers(state.clone(), Duration::from_secs(1));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if policy_has_no_keys && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "no `keys` in the policy: every client is one anonymous tenant, and this address is reachable beyond loopback");
    }
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", args.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_server = tokio::spawn(switchyard::dashboard::serve(
        admin_listener,
        state.clone(),
        admin,
        async {
            // A dropped sender also means stop.
            let _stopped = admin_stopped.await;
        },
    ));
    // One line on stdout each, for scripts and supervisors (the ports may have been 0).
    println!("switchyard listening on http://{addr}");
    // A supervisor may read only the first line and close the pipe: that is not a failure.
    let _ignored = writeln!(
        std::io::stdout(),
        "switchyard dashboard on http://{admin_addr}/"
    );
    tracing::info!(%addr, %admin_addr, policy = %args.policy.display(), "serving");
    switchyard::run(state, listener, shutdown_signal()).await?;
    drop(admin_stop);
    if let Ok(Err(err)) = admin_server.await {
        tracing::warn!(error = %err, "admin listener failed");
    }
    if let Some(provider) = traces
        && let Err(err) = tokio::task::spawn_blocking(move || provider.shutdown()).await?
    {
        tracing::warn!(error = %err, "flushing traces failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The admin listener's token (`SWITCHYARD_ADMIN_TOKEN`) and the metrics recorder, checked
/// against the address: beyond loopback a token is required.
fn admin_from_env(addr: SocketAddr) -> anyhow::Result<switchyard::dashboard::Admin> {
    use switchyard::dashboard::{Token, check_exposure};
    let token = match std::env::var("SWITCHYARD_ADMIN_TOKEN") {
        Ok(t) => Some(Token::new(&t)?),
        Err(_) => None,
    };
    check_exposure(addr, token.as_ref())?;
    Ok(switchyard::dashboard::Admin {
        token,
        metrics: install_metrics(),
    })
}

/// The process-wide Prometheus recorder; `None` (and a warning) if it cannot be installed.
fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    match switchyard::telemetry::metrics::install() {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::warn!(error = %err, "cannot install the metrics recorder; /metrics is off");
            None
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn explain(policy: &Path, request: Option<String>, prompt: &[String]) -> anyhow::Result<()> {
    let policy = Policy::load(policy)?;
    let classifier = switchyard::load_classifier(&policy)?;
    let body = match request {
        Some(json) => json,
        None => serde_json::json!({
            "model": "auto",
            "messages": [{"role": "user", "content": prompt.join(" ")}],
        })
        .to_string(),
    };
    let explanation = switchyard::server::explain(
        &classifier,
        &policy,
        body.as_bytes(),
        &http::HeaderMap::new(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string_pretty(&explanation)?);
    Ok(())
}

fn load_weights(path: Option<&Path>) -> anyhow::Result<classify::Model> {
    Ok(match path {
        Some(p) => classify::Model::from_bytes(
            &std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
        )?,
        None => classify::Model::embedded()?,
    })
}

fn classify(
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    policy: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (model, thresholds) = match policy {
        Some(p) => {
            let policy = Policy::load(&p)?;
            (switchyard::load_classifier(&policy)?, policy.thresholds)
        }
        None => (load_weights(None)?, classify::Thresholds::default()),
    };
    let reader: Box<dyn BufRead> = match &input {
        Some(p) => Box::new(BufReader::new(
            File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut out: Box<dyn Write> = match &output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) if v.get("messages").is_some_and(serde_json::Value::is_array) => {
                let c = model.classify(&classify::Input::from_chat_json(&v), &thresholds);
                serde_json::json!({
                    "id": v.get("id").cloned().unwrap_or(serde_json::Value::Null),
                    "task": c.task,
                    "task_confidence": c.task_confidence,
                    "difficulty": c.difficulty,
                    "difficulty_score": c.difficulty_score,
                })
            }
            Ok(v) => serde_json::json!({
                "id": v.get("id").cloned().unwrap_or(serde_json::Value::Null),
                "error": format!("line {}: no `messages` array", i + 1),
            }),
            Err(e) => serde_json::json!({
                "id": serde_json::Value::Null,
                "error": format!("line {}: invalid JSON: {e}", i + 1),
            }),
        };
        writeln!(out, "{row}")?;
    }
    out.flush()?;
    Ok(())
}

fn load_examples(data: &[PathBuf]) -> anyhow::Result<Vec<classify::Example>> {
    let mut all = Vec::new();
    for path in data {
        let examples = classify::load_jsonl(path)?;
        eprintln!(
            "loaded {:>6} examples from {}",
            examples.len(),
            path.display()
        );
        all.extend(examples);
    }
    Ok(all)
}

fn train(
    data: &[PathBuf],
    out: &Path,
    seed: Option<u64>,
    epochs: Option<u32>,
) -> anyhow::Result<()> {
    let examples = load_examples(data)?;
    let defaults = classify::TrainConfig::default();
    let config = classify::TrainConfig {
        seed: seed.unwrap_or(defaults.seed),
        epochs: epochs.unwrap_or(defaults.epochs),
        ..defaults
    };
    let started = std::time::Instant::now();
    let bytes = classify::train(&examples, &config).to_bytes();
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "trained on {} examples ({} held out and unused) in {:.1} s; wrote {} ({} bytes)",
        examples.len(),
        examples
            .iter()
            .filter(|e| classify::is_held_out(&e.id))
            .count(),
        started.elapsed().as_secs_f32(),
        out.display(),
        bytes.len()
    );
    Ok(())
}

fn eval(data: &[PathBuf], weights: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let model = load_weights(weights)?;
    let examples = load_examples(data)?;
    let report = classify::evaluate(&model, &examples, &classify::Thresholds::default());
    if json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        println!("{report}");
    }
    Ok(())
}

fn report(
    store: switchyard::budget::Store,
    policy: Option<&Path>,
    month: Option<&str>,
    by: By,
    format: ReportFormat,
) -> anyhow::Result<()> {
    use switchyard::budget::{Dimension, Ledger, MonthId, month_window};
    let now = jiff::Timestamp::now();
    let current = month_window(&jiff::tz::TimeZone::UTC, now).month;
    let month = match month {
        Some(m) => MonthId::parse(m).with_context(|| format!("--month {m}: expected YYYY-MM"))?,
        None => current,
    };
    let (dimension, name) = match by {
        By::Task => (Dimension::Task, "task"),
        By::Model => (Dimension::Model, "model"),
        By::Route => (Dimension::Route, "route"),
        By::Team => (Dimension::Team, "team"),
        By::Key => (Dimension::Key, "key"),
        By::Tier => (Dimension::Tier, "tier"),
    };
    let specs = match policy {
        Some(p) => Policy::load(p)?.budgets,
        None => Vec::new(),
    };
    let ledger = Ledger::open(store, specs, now)?;
    ledger.refresh(now)?;
    let rows = ledger.store().month_rows(month, dimension)?;
    // A past month: how each budget stood at its end, as the dashboard shows it.
    let budgets = if month == current {
        ledger.all_status(now)
    } else {
        let spent = ledger.store().month_spend(month)?;
        ledger.month_status(month, &spent)
    };
    let format = match format {
        ReportFormat::Table => switchyard::report::Format::Table,
        ReportFormat::Csv => switchyard::report::Format::Csv,
        ReportFormat::Json => switchyard::report::Format::Json,
    };
    print!(
        "{}",
        switchyard::report::render(month, name, &rows, &budgets, format)
    );
    Ok(())
}

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::New { name, team } => {
            let mut bytes = [0u8; 24];
            std::io::Read::read_exact(
                &mut File::open("/dev/urandom").context("cannot read /dev/urandom")?,
                &mut bytes,
            )?;
            let key: String = std::iter::once("sy-".to_owned())
                .chain(bytes.iter().map(|b| format!("{b:02x}")))
                .collect();
            let hash = switchyard::server::hash_key(&key);
            println!("key:    {key}");
            println!("sha256: {hash}");
            let team = team.map(|t| format!(", team: {t}")).unwrap_or_default();
            println!("policy: - {{ name: {name}{team}, sha256: \"{hash}\" }}");
            println!(
                "Give the key to the client (Authorization: Bearer or x-api-key); only the hash goes in the policy."
            );
        }
        KeysCommand::Hash { key } => println!("{}", switchyard::server::hash_key(&key)),
    }
    Ok(())
}

fn simulate(
    policy: &Path,
    current: Option<&Path>,
    store: switchyard::budget::Store,
    month: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    use switchyard::budget::{MonthId, month_window};
    let new = Policy::load(policy)?;
    let old = current.map(Policy::load).transpose()?;
    let month = match month {
        Some(m) => MonthId::parse(m).with_context(|| format!("--month {m}: expected YYYY-MM"))?,
        None => month_window(&jiff::tz::TimeZone::UTC, jiff::Timestamp::now()).month,
    };
    let (from, to) = switchyard::simulate::month_bounds(month).context("month out of range")?;
    let served = store.served_between(from, to)?;
    let tier_of = |name: &str| {
        old.as_ref()
            .or(Some(&new))
            .and_then(|p| p.model_named(name))
            .map(|(_, m)| m.tier.as_str())
    };
    let sim = switchyard::simulate::simulate(&new, &served, &tier_of);
    if json {
        println!("{}", serde_json::to_string_pretty(&sim)?);
    } else {
        print!("{}", switchyard::simulate::render(&sim));
    }
    Ok(())
}
