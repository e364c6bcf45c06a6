#!/usr/bin/env bash
# Runs the ingest benchmark with enough file descriptors for thousands of sockets per process.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec node --import tsx bench/ingest.ts "$@"
