//! The lean HTTP transport's answer reader: any bytes a plain `http://` upstream sends (head,
//! `Content-Length`, `chunked` or close-delimited body, interim `1xx` answers) end in an
//! answer within the size limit or an error, without a panic. The first byte says whether the
//! request was a `HEAD`; the reader gets the rest at most 7 bytes per read.
#![no_main]

use api_orchestrator::source::__fuzz_http_answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, answer)) = data.split_first() else {
        return;
    };
    drop(__fuzz_http_answer(answer, selector & 1 == 1));
});
