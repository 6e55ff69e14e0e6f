#!/usr/bin/env bash
# HTTP API benchmark on the embedded default: accepted and end-to-end msg/s, accept latency
# (saturated, and paced at 1,000 msg/s), peak RSS. Builds the release binary first.
#   bench/run.sh                      # defaults: 100,000 messages, 64 clients, 10 s paced
#   BENCH_TOTAL=200000 BENCH_CLIENTS=128 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench api
