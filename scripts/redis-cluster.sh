#!/usr/bin/env bash
# A real 3-master Redis Cluster on loopback ports, with the machine's redis-server.
#   scripts/redis-cluster.sh start [BASE_PORT]   (default 7100: ports 7100-7102)
#   scripts/redis-cluster.sh stop  [BASE_PORT]
# Data lives under ${MOOKTI_DATA_DIR:-var}/cluster-BASE_PORT. Prints the REDIS_URL to use.
set -euo pipefail
cmd=${1:-start}
base=${2:-7100}
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${MOOKTI_DATA_DIR:-$root/var}/cluster-$base"
ports=("$base" "$((base + 1))" "$((base + 2))")

case "$cmd" in
start)
  for port in "${ports[@]}"; do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
      echo "port $port already answers; stop it first" >&2
      exit 1
    fi
  done
  rm -rf "$dir"
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$dir/$port" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
      --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
      --save "" --logfile "$dir/$port/redis.log" --pidfile "$dir/$port/redis.pid"
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$dir/create.log"
  for _ in $(seq 100); do
    redis-cli -p "$base" cluster info | grep -q "cluster_state:ok" && break
    sleep 0.1
  done
  redis-cli -p "$base" cluster info | grep -q "cluster_state:ok"
  echo "redis://127.0.0.1:$base/0"
  ;;
stop)
  for port in "${ports[@]}"; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop [BASE_PORT]" >&2
  exit 2
  ;;
esac
