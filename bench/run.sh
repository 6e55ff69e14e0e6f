#!/usr/bin/env bash
# HTTP API benchmark: accepted and end-to-end msg/s, accept latency (saturated, and paced
# at 1,000 msg/s), peak RSS. Builds the release binary first.
#   bench/run.sh              # embedded default: in-memory bus and store
#   bench/run.sh amqp         # RabbitMQ bus + Redis store, beside the broker's raw ceiling
#   BENCH_TOTAL=200000 BENCH_CLIENTS=128 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-memory}" = amqp ]; then
  ../shared/services/start
fi
BENCH_MODE="${1:-memory}" cargo bench --bench api
