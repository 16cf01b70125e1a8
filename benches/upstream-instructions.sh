#!/usr/bin/env bash
# Instructions per upstream HTTP call of each client stack in benches/upstream.rs, counted by
# callgrind on the calling thread (the client's connection tasks run there too; the backend's
# thread is not counted).
#
#   bash benches/upstream-instructions.sh [OPTION ...]   # default: all seven
#
# Each option runs twice, for 200 and for 1,200 calls; the difference of the main thread's
# totals divided by 1,000 leaves out start-up and the first connection.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p benches --bin upstream-instructions
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count() { # option calls -> instructions on the main thread
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/$1-$2" \
        "$target/release/upstream-instructions" "$1" "$2" > /dev/null 2> "$work/$1-$2.stderr" ||
        { cat "$work/$1-$2.stderr" >&2; exit 1; }
    sed -n 's/^summary: //p' "$work/$1-$2-01"
}

for option in ${@:-reqwest reqwest-prepared hyper-util hyper-conn json json-sonic json-sonic-value}; do
    short=$(count "$option" 200)
    long=$(count "$option" 1200)
    echo "$option: $(((long - short) / 1000)) instructions per call"
done
