//! The `api-orchestrator` command (feature `cli`): check, prepare, print the OpenAPI document
//! of, or serve a config directory. See `api_orchestrator::cli`.

use std::path::PathBuf;
use std::process::ExitCode;

use api_orchestrator::cli::{self, ServeOptions};
use api_orchestrator::config::Loader;

const USAGE: &str = "usage: api-orchestrator <command> [CONFIG_DIR] [options]

commands:
  check   CONFIG_DIR                 print the diagnostics, or the endpoints and their source DAGs
  prepare CONFIG_DIR [--check]       record the schema snapshot .orchestrator/schema.json from the
                                     live sources (--check: compare instead, exit 1 on a change)
  openapi CONFIG_DIR                 print the OpenAPI 3.1 document
  serve   CONFIG_DIR [--bind ADDR]   serve the endpoints, reloading when a YAML file changes
  schema  [--file PATH]              print the JSON Schema of the config files for editors
                                     (--file domains/shop.yaml: of that file only)

exit codes: 0 ok, 1 the config or the snapshot has an error, 2 bad usage or unreadable files";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(Usage(why)) => {
            if !why.is_empty() {
                eprintln!("error: {why}\n");
            }
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// A command line that cannot run, and why (empty for `--help`).
struct Usage(String);

fn run(args: &[String]) -> Result<ExitCode, Usage> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Usage("no command".into()));
    };
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    if command == "schema" {
        return schema(rest);
    }
    let mut dir = None;
    let mut bind = None;
    let mut compare = false;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--check" if command == "prepare" => compare = true,
            "--bind" if command == "serve" => {
                bind = Some(
                    it.next()
                        .ok_or_else(|| {
                            Usage("--bind needs an address such as 127.0.0.1:8000".into())
                        })?
                        .clone(),
                );
            }
            flag if flag.starts_with('-') => {
                return Err(Usage(format!("`{command}` takes no option `{flag}`")));
            }
            path if dir.is_none() => dir = Some(PathBuf::from(path)),
            extra => return Err(Usage(format!("unexpected argument `{extra}`"))),
        }
    }
    let dir = dir.ok_or_else(|| Usage(format!("`{command}` needs a config directory")))?;
    Ok(match command.as_str() {
        "check" => cli::check(&dir, &Loader::new()),
        "openapi" => cli::openapi(&dir, &Loader::new()),
        "prepare" => match runtime(None) {
            Ok(rt) => rt.block_on(cli::prepare(&dir, &Loader::new(), compare)),
            Err(e) => fail(e),
        },
        "serve" => serve(ServeOptions {
            bind,
            ..ServeOptions::new(dir)
        }),
        other => {
            let known = ["check", "prepare", "openapi", "serve", "schema"];
            return Err(Usage(format!(
                "unknown command `{other}`: the commands are {}",
                known.join(", ")
            )));
        }
    })
}

/// `schema [--file PATH]`: no config directory, the format's schema.
fn schema(args: &[String]) -> Result<ExitCode, Usage> {
    match args {
        [] => Ok(cli::schema(None)),
        [flag, path] if flag == "--file" => Ok(cli::schema(Some(path))),
        [flag] if flag == "--file" => Err(Usage(
            "--file needs a path in a config directory, such as domains/shop.yaml".into(),
        )),
        [other, ..] => Err(Usage(format!("`schema` takes no argument `{other}`"))),
    }
}

fn serve(options: ServeOptions) -> ExitCode {
    // `config.yaml` first: it says how to log and how many worker threads to run.
    let settings = match cli::settings(&options.config, &options.env) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let _log_guard = match cli::logging(&settings) {
        Ok(guard) => guard,
        Err(e) => return fail(e),
    };
    let served = runtime(settings.server.workers)
        .map_err(cli::Error::from)
        .and_then(|rt| rt.block_on(cli::serve(options, &settings)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        rt.worker_threads(n);
    }
    rt.enable_all().build()
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}
