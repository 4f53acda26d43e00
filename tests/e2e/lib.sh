# shellcheck shell=bash
# Helpers shared by the end-to-end scripts (tests/e2e/*.sh, tests/interop/run.sh).
# Sourced, not executed:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   e2e_init NAME [DEFAULT_BIN_DIR]
#
# e2e_init is e2e_setup, e2e_need_bins, e2e_need_python and e2e_start in a
# row; a script that needs something else in between calls them itself.
# NAME prefixes the messages and the last line, `NAME: N passed, M failed`.
# On exit (the trap e2e_start installs): the processes in BG_PIDS and their
# children are SIGKILLed, the hub HUB_PID is stopped, the function e2e_cleanup_hook runs if
# the script defines one, $T is removed (kept with TRUC_E2E_KEEP=1), `summary`
# prints the last line (a script may redefine it), and the exit status is 1 if
# a check failed and the script's own status was 0.
# `fail` shows the last HUB_LOG_LINES (30) lines of HUB_LOG ($T/trucd.log)
# under "--- HUB_LOG_TITLE (tail) ---" (trucd log); a script may change them.

# e2e_setup NAME [DEFAULT_BIN_DIR]: cd to ROOT; BIN = $TRUC_BIN_DIR or DEFAULT_BIN_DIR (target/debug), absolute; TRUC, TRUCD.
e2e_setup() {
  E2E_NAME="$1"
  local default="${2:-target/debug}"
  E2E_BUILD="cargo build -p truc"
  [[ "$default" == target/release ]] && E2E_BUILD="cargo build --release -p truc"
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  cd "$ROOT"
  BIN="${TRUC_BIN_DIR:-$default}"
  case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
  TRUC="$BIN/truc"
  TRUCD="$BIN/trucd"
}

# Exit 2 unless each FILE (default: $TRUC and $TRUCD) is an executable.
e2e_need_bins() {
  local b
  (($#)) || set -- "$TRUC" "$TRUCD"
  for b in "$@"; do
    [[ -x "$b" ]] || { echo "$E2E_NAME: missing $b (run: $E2E_BUILD)" >&2; exit 2; }
  done
}

# Exit 2 unless python3 is on the PATH.
e2e_need_python() {
  command -v python3 >/dev/null || { echo "$E2E_NAME: python3 is required" >&2; exit 2; }
}

# e2e_start [PARENT [PREFIX]]: make T = PARENT/PREFIX.XXXXXX ($TMPDIR or /tmp, truc-NAME), reset the state, install the EXIT trap.
e2e_start() {
  T="$(mktemp -d -p "${1:-${TMPDIR:-/tmp}}" "${2:-truc-$E2E_NAME}.XXXXXX")"
  PASSED=0
  FAILED=0
  HUB_PID=""
  HUB=""
  BG_PIDS=()
  HUB_LOG="$T/trucd.log"
  HUB_LOG_LINES=30
  HUB_LOG_TITLE="trucd log"
  trap e2e_cleanup EXIT
}

# e2e_init NAME [DEFAULT_BIN_DIR]: all four above, in that order.
e2e_init() {
  e2e_setup "$@"
  e2e_need_bins
  e2e_need_python
  e2e_start
}

# The last line of stdout.
summary() {
  echo "$E2E_NAME: $PASSED passed, $FAILED failed"
}

# The EXIT trap (see the top of this file).
# SIGKILL process $1 and everything it started (a background job may be
# `timeout` or `/usr/bin/time` around the program that matters).
kill_tree() {
  local c
  if command -v pgrep >/dev/null; then
    for c in $(pgrep -P "$1"); do kill_tree "$c"; done
  fi
  kill -KILL "$1" 2>/dev/null || true
}

e2e_cleanup() {
  local rc=$?
  local p
  for p in "${BG_PIDS[@]}"; do
    kill_tree "$p"
    wait "$p" 2>/dev/null || true
  done
  if [[ -n "$HUB_PID" ]]; then
    kill "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
  fi
  if declare -F e2e_cleanup_hook >/dev/null; then e2e_cleanup_hook; fi
  if [[ -n "${TRUC_E2E_KEEP:-}" ]]; then
    echo "$E2E_NAME: kept $T" >&2
  else
    rm -rf "$T"
  fi
  summary
  if [[ $rc -eq 0 && $FAILED -gt 0 ]]; then rc=1; fi
  exit "$rc"
}

# A passed check.
pass() {
  PASSED=$((PASSED + 1))
  echo "ok   $*"
}
# A failed check: say which, show the tail of the hub's log, stop.
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $*" >&2
  if [[ -f "$HUB_LOG" ]]; then
    echo "--- $HUB_LOG_TITLE (tail) ---" >&2
    tail -n "$HUB_LOG_LINES" "$HUB_LOG" >&2
  fi
  exit 1
}
# A failed check after which the others can still run.
soft_fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $*" >&2
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_hub_ready OPERATOR_ID WHO [WHO_NOT_READY]: poll the hub HUB_PID on HUB for 20 s at most; fail naming WHO if it exits or does not answer.
wait_hub_ready() {
  local identity="$1" who="$2" who_not_ready="${3:-$2}"
  local deadline=$((SECONDS + 20))
  until "$TRUC" ops agencies list --hub "$HUB" --identity "$identity" >/dev/null 2>&1; do
    kill -0 "$HUB_PID" 2>/dev/null || fail "$who exited before it was ready"
    ((SECONDS < deadline)) || fail "$who_not_ready not ready on $HUB within 20 s"
    sleep 0.1
  done
}

# A JSON field of a one-object document (file $1, dotted key $2), or "".
json_field() {
  python3 - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else (json.dumps(v) if isinstance(v, bool) else v))
PY
}
