#!/usr/bin/env bash
# Benchmarks (release build first).
#   bench/run.sh              # HTTP API, embedded default: accepted and end-to-end msg/s,
#                             # accept latency (saturated and paced at 1,000 msg/s), peak RSS
#   bench/run.sh amqp         # the same on RabbitMQ + Redis, beside the broker's raw ceiling
#   bench/run.sh smpp         # HTTP -> submit_sm -> submitted event through the SMSC
#                             # simulator in tests/peers/smsc (SMSC_RECORD=0), beside its own ceiling
#   bench/run.sh irc          # HTTP -> PRIVMSG received by a person on a local ngircd (flood
#                             # penalties off), no rate limit: accepted and end-to-end msg/s
#   bench/run.sh xmpp         # HTTP -> chat message through a local Prosody -> a user's
#                             # tokio-xmpp client (prosody installed: script/test does it)
#   bench/run.sh ussd         # provider callbacks: USSD sessions held until an application
#                             # answers over the API, and inbound SMS callbacks (africastalking)
#   bench/run.sh soak         # a paced 1,000 msg/s through SMPP with receipts for an hour
#                             # ([store] max_records = 20000): hornbill's RSS every 10 s, and
#                             # whether it stays flat once the store's cap is reached
#   bench/run.sh chat         # HTTP chat types (whatsapp, twitter, telegram): HTTP send ->
#                             # provider request -> submitted event, each against a lean stub
#   bench/run.sh cluster      # RabbitMQ + Redis: msg/s with 1, 2 and 3 nodes, and the time
#                             # from kill -9 of an SMPP channel's holder to its bind elsewhere
#   BENCH_TOTAL=200000 BENCH_CLIENTS=128 bench/run.sh
#   BENCH_RECEIPTS=1 bench/run.sh smpp   # with delivery receipts too
#   BENCH_LOG_PROTOCOL=1 bench/run.sh smpp  # with every PDU in the channel log (log_protocol)
#   BENCH_TOTAL=50000 BENCH_CLIENTS=64 bench/run.sh xmpp  # (defaults 20000 and 32)
#   BENCH_SOAK_SECS=120 bench/run.sh soak  # a short soak (BENCH_SOAK_RATE, BENCH_SOAK_RECORDS)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-memory}" in
  amqp)
    script/services
    BENCH_MODE=amqp cargo bench --bench api ;;
  smpp)
    cargo bench --bench smpp ;;
  irc)
    script/need ngircd:ngircd
    cargo bench --bench irc ;;
  xmpp)
    cargo bench --bench xmpp ;;
  ussd)
    cargo bench --bench ussd ;;
  soak)
    cargo bench --bench soak ;;
  chat)
    cargo bench --bench chat ;;
  cluster)
    script/services
    cargo bench --bench cluster ;;
  *)
    BENCH_MODE=memory cargo bench --bench api ;;
esac
