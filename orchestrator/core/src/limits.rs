//! The limits that keep any config from taking a thread's stack or a parser's time
//! (`limits:` in `config.yaml`): in force for the rest of a load once `config.yaml` is read.

use std::cell::Cell;

use crate::plan::Limits;

thread_local! {
    static CURRENT: Cell<Limits> = const { Cell::new(Limits::DEFAULT) };
}

/// The limits in force on this thread: the defaults, or those of the load in progress.
pub(crate) fn current() -> Limits {
    CURRENT.with(Cell::get)
}

/// Puts `limits` in force on this thread until the scope is dropped (a panic included).
pub(crate) struct Scope(Limits);

impl Scope {
    pub(crate) fn enter(limits: Limits) -> Self {
        Self(CURRENT.with(|c| c.replace(limits)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}
