//! The files of a config directory, in memory: what the pure loader reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::LoadError;

/// The YAML files of a config directory (and its folders), read into memory.
///
/// [`Loader::load`](super::Loader::load) works on this alone, so a config can be checked
/// without a file system (tests, fuzzers, the `orchestrate!` macro); [`ConfigFiles::read_dir`]
/// reads one from disk. Paths are relative to the config root, with `/` separators
/// (`domains/shop.yaml`).
///
/// ```
/// use api_orchestrator_core::config::ConfigFiles;
///
/// let files = ConfigFiles::new()
///     .with_file("config.yaml", "defaults: {timeout: 5s}\n")
///     .with_file("domains/shop.yaml", "endpoints: {}\n");
/// assert_eq!(files.get("domains/shop.yaml"), Some("endpoints: {}\n"));
/// assert!(files.has_dir("domains"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFiles {
    base_dir: PathBuf,
    files: BTreeMap<String, String>,
    /// YAML files found where the loader reads none of that name: only their names matter
    /// (the loader reports each as unexpected), so they are not read.
    unread: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

/// The folders a config directory has, relative to its root: the only ones the loader lists.
fn is_listed(rel_dir: &str) -> bool {
    let parts: Vec<&str> = rel_dir.split('/').collect();
    matches!(
        parts.as_slice(),
        [""] | ["integrations"] | ["domains"] | ["domains", _] | ["domains", _, "integrations"]
    )
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Whether the loader reads the YAML file at `rel` (the others are reported by name).
fn is_read(rel: &str, host: &[String]) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        [name] => super::TOP_FILES.contains(name),
        ["integrations", name] | ["domains", _, "integrations", name] => {
            super::INTEGRATION_FILES.contains(name) || host.iter().any(|h| h == name)
        }
        ["domains", _] => true,
        ["domains", _, name] => *name == "database.yaml",
        _ => false,
    }
}

impl ConfigFiles {
    /// No files; relative SQLite paths resolve against the current directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the YAML files of the config directory at `dir`: those at its top, in
    /// `integrations/`, `domains/`, `domains/<domain>/` and `domains/<domain>/integrations/`
    /// (other files are not part of a config), and the schema snapshot
    /// (`.orchestrator/schema.json`, [`crate::snapshot`]) when there is one. Relative SQLite
    /// paths will resolve against `dir`.
    ///
    /// A YAML file that cannot be read, a dangling symlink among them included, is an error
    /// naming it: a config is never loaded with a file silently missing.
    pub fn read_dir(dir: impl AsRef<Path>) -> Result<Self, LoadError> {
        Self::read_dir_with(dir.as_ref(), &[])
    }

    /// [`read_dir`](Self::read_dir), also reading the integration files named `host` (the
    /// `<kind>.yaml` files of host source types).
    pub(crate) fn read_dir_with(dir: &Path, host: &[String]) -> Result<Self, LoadError> {
        let meta = std::fs::metadata(dir).map_err(|e| io(dir, e))?;
        if !meta.is_dir() {
            return Err(io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let mut out = Self {
            base_dir: dir.to_owned(),
            ..Self::default()
        };
        out.read_folder(dir, "", host)?;
        let snapshot = dir.join(crate::snapshot::SNAPSHOT_FILE);
        match std::fs::read_to_string(&snapshot) {
            Ok(text) => out.insert(crate::snapshot::SNAPSHOT_FILE, text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&snapshot, e)),
        }
        Ok(out)
    }

    fn read_folder(&mut self, root: &Path, rel: &str, host: &[String]) -> Result<(), LoadError> {
        let path = if rel.is_empty() {
            root.to_owned()
        } else {
            root.join(rel)
        };
        self.dirs.insert(rel.to_owned());
        let mut entries = std::fs::read_dir(&path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| io(&path, e))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let entry_path = entry.path();
            if entry_path.is_dir() {
                if is_listed(&child) {
                    self.read_folder(root, &child, host)?;
                } else if rel.starts_with("domains/") && !rel.ends_with("/integrations") {
                    // An unexpected folder inside a domain folder is reported by the loader.
                    self.dirs.insert(child);
                }
            } else if is_yaml(&name) && !is_read(&child, host) {
                self.unread.insert(child);
            } else if is_yaml(&name) {
                let text = std::fs::read_to_string(&entry_path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        io(
                            &entry_path,
                            std::io::Error::new(
                                e.kind(),
                                "a dangling symbolic link: its target does not exist",
                            ),
                        )
                    } else {
                        io(&entry_path, e)
                    }
                })?;
                self.files.insert(child, text);
            }
        }
        Ok(())
    }

    /// Adds (or replaces) the file at `rel` with `text`; its folders exist from then on.
    #[must_use]
    pub fn with_file(mut self, rel: impl Into<String>, text: impl Into<String>) -> Self {
        self.insert(rel, text);
        self
    }

    /// Adds (or replaces) the file at `rel` with `text`; its folders exist from then on.
    pub fn insert(&mut self, rel: impl Into<String>, text: impl Into<String>) {
        let rel = rel.into();
        self.insert_parents(&rel);
        self.files.insert(rel, text.into());
    }

    /// Takes the file at `rel` out (its folders stay); its text, if it was there.
    pub fn remove(&mut self, rel: &str) -> Option<String> {
        self.files.remove(rel)
    }

    /// The folders above `rel`, the root included.
    fn insert_parents(&mut self, rel: &str) {
        let mut dir = rel;
        while let Some((parent, _)) = dir.rsplit_once('/') {
            self.dirs.insert(parent.to_owned());
            dir = parent;
        }
        self.dirs.insert(String::new());
    }

    /// Relative SQLite paths resolve against `dir` (by default the directory read, or the
    /// current directory).
    #[must_use]
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// The directory relative SQLite paths resolve against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The text of the file at `rel`.
    pub fn get(&self, rel: &str) -> Option<&str> {
        self.files.get(rel).map(String::as_str)
    }

    /// Whether the folder `rel` exists (`""` is the root).
    pub fn has_dir(&self, rel: &str) -> bool {
        self.dirs.contains(rel)
    }

    /// Every file read, by relative path, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The names of the files directly in folder `rel` (read or not), in name order.
    pub(crate) fn files_in<'a>(&'a self, rel: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let names: BTreeSet<&str> = children(self.files.keys(), rel)
            .chain(children(self.unread.iter(), rel))
            .collect();
        names.into_iter()
    }

    /// The names of the folders directly in folder `rel`, in name order.
    pub(crate) fn dirs_in<'a>(&'a self, rel: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        children(self.dirs.iter(), rel)
    }
}

fn children<'a>(
    paths: impl Iterator<Item = &'a String> + 'a,
    rel: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    paths.filter_map(move |p| {
        let rest = if rel.is_empty() {
            p.as_str()
        } else {
            p.strip_prefix(rel)?.strip_prefix('/')?
        };
        (!rest.is_empty() && !rest.contains('/')).then_some(rest)
    })
}

fn io(path: &Path, source: std::io::Error) -> LoadError {
    LoadError::Io {
        path: path.to_owned(),
        source,
    }
}
