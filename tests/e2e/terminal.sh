#!/usr/bin/env bash
# `truc send` of a large file on a real terminal (tmux): the progress line,
# Ctrl-C midway ("interrupted: run the same command to resume", exit 130),
# the same command again ("resuming upload of … at … of …", then accepted),
# as a person at a terminal sees it. Needs tmux: without it the check fails,
# unless TRUC_SKIP_TERMINAL_TESTS=1 (then it is reported as SKIP).
#
#   tests/e2e/terminal.sh                       # from the repo root
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init terminal
SKIPPED=0
summary() { echo "terminal: $PASSED passed ($SKIPPED skipped), $FAILED failed"; }
if ! command -v tmux >/dev/null; then
  if [[ "${TRUC_SKIP_TERMINAL_TESTS:-}" == 1 ]]; then
    SKIPPED=1
    echo "SKIP tmux not installed (apt-get install tmux): the terminal test did not run"
    exit 0
  fi
  fail "tmux not installed (apt-get install tmux); set TRUC_SKIP_TERMINAL_TESTS=1 to skip this knowingly"
fi
SOCK="truc-e2e-$$"
e2e_cleanup_hook() { tmux -L "$SOCK" kill-server 2>/dev/null || true; }

PKI="$T/pki"
DATA="$T/data"
run() { "$@" >"$T/out" 2>"$T/err" || fail "\`$*\`: $(cat "$T/err")"; }
run "$TRUC" pki init --dir "$PKI"
run "$TRUC" pki issue --dir "$PKI" --operator ops
run "$TRUC" pki issue --dir "$PKI" --agency 000.00.00.G22
run "$TRUC" pki issue --dir "$PKI" --agency 000.00.00.H26
HUB="127.0.0.1:$(free_port)"
"$TRUCD" --identity "$PKI/hub" --data-dir "$DATA" --listen "$HUB" >"$HUB_LOG" 2>&1 &
HUB_PID=$!
wait_hub_ready "$PKI/operators/ops" trucd
for c in 000.00.00.G22 000.00.00.H26; do
  run "$TRUC" ops agencies add "$c" --name "$c" --hub "$HUB" --identity "$PKI/operators/ops"
done
# 512 MiB of zeros, sparse: quick to make, long enough to interrupt.
truncate -s 512M "$T/big.bin"
mkdir -p "$T/tmp"
CMD="cd '$T' && TMPDIR='$T/tmp' NO_COLOR=1 '$TRUC' send --to 000.00.00.H26 --number 1 --notation TERM --hub $HUB --identity '$PKI/agencies/000.00.00.G22' big.bin; echo EXIT=\$?; sleep 600"

pane() { tmux -L "$SOCK" capture-pane -p -J -t "$1" -S -50; }
wait_pane() { # wait_pane TARGET TEXT SECONDS
  local deadline=$((SECONDS + $3))
  until pane "$1" | grep -qF -- "$2"; do
    ((SECONDS < deadline)) || fail "no \"$2\" on the terminal within $3 s: $(pane "$1" | tr '\n' '|')"
    sleep 0.1
  done
}

tmux -L "$SOCK" new-session -d -s first -x 160 -y 40 "$CMD"
# Interrupt once the hub has some of it.
deadline=$((SECONDS + 60))
until [[ $(find "$DATA/uploads" -name '*.part' -size +50M 2>/dev/null | wc -l) -gt 0 ]]; do
  ((SECONDS < deadline)) || fail "the hub received nothing within 60 s: $(pane first | tr '\n' '|')"
  sleep 0.05
done
wait_pane first "sending big.bin" 10
pass "a progress line on the terminal: $(pane first | grep -o 'sending big.bin[^E]*' | head -n 1 | tr -s ' ')"
tmux -L "$SOCK" send-keys -t first C-c
wait_pane first "EXIT=" 30
pane first | grep -q "EXIT=130" || fail "Ctrl-C: not exit 130: $(pane first | tr '\n' '|')"
wait_pane first "truc: interrupted: run the same command to resume" 1
pass "Ctrl-C: \"interrupted: run the same command to resume\", exit 130"

tmux -L "$SOCK" new-session -d -s second -x 160 -y 40 "$CMD"
wait_pane second "truc: resuming upload of big.bin at " 30
pass "the same command: $(pane second | grep -o 'truc: resuming upload of big.bin at .*' | head -n 1)"
wait_pane second "EXIT=" 300
pane second | grep -q "EXIT=0" || fail "second send: $(pane second | tr '\n' '|')"
pane second | grep -q "^accepted: " || fail "second send: no acceptance: $(pane second | tr '\n' '|')"
pass "the second run finished the upload and the hub accepted the document"
