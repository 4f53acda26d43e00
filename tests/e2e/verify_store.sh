#!/usr/bin/env bash
# `truc ops verify-store` with the real binaries: a clean store exits 0; a
# byte flipped at rest in one stored document (with trucd stopped) makes it
# exit non-zero naming that document, which is quarantined: the recipient's
# inbox still receives the document sent after it, and the sender is told.
#
#   tests/e2e/verify_store.sh                      # from the repo root
#   TRUC_E2E_KEEP=1 tests/e2e/verify_store.sh      # keep the temp dir
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init verify-store

PKI="$T/pki"
DATA="$T/data"
OP_ID="$PKI/operators/ops"
SENDER=000.00.00.G22
RCPT=000.00.00.H26
RUN=0

run_or_fail() {
  local what="$1"
  shift
  "$@" >"$T/out" 2>"$T/err" || fail "$what: \`$*\` exited non-zero: $(tr '\n' ' ' <"$T/err")"
}

start_hub() {
  RUN=$((RUN + 1))
  HUB_LOG="$T/trucd.$RUN.log" HUB_LOG_TITLE="trucd log, run $RUN"
  HUB="127.0.0.1:$(free_port)"
  TRUC_LIMITS_SCRUB_INTERVAL_MS=0 "$TRUCD" --identity "$PKI/hub" --data-dir "$DATA" --listen "$HUB" \
    >"$HUB_LOG" 2>&1 &
  HUB_PID=$!
  wait_hub_ready "$OP_ID" "hub run $RUN: trucd"
}
stop_hub() {
  kill -TERM "$HUB_PID"
  wait "$HUB_PID" || fail "hub run $RUN: trucd exited non-zero after SIGTERM"
  HUB_PID=""
}
send() { # id file
  run_or_fail "send $1" "$TRUC" send --json --id "$1" --to "$RCPT" --subject "verify-store" \
    --hub "$HUB" --identity "$PKI/agencies/$SENDER" "$2"
  json_field "$T/out" hub_document_id
}

run_or_fail "pki init" "$TRUC" pki init --dir "$PKI"
for code in "$SENDER" "$RCPT"; do
  run_or_fail "pki issue $code" "$TRUC" pki issue --dir "$PKI" --agency "$code" --name "Agency $code"
done
run_or_fail "pki issue operator" "$TRUC" pki issue --dir "$PKI" --operator ops --name "Operator"
start_hub
for code in "$SENDER" "$RCPT"; do
  run_or_fail "register $code" "$TRUC" ops agencies add "$code" --name "Agency $code" --hub "$HUB" --identity "$OP_ID"
done

MARK="verify-store-marker-$RANDOM$RANDOM-$RANDOM$RANDOM"
printf '%s: the body this test damages\n' "$MARK" >"$T/damaged.txt"
printf 'the document queued behind it\n' >"$T/behind.txt"
DAMAGED=$(send "$SENDER,verify/1" "$T/damaged.txt")
BEHIND=$(send "$SENDER,verify/2" "$T/behind.txt")

# 1. A clean store.
run_or_fail "verify-store on a clean store" "$TRUC" ops verify-store --hub "$HUB" --identity "$OP_ID"
grep -q "the store is sound" "$T/out" || fail "verify-store on a clean store: no 'the store is sound' in: $(cat "$T/out")"
pass "verify-store on a clean store exits 0 and says it is sound"

# 2. One byte flipped where the first document's bytes are stored.
stop_hub
python3 - "$DATA" "$MARK" <<'PY' || fail "could not find the document's bytes under $DATA"
import os, sys
root, mark = sys.argv[1], sys.argv[2].encode()
hits = []
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        with open(p, "rb") as fh:
            data = fh.read()
        at = data.find(mark)
        if at >= 0:
            hits.append((p, at))
assert len(hits) == 1, hits
p, at = hits[0]
with open(p, "r+b") as fh:
    fh.seek(at + 5)
    b = fh.read(1)
    fh.seek(at + 5)
    fh.write(bytes([b[0] ^ 0x01]))
print(p, at)
PY
start_hub
if "$TRUC" ops verify-store --hub "$HUB" --identity "$OP_ID" >"$T/out" 2>"$T/err"; then
  fail "verify-store on a damaged store exited 0: $(cat "$T/out")"
fi
grep -q "document $DAMAGED " "$T/out" || fail "verify-store does not name document $DAMAGED: $(cat "$T/out")"
grep -q "quarantined" "$T/out" || fail "verify-store does not say it quarantined it: $(cat "$T/out")"
grep -q "damaged" "$T/err" || fail "verify-store's error does not say the store is damaged: $(cat "$T/err")"
pass "verify-store on a damaged store exits non-zero naming document $DAMAGED (quarantined)"

# 3. The queue moved on: the recipient gets the document behind it; the
# dead letter says corrupt; the sender got the hub's notice.
run_or_fail "inbox $RCPT" "$TRUC" inbox --jsonl --out "$T/inbox" --hub "$HUB" --identity "$PKI/agencies/$RCPT"
grep -q "\"hub_document_id\":$BEHIND" "$T/out" || fail "inbox $RCPT: document $BEHIND not received: $(cat "$T/out")"
! grep -q "\"hub_document_id\":$DAMAGED," "$T/out" || fail "inbox $RCPT: the damaged document $DAMAGED was delivered"
pass "the recipient receives the document queued behind the damaged one"
run_or_fail "dlq list" "$TRUC" ops dlq list "$RCPT" --json --hub "$HUB" --identity "$OP_ID"
grep -q "corrupt" "$T/out" || fail "dlq list $RCPT: no corrupt dead letter: $(cat "$T/out")"
pass "its copy is a dead letter with reason corrupt"

# 4. Nothing new is damaged now: exit 0, the document awaits its sender.
run_or_fail "verify-store again" "$TRUC" ops verify-store --json --hub "$HUB" --identity "$OP_ID"
[[ "$(json_field "$T/out" awaiting_resend)" == "[$DAMAGED]" ]] || fail "verify-store again: awaiting_resend is $(json_field "$T/out" awaiting_resend)"
pass "verify-store again exits 0 and lists document $DAMAGED as awaiting its sender"
