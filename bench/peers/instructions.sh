#!/usr/bin/env bash
# Instructions per evaluation of flag (b) for every engine and population, counted by callgrind
# (valgrind), so the result does not depend on what else the machine is running.
# Usage: bench/peers/instructions.sh [ROUNDS]   (needs valgrind: apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")"
rounds="${1:-20}"
cargo build --release --example instructions
bin=target/release/examples/instructions

total() { # ENGINE POPULATION ROUNDS -> total instructions executed
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 |
        sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}

echo "| engine | population | instructions per evaluation |"
echo "|---|---|---|"
for engine in tailor unleash growthbook launchdarkly; do
    for population in targeted non_matching; do
        base=$(total "$engine" "$population" 0)
        with=$(total "$engine" "$population" "$rounds")
        echo "| $engine | $population | $(( (with - base) / (1000 * rounds) )) |"
    done
done
