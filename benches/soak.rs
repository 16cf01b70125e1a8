//! Soak: the demo server as users run it (the `server` example binary on a copy of
//! `examples/config`), at saturation for a long time, while its config is edited every
//! `--reload-every` seconds (hot reloads) and its credit-bureau upstream restarts every
//! `--restart-every` seconds (its connections reset, refused for 2 s, then back on the same
//! port).
//!
//! ```text
//! cargo build --release -p examples --example server
//! cargo run --release -p benches --bin soak                  # 10 minutes (BENCHMARKS.md)
//! cargo run -p benches --bin soak -- --secs 30 --restart-every 15   # what CI runs
//! ```
//!
//! It fails (exit 1) on a failed request outside the restart windows, on a failed reload, or
//! on a reload that was not seen. A restart window lasts from the upstream going down until
//! 3 s after its circuit breaker may close again: the demo's `credit_api` opens its breaker
//! for 30 s after five failures (`--open-for` if you change that), and calls fail fast
//! meanwhile, as configured. Runs of
//! 2 minutes or more also fail when the server's RSS moves by more than 5 % or its open file
//! descriptors grow by more than the number of clients, after warm-up (the first fifth of the
//! run), comparing samples of the steady phase 5 s before each restart. The mix of
//! endpoints includes `get_credit_score`, which has no fallback, so the restart windows do see
//! failures: they are counted apart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

#[allow(dead_code, unreachable_pub)] // the soak uses the credit bureau only
#[path = "../examples/demo.rs"]
mod demo;

/// The requests each client cycles through: every domain of the demo, and the credit bureau
/// both with a fallback (`credit-overview`), skipped on error (`get_customer_360`) and bare
/// (`get_credit_score`).
const PATHS: &[&str] = &[
    "/api/customers/get_customer_360/1",
    "/api/credit-overview/2",
    "/api/recommendations/3?category=books",
    "/api/risk/4",
    "/api/customers/get_credit_score/5",
    "/api/customers/get_customer/2",
];

/// After an upstream is back, how long failures still count as the restart's.
const GRACE: Duration = Duration::from_secs(3);

struct Args {
    secs: u64,
    reload_every: u64,
    restart_every: u64,
    clients: usize,
    /// The upstream's circuit breaker `open_for`, in seconds.
    open_for: u64,
}

impl Args {
    fn parse() -> Self {
        let argv: Vec<String> = std::env::args().collect();
        let num = |flag: &str, default: u64| {
            argv.iter()
                .position(|a| a == flag)
                .and_then(|i| argv.get(i + 1))
                .map_or(default, |v| {
                    v.parse()
                        .unwrap_or_else(|_| panic!("{flag} takes a whole number, not `{v}`"))
                })
        };
        Self {
            secs: num("--secs", 600),
            reload_every: num("--reload-every", 10).max(1),
            restart_every: num("--restart-every", 60).max(1),
            clients: num("--clients", 32) as usize,
            open_for: num("--open-for", 30),
        }
    }
}

/// A TCP forwarder on a fixed port in front of an upstream: "restarting" it closes the
/// listener and resets every connection, as an upstream process restart does.
struct Restartable {
    port: u16,
    to: SocketAddr,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Restartable {
    async fn start(to: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = Arc::new(Self {
            port,
            to,
            task: Mutex::new(None),
        });
        *me.task.lock().await = Some(tokio::spawn(forward(listener, to)));
        me
    }

    /// Down for `down`, then up again on the same port.
    async fn restart(&self, down: Duration) {
        if let Some(task) = self.task.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
        tokio::time::sleep(down).await;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        *self.task.lock().await = Some(tokio::spawn(forward(listener, self.to)));
    }
}

/// Accepts and forwards until aborted; aborting drops every connection with it.
async fn forward(listener: TcpListener, to: SocketAddr) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// `target/<profile>/examples/server`, next to this binary's directory.
fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe
        .parent()
        .unwrap()
        .join("examples")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p examples --example server` (with --release for a release soak)",
        binary.display()
    );
    binary
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "data") {
                continue; // the server seeds its own database
            }
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, target).unwrap();
        }
    }
}

/// The server's resident set (KiB) and open file descriptors, from /proc.
fn resources(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

/// A sample of `/metrics`: the value of the series named `series` (with its labels).
async fn metric(client: &reqwest::Client, base: &str, series: &str) -> f64 {
    let text = match client.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    excused: AtomicU64,
    failed: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    copy_dir(&root.join("examples/config"), &config);

    let bureau = demo::credit_api("soak-token".into()).await.unwrap();
    let upstream = Restartable::start(bureau.addr).await;
    let mut server = tokio::process::Command::new(server_binary())
        .args([
            "--config",
            &config.display().to_string(),
            "--bind",
            "127.0.0.1:0",
        ])
        .current_dir(&config)
        .env("RUST_LOG", "error")
        .env(
            "CREDIT_API_URL",
            format!("http://127.0.0.1:{}/api/v1", upstream.port),
        )
        .env("CREDIT_API_TOKEN", "soak-token")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the demo server starts");
    let pid = server.id().unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the server listens");
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    println!(
        "# soak: demo server (pid {pid}) at {base}, {} clients, {} s, a reload every {} s, the credit bureau restarting every {} s\n",
        args.clients, args.secs, args.reload_every, args.restart_every
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()
        .unwrap();
    let start = Instant::now();
    let end = start + Duration::from_secs(args.secs);
    // The restart windows so far, as offsets from `start` in ms: (down since, excused until).
    let windows: Arc<std::sync::Mutex<Vec<(u64, u64)>>> = Arc::default();
    let restarting = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());

    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let (client, base, counts, windows, restarting) = (
            client.clone(),
            base.clone(),
            counts.clone(),
            windows.clone(),
            restarting.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = c;
            while Instant::now() < end {
                let path = PATHS[n % PATHS.len()];
                n += 1;
                let sent = start.elapsed().as_millis() as u64;
                let ok = match client.get(format!("{base}{path}")).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let done = start.elapsed().as_millis() as u64;
                let in_window = restarting.load(Ordering::Acquire)
                    || windows
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|&(from, to)| done >= from && sent <= to);
                if in_window {
                    counts.excused.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed outside a restart window: GET {path} at {done} ms");
                }
            }
        }));
    }

    // Reloads, restarts and resource samples, once a second.
    let customers = config.join("domains/customers.yaml");
    let original = std::fs::read_to_string(&customers).unwrap();
    let mut edits = 0u64;
    let mut samples: Vec<(u64, u64, usize)> = Vec::new();
    let mut second = 0u64;
    while Instant::now() < end {
        tokio::time::sleep_until((start + Duration::from_secs(second + 1)).into()).await;
        second += 1;
        if second.is_multiple_of(args.reload_every) {
            // A real change each time: the 360 endpoint's description.
            edits += 1;
            let text = original.replacen(
                "Customer 360: profile",
                &format!("Customer 360 (edit {edits}): profile"),
                1,
            );
            std::fs::write(&customers, text).unwrap();
        }
        if second.is_multiple_of(args.restart_every) {
            let from = start.elapsed().as_millis() as u64;
            restarting.store(true, Ordering::Release);
            upstream.restart(Duration::from_secs(2)).await;
            let to =
                (start.elapsed() + Duration::from_secs(args.open_for) + GRACE).as_millis() as u64;
            windows.lock().unwrap().push((from, to));
            restarting.store(false, Ordering::Release);
        }
        if second.is_multiple_of(5)
            && let Some((rss, fds)) = resources(pid)
        {
            samples.push((second, rss, fds));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Let the watcher see the last edit before reading the counters.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reloads_ok = metric(&client, &base, "orchestrator_reloads_total{result=\"ok\"}").await;
    let reloads_failed = metric(
        &client,
        &base,
        "orchestrator_reloads_total{result=\"failed\"}",
    )
    .await;
    let version = metric(&client, &base, "orchestrator_config_version").await;
    let _ = server.start_kill();

    let (ok, excused, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.excused.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    let total = ok + excused + failed;
    println!("| | |\n|---|---|");
    println!(
        "| requests | {total} ({:.0} req/s) |",
        total as f64 / args.secs as f64
    );
    println!("| failed outside restart windows | {failed} |");
    println!(
        "| failed inside the {} restart windows | {excused} |",
        windows.lock().unwrap().len()
    );
    println!(
        "| config edits / reloads ok / failed / final version | {edits} / {reloads_ok} / {reloads_failed} / {version} |"
    );
    // Flat: RSS and open fds in the steady phase, 5 s before each restart (right after one,
    // clients reconnect and, with the breaker open, calls that fail fast crowd the other
    // upstreams' pools), after warm-up; the median of the last fifth of them against that of
    // the first fifth.
    let warm_up = args.secs / 5;
    let steady_at = args.restart_every.saturating_sub(5);
    let steady: Vec<_> = samples
        .iter()
        .filter(|s| {
            s.0 >= warm_up && (args.restart_every <= 10 || s.0 % args.restart_every == steady_at)
        })
        .collect();
    let mut problems = Vec::new();
    if steady.len() >= 2 {
        let fifth = (steady.len() / 5).max(1);
        let median = |part: &[&(u64, u64, usize)], field: fn(&(u64, u64, usize)) -> u64| {
            let mut v: Vec<u64> = part.iter().map(|s| field(s)).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        let (head, tail) = (&steady[..fifth], &steady[steady.len() - fifth..]);
        let rss = (median(head, |s| s.1), median(tail, |s| s.1));
        let fds = (median(head, |s| s.2 as u64), median(tail, |s| s.2 as u64));
        let growth = |(a, b): (u64, u64)| (b as f64 / a.max(1) as f64 - 1.0) * 100.0;
        let all = samples.iter().filter(|s| s.0 >= warm_up);
        let (lo, hi, flo, fhi) = all.fold((u64::MAX, 0, usize::MAX, 0), |(lo, hi, flo, fhi), s| {
            (lo.min(s.1), hi.max(s.1), flo.min(s.2), fhi.max(s.2))
        });
        println!(
            "| RSS after warm-up ({warm_up} s), steady phase, first / last | {} / {} KiB ({:+.1} %; every 5 s sample {lo}–{hi}) |",
            rss.0,
            rss.1,
            growth(rss)
        );
        println!(
            "| open fds, steady phase, first / last | {} / {} (every 5 s sample {flo}–{fhi}) |",
            fds.0, fds.1
        );
        println!("\n| s | RSS KiB | open fds |\n|---|---|---|");
        for s in &steady {
            println!("| {} | {} | {} |", s.0, s.1, s.2);
        }
        if args.secs >= 120 {
            if growth(rss).abs() > 5.0 {
                problems.push(format!("RSS moved by {:+.1} % after warm-up", growth(rss)));
            }
            // Each client may hold a connection more or less at a given moment.
            if fds.1 > fds.0 + args.clients as u64 {
                problems.push(format!("open fds grew from {} to {}", fds.0, fds.1));
            }
        }
    }
    if failed > 0 {
        problems.push(format!("{failed} requests failed outside restart windows"));
    }
    if reloads_failed > 0.0 {
        problems.push(format!("{reloads_failed} reloads failed"));
    }
    if edits > 0 && reloads_ok < 1.0 {
        problems.push("no reload was seen".to_owned());
    }
    if problems.is_empty() {
        println!("\nsoak: passed");
    } else {
        println!("\nsoak: FAILED: {}", problems.join("; "));
        std::process::exit(1);
    }
}
