#!/usr/bin/env bash
# Starts a local 3-node keeperd ensemble on 127.0.0.1, the way an operator sets up three
# ZooKeeper hosts: one zoo.cfg listing server.1..3, a myid per node, `keeperd start` on each.
#
#   examples/local_ensemble.sh start [DIR]    # default DIR: ./local-ensemble
#   examples/local_ensemble.sh status [DIR]
#   examples/local_ensemble.sh stop [DIR]
#
# Client ports 21811-21813, quorum ports 28881-28883, election ports 38881-38883.
# Connect with: keeperctl -server 127.0.0.1:21811,127.0.0.1:21812,127.0.0.1:21813 ls /
set -euo pipefail
cd "$(dirname "$0")/.."
verb=${1:-start}
dir=$(realpath -m "${2:-local-ensemble}")
bin=${KEEPERD:-target/release/keeperd}
[ -x "$bin" ] || cargo build --release --bin keeperd --bin keeperctl

case "$verb" in
start)
  for id in 1 2 3; do
    mkdir -p "$dir/n$id/data"
    echo "$id" > "$dir/n$id/data/myid"
    cat > "$dir/n$id/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/n$id/data
clientPort=2181$id
clientPortAddress=127.0.0.1
4lw.commands.whitelist=mntr,ruok,srvr,stat,conf
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
server.1=127.0.0.1:28881:38881
server.2=127.0.0.1:28882:38882
server.3=127.0.0.1:28883:38883
CFG
    "$bin" start "$dir/n$id/zoo.cfg"
  done
  sleep 2
  for id in 1 2 3; do echo -n "n$id: "; "$bin" status "$dir/n$id/zoo.cfg" | tail -1; done
  ;;
status)
  for id in 1 2 3; do echo -n "n$id: "; "$bin" status "$dir/n$id/zoo.cfg" | tail -1 || true; done
  ;;
stop)
  for id in 1 2 3; do "$bin" stop "$dir/n$id/zoo.cfg" || true; done
  ;;
*)
  echo "usage: $0 start|status|stop [DIR]" >&2
  exit 2
  ;;
esac
