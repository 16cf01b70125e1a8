//! The upstream decoders: any bytes answered by a feature server or a model server (Open
//! Inference Protocol V2, TF Serving, MLflow, plain JSON) decode to rows or an error, without
//! a panic. The first byte picks the protocol, the number of rows asked for and the outputs.
#![no_main]

use api_orchestrator::plan::ModelProtocol;
use api_orchestrator::source::{feast, ml};
use libfuzzer_sys::fuzz_target;

/// Output mappings of each form `outputs:` accepts.
const OUTPUTS: &[(&str, &str)] = &[
    ("first", "[0]"),
    ("score", "predict[1]"),
    ("label", "label"),
    ("deep", "probabilities[2]"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let rows = usize::from(selector >> 4) % 5;
    let outputs = if selector & 0x08 == 0 {
        &[][..]
    } else {
        OUTPUTS
    };
    let protocol = match selector % 5 {
        0 => {
            drop(feast::__fuzz_answer(body, rows));
            return;
        }
        1 => ModelProtocol::V2,
        2 => ModelProtocol::TfServing,
        3 => ModelProtocol::Mlflow,
        _ => ModelProtocol::Json,
    };
    drop(ml::__fuzz_answer(protocol, body, rows, outputs));
});
