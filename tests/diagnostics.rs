//! Every validation rule has a failing fixture under `fixtures/invalid/`; the rendered
//! diagnostics are pinned by snapshots.

use std::path::Path;

use api_orchestrator::config::{LoadError, Loader};

fn render(dir: &Path) -> String {
    // No environment at all: `${env:…}` references without defaults must be reported.
    let loader = Loader::new().with_env(|_| None);
    match loader.load_dir(dir) {
        Ok(_) => panic!("{} loaded, but it is an invalid fixture", dir.display()),
        Err(LoadError::Invalid(diags)) => {
            for d in diags.iter() {
                assert!(
                    d.file.is_some(),
                    "{}: a diagnostic names no file:\n{d}",
                    dir.display()
                );
                assert!(
                    d.help.is_some(),
                    "{}: a diagnostic has no help line:\n{d}",
                    dir.display()
                );
            }
            // Paths in the rendering are relative to the config dir, so snapshots are portable.
            diags.to_string()
        }
        Err(e) => panic!("{}: unexpected error {e}", dir.display()),
    }
}

#[test]
fn invalid_fixtures_match_their_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invalid");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 20, "the corpus has {} fixtures", dirs.len());
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/diagnostics");
    settings.bind(|| {
        for dir in &dirs {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            insta::assert_snapshot!(name, render(dir));
        }
    });
}

#[test]
fn several_mistakes_are_reported_at_once() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invalid/several-mistakes");
    let err = Loader::new().load_dir(&dir).unwrap_err();
    let diags = err.diagnostics().expect("invalid, not unreadable");
    let codes: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
    for code in [
        "invalid-value",
        "unknown-operation",
        "unknown-source",
        "duplicate-source",
        "expression",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    assert!(diags.len() >= 6, "{diags}");
}

#[test]
fn unreadable_directory_is_an_io_error() {
    let err = Loader::new().load_dir("/definitely/not/here").unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
}

/// A config directory in the original Python service's full shape loads; what it says that
/// has no effect here is reported as warnings, each with its file and a help line.
#[test]
fn the_original_services_config_loads_with_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/original");
    let plan = Loader::new()
        .with_env(|_| None)
        .load_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let warnings = plan.warnings();
    assert!(!warnings.is_empty());
    for d in warnings.iter() {
        assert!(!d.is_error(), "{d}");
        assert!(d.file.is_some() && d.help.is_some(), "{d}");
    }
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/diagnostics");
    settings.bind(|| insta::assert_snapshot!("original-warnings", warnings.to_string()));
}
