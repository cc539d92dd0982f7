#!/usr/bin/env bash
# Start or stop one Spark standalone daemon of the local cluster through Spark's own spark-daemon.sh
# (pyspark ships no start-master.sh). A start returns once the daemon is usable: the master leads, a
# worker has registered with it. Usage: spark.sh start-master|stop-master|start-worker N|stop-worker N
set -euo pipefail
# Close inherited descriptors (3 and up; 255 is bash's own): a daemon that kept one would hold the pipe
# Terraform's caller reads, and the caller would wait for it forever.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  if [ "$fd" -gt 2 ] && [ "$fd" -lt 255 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
done
action=$1
instance=${2:-1}
export SPARK_LOG_DIR="$BW_RUN_DIR/logs" SPARK_PID_DIR="$BW_RUN_DIR/pids" SPARK_IDENT_STRING=bluewhale
export SPARK_WORKER_DIR="$BW_RUN_DIR/work"
mkdir -p "$SPARK_LOG_DIR" "$SPARK_PID_DIR" "$SPARK_WORKER_DIR"
daemon="$SPARK_HOME/sbin/spark-daemon.sh"
master=org.apache.spark.deploy.master.Master
worker=org.apache.spark.deploy.worker.Worker
log_of() { echo "$SPARK_LOG_DIR/spark-bluewhale-$1-$2-$(hostname).out"; }

wait_for() {  # wait_for CLASS INSTANCE PATTERN: until the daemon's log shows PATTERN (fails if it died)
  local log pid deadline=$((SECONDS + ${BW_READY_TIMEOUT:-90}))
  log=$(log_of "$1" "$2")
  pid=$(cat "$SPARK_PID_DIR/spark-bluewhale-$1-$2.pid")
  until grep -q "$3" "$log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "spark.sh: ${1##*.} $2 exited before '$3'; its log $log ends:" >&2
      tail -20 "$log" >&2 || true
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "spark.sh: '$3' not seen in $log after ${BW_READY_TIMEOUT:-90}s" >&2
      tail -20 "$log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

stop() {  # stop CLASS INSTANCE: spark-daemon.sh only sends SIGTERM; return once the JVM is gone
  local pid deadline=$((SECONDS + ${BW_STOP_TIMEOUT:-30}))
  pid=$(cat "$SPARK_PID_DIR/spark-bluewhale-$1-$2.pid" 2>/dev/null) || return 0
  "$daemon" stop "$1" "$2"
  # a zombie (exited, not yet reaped) counts as gone
  while kill -0 "$pid" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; do
    if ((SECONDS > deadline)); then
      echo "spark.sh: ${1##*.} $2 (pid $pid) still running ${BW_STOP_TIMEOUT:-30}s after SIGTERM: killing it" >&2
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
}

case "$action" in
  start-master)
    rm -f "$(log_of $master 1)"
    "$daemon" start $master 1 --host "$BW_BIND_HOST" --port "$BW_MASTER_PORT" --webui-port "$BW_WEBUI_PORT"
    wait_for $master 1 "I have been elected leader"
    ;;
  start-worker)
    rm -f "$(log_of $worker "$instance")"
    "$daemon" start $worker "$instance" --host "$BW_BIND_HOST" --webui-port 0 --cores "$BW_CORES" \
      --memory "$BW_MEMORY" --work-dir "$SPARK_WORKER_DIR/$instance" "spark://$BW_BIND_HOST:$BW_MASTER_PORT"
    wait_for $worker "$instance" "Successfully registered with master"
    ;;
  stop-master) stop $master 1 ;;
  stop-worker) stop $worker "$instance" ;;
  *) echo "spark.sh: unknown action $action" >&2; exit 2 ;;
esac
