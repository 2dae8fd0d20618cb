#!/usr/bin/env bash
# `make demo`: kubensage with demo pods, a relay, an agent and a Prometheus with the
# monitoring mixin's rules (kubensage_lab/demo.py); Ctrl-C removes all of it.
set -euo pipefail
BIN="$1"
cd "$(dirname "$0")/.."
exec "$BIN/python" -m kubensage_lab.demo
