#!/usr/bin/env bash
# The local stack: Apache Kafka (single-node KRaft, from its Maven Central jars) on 127.0.0.1:9092
# and a Nutshell mint (FakeWallet backend) on 127.0.0.1:3338. ClickHouse is embedded (chDB).
#
#   stack/stack.sh up|down|status|clean [kafka|mint]
#
# Idempotent: `up` twice starts nothing twice, `down` on a stopped stack succeeds. State, logs and
# data live under $PROOFRECON_STACK_DIR (default .stack/, git-ignored).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${PROOFRECON_STACK_DIR:-$ROOT/.stack}
PY=${PROOFRECON_PYTHON:-$ROOT/.venv/bin/python}
KAFKA_DIR=$STATE/kafka
MINT_DIR=$STATE/mint
KAFKA_PORT=9092
CONTROLLER_PORT=9093
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-300}
MINT_PORT=${PROOFRECON_STACK_MINT_PORT:-3338}
KAFKA_HEAP=${PROOFRECON_STACK_KAFKA_HEAP:-"-Xms512m -Xmx1g"}
# A fixed, test-only mint key: keysets stay the same across restarts of the local stack.
MINT_KEY=${PROOFRECON_STACK_MINT_KEY:-proofrecon-local-stack-test-key}

log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.3
  done
  log "$what ready"
}

stop_pid() { # stop_pid PIDFILE NAME
  local pidfile=$1 name=$2
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; log "$name not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 20 s; killing"; kill -KILL "$pid" || true; fi
  rm -f "$pidfile"
  log "$name stopped"
}

# ---------------------------------------------------------------- Kafka
kafka_resolve() {
  [ -f "$KAFKA_DIR/libs/.resolved" ] && cmp -s "$ROOT/stack/kafka/pom.xml" "$KAFKA_DIR/libs/.resolved" && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka's jars"
  log "resolving Kafka's jars from Maven Central (first run only)"
  rm -rf "$KAFKA_DIR/libs"; mkdir -p "$KAFKA_DIR/libs"
  mvn -B -q -f "$ROOT/stack/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_DIR/libs" -DincludeScope=runtime >"$KAFKA_DIR/maven.log" 2>&1 \
    || { tail -n 30 "$KAFKA_DIR/maven.log" >&2; die "Maven could not resolve Kafka"; }
  cp "$ROOT/stack/kafka/pom.xml" "$KAFKA_DIR/libs/.resolved"
}

kafka_java() { java $KAFKA_HEAP -cp "$KAFKA_DIR/libs/*" \
  -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" "$@"; }

kafka_format() {
  mkdir -p "$KAFKA_DIR/data"
  sed "s#@DATA_DIR@#$KAFKA_DIR/data#" "$ROOT/stack/kafka/server.properties.in" >"$KAFKA_DIR/server.properties"
  [ -f "$KAFKA_DIR/data/meta.properties" ] && return 0
  local cluster_id; cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  log "formatting KRaft storage (cluster $cluster_id)"
  kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/format.log" 2>&1 || { tail -n 20 "$KAFKA_DIR/format.log" >&2; die "format failed"; }
}

kafka_ready() { "$PY" "$ROOT/stack/ready.py" kafka "127.0.0.1:$KAFKA_PORT"; }

kafka_up() {
  if pid_alive "$KAFKA_DIR/kafka.pid"; then log "Kafka already running (pid $(cat "$KAFKA_DIR/kafka.pid"))"
  else
    port_open "$KAFKA_PORT" && die "127.0.0.1:$KAFKA_PORT is taken by a process this stack did not start"
    command -v java >/dev/null || die "Java 17+ is needed to run Kafka"
    kafka_resolve
    kafka_format
    log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
    setsid nohup java $KAFKA_HEAP -cp "$KAFKA_DIR/libs/*" \
      -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" \
      kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/kafka.log" 2>&1 </dev/null &
    echo $! >"$KAFKA_DIR/kafka.pid"
  fi
  # After an unclean stop the broker recovers every partition's log before it answers; with
  # thousands of leftover partitions that took 100 s here, hence the generous default.
  wait_for "$KAFKA_START_TIMEOUT" "Kafka (metadata round trip)" kafka_ready \
    || { tail -n 30 "$KAFKA_DIR/kafka.log" >&2
         die "Kafka did not answer within $KAFKA_START_TIMEOUT s (KAFKA_START_TIMEOUT; 'make stack-clean' drops old topics)"; }
}

kafka_down() { stop_pid "$KAFKA_DIR/kafka.pid" Kafka; }

# ---------------------------------------------------------------- Mint
mint_install() {
  local venv=$MINT_DIR/venv
  [ -f "$venv/.installed" ] && cmp -s "$ROOT/stack/mint/requirements.txt" "$venv/.installed" && return 0
  log "installing Nutshell into its own virtualenv (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/stack/mint/requirements.txt" \
    || die "could not install Nutshell"
  cp "$ROOT/stack/mint/requirements.txt" "$venv/.installed"
}

mint_ready() { "$PY" "$ROOT/stack/ready.py" mint "http://127.0.0.1:$MINT_PORT"; }

mint_up() {
  if pid_alive "$MINT_DIR/mint.pid"; then log "mint already running (pid $(cat "$MINT_DIR/mint.pid"))"
  else
    port_open "$MINT_PORT" && die "127.0.0.1:$MINT_PORT is taken by a process this stack did not start"
    mint_install
    mkdir -p "$MINT_DIR/data"
    log "starting the Nutshell mint on 127.0.0.1:$MINT_PORT"
    # Fees off and instant FakeWallet payments keep tests deterministic and fast.
    # Nutshell resolves some paths against its working directory: run it from the state dir.
    cd "$MINT_DIR"
    env MINT_BACKEND_BOLT11_SAT=FakeWallet MINT_LISTEN_HOST=127.0.0.1 \
      MINT_LISTEN_PORT="$MINT_PORT" MINT_PRIVATE_KEY="$MINT_KEY" MINT_DATABASE="$MINT_DIR/data/mint" \
      CASHU_DIR="$MINT_DIR/data/cashu" MINT_INPUT_FEE_PPK=0 FAKEWALLET_DELAY_INCOMING_PAYMENT=0 \
      FAKEWALLET_DELAY_OUTGOING_PAYMENT=0 \
      setsid nohup "$MINT_DIR/venv/bin/mint" >"$MINT_DIR/mint.log" 2>&1 </dev/null &
    echo $! >"$MINT_DIR/mint.pid"
    cd "$ROOT"
  fi
  wait_for 60 "mint (GET /v1/info)" mint_ready \
    || { tail -n 30 "$MINT_DIR/mint.log" >&2; die "the mint did not answer within 60 s"; }
}

mint_down() { stop_pid "$MINT_DIR/mint.pid" mint; }

# ---------------------------------------------------------------- status
status() {
  local rc=0
  if pid_alive "$KAFKA_DIR/kafka.pid" && kafka_ready; then
    echo "kafka   up    127.0.0.1:$KAFKA_PORT  pid $(cat "$KAFKA_DIR/kafka.pid")  rss $(rss "$KAFKA_DIR/kafka.pid")"
  else echo "kafka   down"; rc=1; fi
  if pid_alive "$MINT_DIR/mint.pid" && mint_ready; then
    echo "mint    up    http://127.0.0.1:$MINT_PORT  pid $(cat "$MINT_DIR/mint.pid")  rss $(rss "$MINT_DIR/mint.pid")"
  else echo "mint    down"; rc=1; fi
  echo "clickhouse embedded (chDB, in-process)"
  return $rc
}

rss() { ps -o rss= -p "$(cat "$1")" 2>/dev/null | awk '{printf "%d MiB", $1/1024}'; }

cmd=${1:-status}; what=${2:-all}
mkdir -p "$KAFKA_DIR" "$MINT_DIR"
case "$cmd:$what" in
  up:all) [ -x "$PY" ] || die "no project virtualenv at $PY (run: make venv)"; kafka_up; mint_up ;;
  up:kafka) kafka_up ;;
  up:mint) mint_up ;;
  down:all) mint_down; kafka_down ;;
  down:kafka) kafka_down ;;
  down:mint) mint_down ;;
  status:*) status ;;
  # The default data dir's table stores are a copy of this broker's changelogs: without the
  # topics a worker would refuse them (ConsistencyError), so they go too. Analytics (chDB) stay.
  clean:*) mint_down; kafka_down; rm -rf "$KAFKA_DIR/data" "$MINT_DIR/data" "$ROOT/.data/faust"
           log "data removed" ;;
  *) die "usage: stack.sh up|down|status|clean [kafka|mint]" ;;
esac
