//! `--prepare [--check]` of the `check` and `server` examples: records a config's schema
//! snapshot from its live sources, or compares the committed one with them.

use std::path::Path;
use std::process::ExitCode;

use api_orchestrator::config::{ConfigFiles, LoadError, Loader};
use api_orchestrator::snapshot::{SNAPSHOT_FILE, Snapshot, Sources};

/// Loads the config at `dir` without its committed snapshot (which may be the stale thing
/// being replaced), asks its sources, writes `.orchestrator/schema.json` (or, with `compare`,
/// tells how the committed one differs: exit 1), then checks the config against what the
/// sources answered (exit 1 on an error). Exit 2 when the directory cannot be read or written.
pub async fn prepare(dir: &Path, loader: &Loader, compare: bool) -> ExitCode {
    let mut files = match ConfigFiles::read_dir(dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let committed = files.remove(SNAPSHOT_FILE);
    let plan = match loader.load(&files) {
        Ok(plan) => plan,
        Err(e) => return failed(e),
    };
    let live = match api_orchestrator::prepare::prepare(&plan).await {
        Ok(p) => {
            for s in &p.skipped {
                eprintln!("note: not recorded: {s}");
            }
            p.snapshot
        }
        Err(d) => {
            eprintln!("{d}");
            return ExitCode::from(1);
        }
    };
    let path = dir.join(SNAPSHOT_FILE);
    let text = live.to_json();
    if compare {
        let Some(old) = committed else {
            eprintln!(
                "error: `{}` does not exist; write it with `--prepare` (without `--check`) and commit it",
                path.display()
            );
            return ExitCode::from(1);
        };
        let differences = match Snapshot::from_json(&old) {
            Ok(old) => api_orchestrator::prepare::differences(&old, &live),
            Err(why) => vec![format!("the committed snapshot cannot be read: {why}")],
        };
        if !differences.is_empty() {
            eprintln!("error: `{}` differs from the live sources:", path.display());
            for d in &differences {
                eprintln!("  - {d}");
            }
            eprintln!(
                "help: run `--prepare` to record the sources as they are now, then commit it"
            );
            return ExitCode::from(1);
        }
        println!("ok: `{}` matches the live sources", path.display());
    } else {
        let written = std::fs::create_dir_all(dir.join(".orchestrator"))
            .and_then(|()| std::fs::write(&path, &text));
        if let Err(e) = written {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return ExitCode::from(2);
        }
        let count = |s: &Sources| s.database.len() + s.ml.len() + s.feast.len() + s.api.len();
        let n = count(&live.sources) + live.domains.values().map(count).sum::<usize>();
        println!("wrote `{}`: {n} source operation(s)", path.display());
    }
    files.insert(SNAPSHOT_FILE, text);
    match loader.load(&files) {
        Ok(plan) => {
            if !plan.warnings().is_empty() {
                eprintln!("{}", plan.warnings());
            }
            println!(
                "ok: the {} endpoint(s) of `{}` agree with the sources",
                plan.endpoints.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

fn failed(e: LoadError) -> ExitCode {
    match e {
        LoadError::Invalid(d) => {
            eprintln!("{d}");
            ExitCode::from(1)
        }
        e => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
