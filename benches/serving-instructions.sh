#!/usr/bin/env bash
# Instructions per request on the load harness's server thread, counted by callgrind: unlike
# req/s on a shared VM, nearly the same figure for the same build whatever else the machine does.
#
#   bash benches/serving-instructions.sh [VARIANT ...]   # default: a b (scenario i)
#
# VARIANT is what `load --profile` takes: `a` / `b` (scenario i, library / hand-written;
# `hyper-a`: the library on a bare hyper server instead of axum),
# `actix-a` / `actix-b` (scenario vi, in actix-web), `fanN-a` / `fanN-b` (scenario ii with
# N sources) or `obs-metrics` / `obs-1` / `obs-100` (scenario i's plans with metrics, and traces
# sampled at 1 % or 100 %; the OTLP export runs on the server thread too), or
# `each-VARIANT-a` / `each-VARIANT-b` (scenario ix, `for_each` over 1,000 elements; VARIANT one
# of memory, sqlite, sqlite-batched, http, http-batched).
# Each variant runs twice under callgrind, for 2 s and for 6 s; the difference of the server
# thread's totals divided by the difference of the requests answered leaves out start-up.
# Repeated runs of the same build agree within about 0.3 % (scheduling and the timed windows
# vary a little). The server thread is, of the threads that ran a handler (`Api::route`,
# `Api::handle…` (the compiler may inline one into the other) or `manual_…`; the harness calls
# each server once at start-up), the one with the most
# instructions: the server runtime's thread, or actix-web's worker. The SQLite worker threads
# are not counted (they run the same query for both variants).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p benches --bin load
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # variant seconds -> "requests instructions"
    local out="$work/$1-$2"
    # Names uncompressed: with compression a thread's file may name a function only by an id
    # that another thread's file defines, and the handler thread would not be found.
    valgrind --tool=callgrind --separate-threads=yes --compress-strings=no --callgrind-out-file="$out.%p" \
        "$target/release/load" --profile "$1" "$2" > "$out.stdout" 2> "$out.stderr" ||
        { cat "$out.stderr" >&2; exit 1; }
    local requests instructions
    requests=$(sed -n 's/.*: \([0-9]*\) requests,.*/\1/p' "$out.stdout")
    instructions=$(grep -l 'Api::route\|Api::handle\|manual_' "$out".*-[0-9]* | xargs -r sed -n 's/^summary: //p' | sort -n | tail -1)
    [[ $requests =~ ^[0-9]+$ && $instructions =~ ^[0-9]+$ ]] ||
        { echo "$1: no request or instruction count in the output" >&2; exit 1; }
    echo "$requests $instructions"
}

for variant in "${@:-a b}"; do
    for v in $variant; do
        short=$(run "$v" 2)
        long=$(run "$v" 6)
        read -r n2 i2 <<< "$short"
        read -r n6 i6 <<< "$long"
        ((n6 > n2)) || { echo "$v: the 6 s run answered no more requests than the 2 s run" >&2; exit 1; }
        echo "$v: $(((i6 - i2) / (n6 - n2))) instructions per request on the server thread ($((n6 - n2)) requests)"
    done
done
