//! Route templates: any text is a template or an error, and a template's parameters and
//! display never panic.
#![no_main]

use api_orchestrator_core::plan::RouteTemplate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = RouteTemplate::parse(&text) {
        std::hint::black_box((t.params().count(), t.as_str().len()));
    }
});
