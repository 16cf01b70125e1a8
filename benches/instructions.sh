#!/usr/bin/env bash
# Instructions per engine execution (the criterion bench `engine`'s fixture), counted by
# callgrind: the same number for the same build whatever else the machine is doing.
#
#   bash benches/instructions.sh [executions]     # default 2000
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
cargo build --quiet --release -p benches --bin engine-instructions
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$target/release/engine-instructions" "$1" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
base=$(count 0)
total=$(count "$n")
echo "instructions per execution: $(((total - base) / n)) (callgrind, $n executions)"
