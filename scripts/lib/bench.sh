# Shared by the benchmark scripts (scripts/bench-memory, scripts/bench-import,
# scripts/bench-vs-zookeeper with Debian's Apache ZooKeeper 3.8, scripts/bench-write-stall).
# Source it from the repository root after setting KEEPERCTL (the keeperctl binary used to
# probe servers).

# zookeeper.jar's manifest Class-Path brings netty, jute and slf4j-api along.
ZK_CP=/usr/share/java/zookeeper.jar
[ -f /usr/share/java/slf4j-simple.jar ] && ZK_CP="$ZK_CP:/usr/share/java/slf4j-simple.jar"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

now() { date +%s.%N; }

wait_ready() { # port path [timeout s]: until a read of path on 127.0.0.1:port succeeds
  local deadline=$((SECONDS + ${3:-900}))
  until "$KEEPERCTL" -server "127.0.0.1:$1" stat "$2" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "server on $1 not ready (no $2)" >&2; exit 1; }
    sleep 0.05
  done
}

wait_exit() { # pid [timeout s]: for servers that are not our children (started in $(...))
  local deadline=$((SECONDS + ${2:-120}))
  while kill -0 "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { kill -KILL "$1"; break; }
    sleep 0.05
  done
}

kib_of() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; } # pid VmRSS|VmHWM
mib() { echo $((($1 + 512) / 1024)); }
rss_mib() { mib "$(kib_of "$1" VmRSS)"; }
du_mib() { if [ -e "$1" ]; then du -sm "$1" | cut -f1; else echo -; fi; }
