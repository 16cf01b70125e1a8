//! SQL placeholder scanning and rewriting: any SQL, any declared names, every driver style;
//! every slot names a declared parameter.
#![no_main]

use api_orchestrator_core::sql_text::{Style, rewrite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (sql, names) = text.split_once('\0').unwrap_or((&text, "id,name,x_1"));
    let names: Vec<&str> = names.split(',').collect();
    for style in [Style::Dollar, Style::NumberedQuestion, Style::Question] {
        let (out, slots) = rewrite(sql, &names, style);
        assert!(slots.iter().all(|&i| i < names.len()), "{out}");
    }
});
