#!/usr/bin/env bash
# The local stack, all bound to 127.0.0.1. ClickHouse is embedded (chDB).
#
#   kafka      Apache Kafka, single-node KRaft from its Maven Central jars: PLAINTEXT on :9092 (the
#              suite's broker), SASL_PLAINTEXT with SCRAM-SHA-512 on :9094, controller on :9093
#   cluster    three Kafka nodes (KRaft, each broker and controller) on :19092, :19093, :19094,
#              controllers on :19192-:19194; RF 3, min ISR 2          (KAFKA_NODES=3)
#   mint       the Nutshell mint (FakeWallet) on :3338                  (MINTS=nutshell, default)
#   cdk        CDK's cdk-mintd (FakeWallet, sqlite) on :3339, built once by cargo   (MINTS=...,cdk)
#
#   stack/stack.sh up|down|status|clean [all|kafka|cluster|mint|nutshell|cdk]
#   stack/stack.sh kafka-node start|stop|kill N    one cluster node (kill = SIGKILL)
#   stack/stack.sh bootstrap [cluster|kafka]       the bootstrap string (exit 1 when not up)
#   stack/stack.sh scram                           "HOST:PORT USER PASSWORD" of the SCRAM listener
#   stack/stack.sh url nutshell|cdk                the mint's URL (exit 1 when not up)
#
# `up` (all) starts kafka, the cluster when KAFKA_NODES=3, and the mints listed in MINTS
# (comma-separated: nutshell, cdk); `down` and `clean` (all) act on everything, whatever is up.
# Idempotent: `up` twice starts nothing twice, `down` on a stopped stack succeeds. State, logs and
# data live under $PROOFRECON_STACK_DIR (default .stack/, git-ignored); the CDK binary under
# $PROOFRECON_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/proofrecon), outside the clone.
# Every port can be moved with an environment variable (below), so that a second stack (tests,
# development) runs beside the default one with its own state dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${PROOFRECON_STACK_DIR:-$ROOT/.stack}
PY=${PROOFRECON_PYTHON:-$ROOT/.venv/bin/python}
KAFKA_DIR=$STATE/kafka
CLUSTER_DIR=$STATE/cluster
MINT_DIR=$STATE/mint
CDK_DIR=$STATE/cdk
# Kafka's jars; a private stack (a test's) may point this at the default stack's resolved jars.
KAFKA_LIBS=${PROOFRECON_STACK_KAFKA_LIBS:-$KAFKA_DIR/libs}
KAFKA_NODES=${PROOFRECON_STACK_KAFKA_NODES:-${KAFKA_NODES:-1}}
MINTS=${PROOFRECON_STACK_MINTS:-${MINTS:-nutshell}}

KAFKA_PORT=${PROOFRECON_STACK_KAFKA_PORT:-9092}
CONTROLLER_PORT=${PROOFRECON_STACK_CONTROLLER_PORT:-9093}
SCRAM_PORT=${PROOFRECON_STACK_SCRAM_PORT:-9094}
# The cluster's node N listens on CLUSTER_PORT+N-1 (broker) and CLUSTER_CONTROLLER_PORT+N-1. They
# are recorded in cluster/cluster.env when the cluster is formatted and read from there afterwards.
CLUSTER_PORT=${PROOFRECON_STACK_CLUSTER_PORT:-19092}
CLUSTER_CONTROLLER_PORT=${PROOFRECON_STACK_CLUSTER_CONTROLLER_PORT:-19192}
CLUSTER_SIZE=3
CLUSTER_ID=
MINT_PORT=${PROOFRECON_STACK_MINT_PORT:-3338}
CDK_PORT=${PROOFRECON_STACK_CDK_PORT:-3339}

KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-300}
KAFKA_HEAP=${PROOFRECON_STACK_KAFKA_HEAP:-"-Xms512m -Xmx1g"}
CLUSTER_HEAP=${PROOFRECON_STACK_CLUSTER_HEAP:-"-Xms256m -Xmx512m"}
# A fixed, test-only mint key: keysets stay the same across restarts of the local stack.
MINT_KEY=${PROOFRECON_STACK_MINT_KEY:-proofrecon-local-stack-test-key}
# The SCRAM-SHA-512 user of the single node's SASL_PLAINTEXT listener. Test-only credentials:
# the listener is bound to 127.0.0.1 and the password is published here and by `stack.sh scram`.
SCRAM_USER=proofrecon
SCRAM_PASSWORD=proofrecon-local-stack-scram-test-password
# The CDK mint's fixed, test-only BIP39 mnemonic (its keysets stay the same across restarts).
CDK_MNEMONIC=${PROOFRECON_STACK_CDK_MNEMONIC:-"abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"}
CDK_VERSION=0.18.3
CACHE=${PROOFRECON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/proofrecon}
CDK_BIN=$CACHE/cdk/bin/cdk-mintd

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

stop_pids() { # stop_pids NAME=PIDFILE...: SIGTERM to all at once, SIGKILL to those left after 30 s
  local entry name pidfile pid left pids=()
  for entry in "$@"; do
    name=${entry%%=*}; pidfile=${entry#*=}
    if pid_alive "$pidfile"; then
      pid=$(cat "$pidfile"); kill -TERM "$pid" 2>/dev/null || true; pids+=("$name=$pid=$pidfile")
    else rm -f "$pidfile"; log "$name not running"; fi
  done
  for _ in $(seq 1 150); do
    left=0
    for entry in ${pids[@]+"${pids[@]}"}; do pid=${entry#*=}; kill -0 "${pid%%=*}" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.2
  done
  for entry in ${pids[@]+"${pids[@]}"}; do
    name=${entry%%=*}; pid=${entry#*=}; pidfile=${pid#*=}; pid=${pid%%=*}
    if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 30 s; killing"; kill -KILL "$pid" || true; fi
    rm -f "$pidfile"; log "$name stopped"
  done
}

rss() { ps -o rss= -p "$(cat "$1")" 2>/dev/null | awk '{printf "%d MiB", $1/1024}'; }

# ---------------------------------------------------------------- Kafka (shared)
kafka_resolve() {
  [ -f "$KAFKA_LIBS/.resolved" ] && cmp -s "$ROOT/stack/kafka/pom.xml" "$KAFKA_LIBS/.resolved" && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka's jars"
  log "resolving Kafka's jars from Maven Central (first run only)"
  rm -rf "$KAFKA_LIBS"; mkdir -p "$KAFKA_LIBS"
  mvn -B -q -f "$ROOT/stack/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime >"$KAFKA_LIBS/../maven.log" 2>&1 \
    || { tail -n 30 "$KAFKA_LIBS/../maven.log" >&2; die "Maven could not resolve Kafka"; }
  cp "$ROOT/stack/kafka/pom.xml" "$KAFKA_LIBS/.resolved"
}

kafka_java() { # kafka_java HEAP ARGS...: a JVM on Kafka's jars (the broker, or one of its tools)
  local heap; read -r -a heap <<<"$1"; shift
  java "${heap[@]}" -cp "$KAFKA_LIBS/*" \
    -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" "$@"
}

kafka_tool() { kafka_java "-Xmx256m" "$@"; }

kafka_spawn() { # kafka_spawn DIR HEAP: start kafka.Kafka on DIR/server.properties, detached
  local dir=$1 heap
  read -r -a heap <<<"$2"
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka"
  setsid nohup java "${heap[@]}" -cp "$KAFKA_LIBS/*" \
    -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties" \
    kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
}

kafka_format() { # kafka_format DIR CLUSTER_ID [STORAGE-TOOL ARGS...]: format DIR/data once
  local dir=$1 cluster_id=$2; shift 2
  [ -f "$dir/data/meta.properties" ] && return 0
  log "formatting KRaft storage in $dir (cluster $cluster_id)"
  kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" "$@" \
    >"$dir/format.log" 2>&1 || { tail -n 20 "$dir/format.log" >&2; die "format failed"; }
}

random_uuid() { kafka_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1; }

# ---------------------------------------------------------------- Kafka (single node)
kafka_configure() { # server.properties is written anew on every start, data dirs are kept
  mkdir -p "$KAFKA_DIR/data"
  sed -e "s#@DATA_DIR@#$KAFKA_DIR/data#" -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" \
      -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@SCRAM_PORT@#$SCRAM_PORT#g" \
      "$ROOT/stack/kafka/server.properties.in" >"$KAFKA_DIR/server.properties"
  [ -f "$KAFKA_DIR/data/meta.properties" ] && return 0
  # A new data dir gets the SCRAM user in its bootstrap metadata; older ones get it at runtime.
  kafka_format "$KAFKA_DIR" "$(random_uuid)" \
    --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]"
}

# What the running broker was started with (its server.properties), not what the env says now.
kafka_listener() { # kafka_listener PROTOCOL: HOST:PORT of that advertised listener, or nothing
  sed -n "s#^advertised.listeners=\(.*,\)*$1://\([^,]*\).*#\2#p" "$KAFKA_DIR/server.properties" 2>/dev/null
}

kafka_bootstrap() { local l; l=$(kafka_listener PLAINTEXT); echo "${l:-127.0.0.1:$KAFKA_PORT}"; }

kafka_ready() { "$PY" "$ROOT/stack/ready.py" kafka "$(kafka_bootstrap)"; }

scram_ready() { "$PY" "$ROOT/stack/ready.py" scram "$(kafka_listener SASL_PLAINTEXT)" "$SCRAM_USER" "$SCRAM_PASSWORD"; }

scram_ensure() { # the SCRAM user exists with this password (upserted when the login fails)
  scram_ready >/dev/null 2>&1 && { log "SASL/SCRAM listener ready"; return 0; }
  log "creating SCRAM-SHA-512 user $SCRAM_USER"
  kafka_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter \
    --add-config "SCRAM-SHA-512=[password=$SCRAM_PASSWORD]" --entity-type users \
    --entity-name "$SCRAM_USER" >"$KAFKA_DIR/scram.log" 2>&1 \
    || { tail -n 20 "$KAFKA_DIR/scram.log" >&2; die "could not create the SCRAM user"; }
  wait_for 30 "SASL/SCRAM listener" scram_ready || die "SCRAM login still fails (see $KAFKA_DIR/kafka.log)"
}

kafka_up() {
  local started=""
  if pid_alive "$KAFKA_DIR/kafka.pid"; then log "Kafka already running (pid $(cat "$KAFKA_DIR/kafka.pid"))"
  else
    for port in "$KAFKA_PORT" "$CONTROLLER_PORT" "$SCRAM_PORT"; do
      port_open "$port" && die "127.0.0.1:$port is taken by a process this stack did not start"
    done
    kafka_resolve
    kafka_configure
    log "starting Kafka on 127.0.0.1:$KAFKA_PORT (SASL/SCRAM on :$SCRAM_PORT)"
    kafka_spawn "$KAFKA_DIR" "$KAFKA_HEAP"
    started=1
  fi
  # After an unclean stop the broker recovers every partition's log before it answers; with
  # thousands of leftover partitions that took 100 s here, hence the generous default.
  wait_for "$KAFKA_START_TIMEOUT" "Kafka (metadata round trip)" kafka_ready \
    || { tail -n 30 "$KAFKA_DIR/kafka.log" >&2
         die "Kafka did not answer within $KAFKA_START_TIMEOUT s (KAFKA_START_TIMEOUT; 'make stack-clean' drops old topics)"; }
  if [ -n "$started" ]; then scram_ensure; fi
}

kafka_down() { stop_pids "Kafka=$KAFKA_DIR/kafka.pid"; }

# ---------------------------------------------------------------- Kafka (three-node cluster)
cluster_load() { # ports and cluster id: fixed when the cluster is formatted, read back afterwards
  if [ -f "$CLUSTER_DIR/cluster.env" ]; then
    # shellcheck source=/dev/null
    . "$CLUSTER_DIR/cluster.env"
  fi
}

node_check() {
  case "${1:-}" in 1|2|3) ;; *) die "node must be 1, 2 or 3 (got '${1:-}')" ;; esac
}
node_dir() { echo "$CLUSTER_DIR/node-$1"; }
node_port() { echo $((CLUSTER_PORT + $1 - 1)); }
node_controller_port() { echo $((CLUSTER_CONTROLLER_PORT + $1 - 1)); }

cluster_bootstrap() {
  local n out=""
  for n in $(seq 1 "$CLUSTER_SIZE"); do out="$out${out:+,}127.0.0.1:$(node_port "$n")"; done
  echo "$out"
}

cluster_running() { # at least one node has a live process
  local n
  for n in $(seq 1 "$CLUSTER_SIZE"); do pid_alive "$(node_dir "$n")/kafka.pid" && return 0; done
  return 1
}

node_configure() {
  local n=$1 dir voters="" i
  dir=$(node_dir "$n")
  for i in $(seq 1 "$CLUSTER_SIZE"); do voters="$voters${voters:+,}$i@127.0.0.1:$(node_controller_port "$i")"; done
  mkdir -p "$dir/data"
  sed -e "s#@NODE_ID@#$n#" -e "s#@VOTERS@#$voters#" -e "s#@DATA_DIR@#$dir/data#" \
      -e "s#@BROKER_PORT@#$(node_port "$n")#g" -e "s#@CONTROLLER_PORT@#$(node_controller_port "$n")#g" \
      "$ROOT/stack/kafka/cluster.properties.in" >"$dir/server.properties"
}

cluster_prepare() { # resolve jars, pick the cluster id and ports once, format every node once
  kafka_resolve
  mkdir -p "$CLUSTER_DIR"
  if [ ! -f "$CLUSTER_DIR/cluster.env" ]; then
    printf 'CLUSTER_ID=%s\nCLUSTER_PORT=%s\nCLUSTER_CONTROLLER_PORT=%s\n' \
      "$(random_uuid)" "$CLUSTER_PORT" "$CLUSTER_CONTROLLER_PORT" >"$CLUSTER_DIR/cluster.env.tmp"
    mv "$CLUSTER_DIR/cluster.env.tmp" "$CLUSTER_DIR/cluster.env"
  fi
  cluster_load
  local n pids=()
  for n in $(seq 1 "$CLUSTER_SIZE"); do
    node_configure "$n"
    [ -f "$(node_dir "$n")/data/meta.properties" ] && continue
    kafka_format "$(node_dir "$n")" "$CLUSTER_ID" & pids+=($!)
  done
  for n in ${pids[@]+"${pids[@]}"}; do wait "$n" || die "formatting a cluster node failed"; done
}

node_spawn() { # start node N's JVM unless it runs (the caller waits for it)
  local n=$1 dir port
  dir=$(node_dir "$n")
  if pid_alive "$dir/kafka.pid"; then log "kafka-$n already running (pid $(cat "$dir/kafka.pid"))"; return 0; fi
  for port in "$(node_port "$n")" "$(node_controller_port "$n")"; do
    port_open "$port" && die "127.0.0.1:$port is taken by a process this stack did not start"
  done
  node_configure "$n"
  log "starting kafka-$n on 127.0.0.1:$(node_port "$n")"
  kafka_spawn "$dir" "$CLUSTER_HEAP"
}

cluster_brokers() { "$PY" "$ROOT/stack/ready.py" brokers "$(cluster_bootstrap)" "${1:-1}"; }

node_registered() { # node N is a live (unfenced) broker in the cluster's metadata
  "$PY" "$ROOT/stack/ready.py" brokers "127.0.0.1:$(node_port "$1")" | grep -qx "$1"
}

cluster_fail() {
  local n
  for n in $(seq 1 "$CLUSTER_SIZE"); do log "kafka-$n:"; tail -n 10 "$(node_dir "$n")/kafka.log" >&2 || true; done
  die "$1"
}

cluster_up() {
  cluster_prepare
  local n
  for n in $(seq 1 "$CLUSTER_SIZE"); do node_spawn "$n"; done
  wait_for "$KAFKA_START_TIMEOUT" "Kafka cluster ($CLUSTER_SIZE brokers, $(cluster_bootstrap))" \
    cluster_brokers "$CLUSTER_SIZE" || cluster_fail "the cluster did not come up within $KAFKA_START_TIMEOUT s"
}

cluster_down() {
  local n stops=()
  for n in $(seq 1 "$CLUSTER_SIZE"); do stops+=("kafka-$n=$(node_dir "$n")/kafka.pid"); done
  # All at once: a node stopping alone waits for the quorum the others would have left.
  stop_pids "${stops[@]}"
}

kafka_node() { # kafka_node start|stop|kill N
  local action=${1:-} n=${2:-} dir pid
  node_check "$n"
  [ -f "$CLUSTER_DIR/cluster.env" ] || die "no cluster in $CLUSTER_DIR (make stack-up KAFKA_NODES=3)"
  dir=$(node_dir "$n")
  case "$action" in
    start)
      node_spawn "$n"
      wait_for "$KAFKA_START_TIMEOUT" "kafka-$n (registered with the cluster)" node_registered "$n" \
        || { tail -n 30 "$dir/kafka.log" >&2; die "kafka-$n did not rejoin within $KAFKA_START_TIMEOUT s"; } ;;
    stop) stop_pids "kafka-$n=$dir/kafka.pid" ;;
    kill)
      if pid_alive "$dir/kafka.pid"; then
        pid=$(cat "$dir/kafka.pid"); kill -KILL "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        log "kafka-$n killed (SIGKILL, pid $pid)"
      else log "kafka-$n not running"; fi
      rm -f "$dir/kafka.pid" ;;
    *) die "usage: stack.sh kafka-node start|stop|kill 1|2|3" ;;
  esac
}

# ---------------------------------------------------------------- Nutshell mint
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
  mkdir -p "$MINT_DIR"
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

mint_down() { stop_pids "mint=$MINT_DIR/mint.pid"; }

# ---------------------------------------------------------------- CDK mint
cdk_install() { # cargo-installs cdk-mintd once per machine into $CACHE (a build takes a while)
  [ -x "$CDK_BIN" ] && "$CDK_BIN" --version 2>/dev/null | grep -q " $CDK_VERSION\$" && return 0
  command -v cargo >/dev/null || die "cargo (Rust) is needed to build cdk-mintd"
  command -v protoc >/dev/null || die "protoc is needed to build cdk-mintd (make sysdeps: protobuf-compiler)"
  mkdir -p "$CACHE"
  log "building cdk-mintd $CDK_VERSION with cargo into $CACHE (once per machine; log: $CACHE/cdk-build.log)"
  # One build at a time per cache; a second caller waits for the first and finds the binary.
  ( flock 9
    if ! { [ -x "$CDK_BIN" ] && "$CDK_BIN" --version 2>/dev/null | grep -q " $CDK_VERSION\$"; }; then
      cargo install cdk-mintd --version "$CDK_VERSION" --locked --no-default-features \
        --features fakewallet,sqlite --root "$CACHE/cdk" --target-dir "$CACHE/cdk-target" \
        >"$CACHE/cdk-build.log" 2>&1 || { tail -n 30 "$CACHE/cdk-build.log" >&2; exit 1; }
    fi
  ) 9>"$CACHE/cdk-build.lock" || die "could not build cdk-mintd"
}

cdk_config() { # the mint's TOML; cdk-mintd imports it into its database (config init / apply)
  cat <<EOF
# Written by stack/stack.sh on every start; applied to the mint's database when it changes.
[info]
url = "http://127.0.0.1:$CDK_PORT/"
listen_host = "127.0.0.1"
listen_port = $CDK_PORT
mnemonic = "env:CDK_MINTD_MNEMONIC"
input_fee_ppk = 0

[info.logging]
output = "stderr"
console_level = "info"

[info.http_cache]
backend = "memory"
ttl = 60
tti = 60

[mint_info]
name = "proofrecon local CDK mint"
description = "Test-only FakeWallet mint of the proofrecon local stack"

[database]
engine = "sqlite"

[payment_backend]
backend = "fakewallet"
unit = "sat"

# Fees 0 and invoices paid at once, as on the Nutshell mint.
[fake_wallet]
supported_units = ["sat"]
fee_percent = 0.0
reserve_fee_min = 0
custom_payment_methods = []
min_delay_time = 0
max_delay_time = 0
EOF
}

cdk_mintd() { CDK_MINTD_MNEMONIC="$CDK_MNEMONIC" "$CDK_BIN" --work-dir "$CDK_DIR/data" "$@"; }

cdk_ready() { "$PY" "$ROOT/stack/ready.py" mint "http://127.0.0.1:$CDK_PORT"; }

cdk_up() {
  mkdir -p "$CDK_DIR/data"
  if pid_alive "$CDK_DIR/cdk.pid"; then log "CDK mint already running (pid $(cat "$CDK_DIR/cdk.pid"))"
  else
    port_open "$CDK_PORT" && die "127.0.0.1:$CDK_PORT is taken by a process this stack did not start"
    cdk_install
    cdk_config >"$CDK_DIR/config.toml"
    if [ ! -f "$CDK_DIR/config.applied.toml" ]; then
      log "initialising the CDK mint's database"
      cdk_mintd config init --new-mint --file "$CDK_DIR/config.toml" >"$CDK_DIR/config.log" 2>&1 \
        || { cat "$CDK_DIR/config.log" >&2; die "cdk-mintd config init failed"; }
    elif ! cmp -s "$CDK_DIR/config.toml" "$CDK_DIR/config.applied.toml"; then
      log "applying the changed CDK mint configuration"
      cdk_mintd config apply --file "$CDK_DIR/config.toml" >"$CDK_DIR/config.log" 2>&1 \
        || { cat "$CDK_DIR/config.log" >&2; die "cdk-mintd config apply failed"; }
    fi
    cp "$CDK_DIR/config.toml" "$CDK_DIR/config.applied.toml"
    log "starting the CDK mint on 127.0.0.1:$CDK_PORT"
    CDK_MINTD_MNEMONIC="$CDK_MNEMONIC" setsid nohup "$CDK_BIN" --work-dir "$CDK_DIR/data" \
      >"$CDK_DIR/cdk.log" 2>&1 </dev/null &
    echo $! >"$CDK_DIR/cdk.pid"
  fi
  wait_for 60 "CDK mint (GET /v1/info)" cdk_ready \
    || { tail -n 30 "$CDK_DIR/cdk.log" >&2; die "the CDK mint did not answer within 60 s"; }
}

cdk_down() { stop_pids "cdk-mint=$CDK_DIR/cdk.pid"; }

# ---------------------------------------------------------------- status and queries
status() {
  local rc=0 n dir live="" scram
  if pid_alive "$KAFKA_DIR/kafka.pid" && kafka_ready 2>/dev/null; then
    scram=$(kafka_listener SASL_PLAINTEXT)
    echo "kafka     up    $(kafka_bootstrap)  pid $(cat "$KAFKA_DIR/kafka.pid")  rss $(rss "$KAFKA_DIR/kafka.pid")  SASL/SCRAM ${scram:-none (restart Kafka to add it)}"
  else echo "kafka     down"; rc=1; fi
  if [ -f "$CLUSTER_DIR/cluster.env" ]; then
    cluster_running && live=$(cluster_brokers 1 2>/dev/null || true)
    for n in $(seq 1 "$CLUSTER_SIZE"); do
      dir=$(node_dir "$n")
      if pid_alive "$dir/kafka.pid" && grep -qx "$n" <<<"$live"; then
        echo "kafka-$n   up    127.0.0.1:$(node_port "$n") pid $(cat "$dir/kafka.pid")  rss $(rss "$dir/kafka.pid")"
      elif pid_alive "$dir/kafka.pid"; then
        echo "kafka-$n   starting/not registered  127.0.0.1:$(node_port "$n") pid $(cat "$dir/kafka.pid")"; rc=1
      else
        echo "kafka-$n   down  127.0.0.1:$(node_port "$n")"
        # A stopped node of a running cluster is a failure; a cluster fully down is not.
        cluster_running && rc=1
      fi
    done
  fi
  if pid_alive "$MINT_DIR/mint.pid" && mint_ready 2>/dev/null; then
    echo "mint      up    http://127.0.0.1:$MINT_PORT  pid $(cat "$MINT_DIR/mint.pid")  rss $(rss "$MINT_DIR/mint.pid")  (Nutshell)"
  else echo "mint      down  (Nutshell)"; rc=1; fi
  if [ -d "$CDK_DIR" ]; then
    if pid_alive "$CDK_DIR/cdk.pid" && cdk_ready 2>/dev/null; then
      echo "cdk-mint  up    http://127.0.0.1:$CDK_PORT  pid $(cat "$CDK_DIR/cdk.pid")  rss $(rss "$CDK_DIR/cdk.pid")  (cdk-mintd $CDK_VERSION)"
    else
      echo "cdk-mint  down  (cdk-mintd $CDK_VERSION)"
      if [ -f "$CDK_DIR/cdk.pid" ]; then rc=1; fi
    fi
  fi
  echo "clickhouse embedded (chDB, in-process)"
  return $rc
}

mints_wanted() { # mints_wanted NAME: is NAME in MINTS?
  case ",${MINTS// /}," in *",$1,"*) return 0 ;; *) return 1 ;; esac
}

up_all() {
  [ -x "$PY" ] || die "no project virtualenv at $PY (run: make venv)"
  local m
  for m in ${MINTS//,/ }; do
    case "$m" in nutshell|cdk) ;; *) die "unknown mint '$m' in MINTS (nutshell, cdk)" ;; esac
  done
  case "$KAFKA_NODES" in 1|3) ;; *) die "KAFKA_NODES must be 1 or 3 (got '$KAFKA_NODES')" ;; esac
  kafka_up
  if [ "$KAFKA_NODES" = 3 ]; then cluster_up; fi
  if mints_wanted nutshell; then mint_up; fi
  if mints_wanted cdk; then cdk_up; fi
}

down_all() { # everything this state dir runs, stopped in parallel
  local n stops=("mint=$MINT_DIR/mint.pid")
  if [ -f "$CDK_DIR/cdk.pid" ]; then stops+=("cdk-mint=$CDK_DIR/cdk.pid"); fi
  if [ -d "$CLUSTER_DIR" ]; then
    for n in $(seq 1 "$CLUSTER_SIZE"); do stops+=("kafka-$n=$(node_dir "$n")/kafka.pid"); done
  fi
  stop_pids "${stops[@]}" "Kafka=$KAFKA_DIR/kafka.pid"
}

cmd=${1:-status}; what=${2:-all}
mkdir -p "$KAFKA_DIR" "$MINT_DIR"
cluster_load
case "$cmd:$what" in
  up:all) up_all ;;
  up:kafka) kafka_up ;;
  up:cluster) cluster_up ;;
  up:mint|up:nutshell) mint_up ;;
  up:cdk) cdk_up ;;
  down:all) down_all ;;
  down:kafka) kafka_down ;;
  down:cluster) cluster_down ;;
  down:mint|down:nutshell) mint_down ;;
  down:cdk) cdk_down ;;
  status:*) status ;;
  kafka-node:*) kafka_node "$what" "${3:-}" ;;
  bootstrap:cluster|bootstrap:all)
    cluster_running || die "the cluster is not running (make stack-up KAFKA_NODES=3)"
    cluster_bootstrap ;;
  bootstrap:kafka)
    pid_alive "$KAFKA_DIR/kafka.pid" || die "Kafka is not running (make stack-up)"
    kafka_bootstrap ;;
  scram:*)
    pid_alive "$KAFKA_DIR/kafka.pid" || die "Kafka is not running (make stack-up)"
    [ -n "$(kafka_listener SASL_PLAINTEXT)" ] \
      || die "the running broker predates the SCRAM listener: restart it (make stack-down stack-up)"
    echo "$(kafka_listener SASL_PLAINTEXT) $SCRAM_USER $SCRAM_PASSWORD" ;;
  url:nutshell|url:mint)
    pid_alive "$MINT_DIR/mint.pid" || die "the Nutshell mint is not running"
    echo "http://127.0.0.1:$MINT_PORT" ;;
  url:cdk)
    pid_alive "$CDK_DIR/cdk.pid" || die "the CDK mint is not running (make stack-up MINTS=nutshell,cdk)"
    echo "http://127.0.0.1:$CDK_PORT" ;;
  # The default data dir's table stores are a copy of this broker's changelogs: without the
  # topics a worker would refuse them (ConsistencyError), so they go too. Analytics (chDB) stay.
  clean:*) down_all
           rm -rf "$KAFKA_DIR/data" "$MINT_DIR/data" "$CLUSTER_DIR" "$CDK_DIR"
           if [ "$STATE" = "$ROOT/.stack" ]; then rm -rf "$ROOT/.data/faust"; fi
           log "data removed" ;;
  *) die "usage: stack.sh up|down|status|clean [all|kafka|cluster|mint|cdk] | kafka-node start|stop|kill N | bootstrap [cluster|kafka] | scram | url nutshell|cdk" ;;
esac
