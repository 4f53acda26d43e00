#!/usr/bin/env bash
# Crash-consistency acceptance check, with the real binaries only:
#
#   `pki init`, issue three agencies and an operator, start `trucd` on a free
#   port, register the agencies, `send` a file to two of them, kill the hub
#   with SIGKILL right after the send returns, restart it, and have both
#   recipients' `inbox` produce the exact bytes.
#
# Also: the third agency gets nothing; acks survive a second SIGKILL (a
# second `inbox` receives nothing); re-sending the same --id after a restart
# is answered as a duplicate with the original hub document and delivers
# nothing new.
#
#   tests/e2e/sigkill.sh                           # from the repo root
#   TRUC_BIN_DIR=target/release tests/e2e/sigkill.sh
#   TRUC_E2E_KEEP=1 tests/e2e/sigkill.sh           # keep the temp dir
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init sigkill
RUN=0 # hub runs, for log file names

# Run a command; on failure the check fails with its stderr.
run_or_fail() {
  local what="$1"
  shift
  if ! "$@" >"$T/out" 2>"$T/err"; then
    fail "$what: \`$*\` exited non-zero: $(tr '\n' ' ' <"$T/err")"
  fi
}

PKI="$T/pki"
DATA="$T/data"
OP_ID="$PKI/operators/ops"
SENDER=000.00.00.G22
RCPT1=000.00.00.H26
RCPT2=G09.01
declare -A NAMES=(
  [$SENDER]="Văn phòng Chính phủ"
  [$RCPT1]="Ủy ban nhân dân Thành phố Hà Nội"
  [$RCPT2]="Sở Tài chính"
)
agency_id() { echo "$PKI/agencies/$1"; }

# Start trucd on a fresh free port over $DATA and poll until an operator
# call succeeds (at most 20 s).
start_hub() {
  RUN=$((RUN + 1))
  HUB_LOG="$T/trucd.$RUN.log" HUB_LOG_TITLE="trucd log, run $RUN" # what fail shows
  HUB="127.0.0.1:$(free_port)"
  "$TRUCD" --identity "$PKI/hub" --data-dir "$DATA" --listen "$HUB" \
    >"$HUB_LOG" 2>&1 &
  HUB_PID=$!
  wait_hub_ready "$OP_ID" "hub run $RUN: trucd" "hub run $RUN:"
  pass "hub run $RUN ready on $HUB (pid $HUB_PID)"
}
# SIGKILL the hub and reap it; the status must say it died of SIGKILL.
kill_hub() {
  local pid="$HUB_PID" status=0
  kill -KILL "$pid"
  { wait "$pid"; } 2>/dev/null || status=$? # no "Killed" job notice
  HUB_PID=""
  [[ $status -eq 137 ]] || fail "hub run $RUN: expected exit status 137 after SIGKILL, got $status"
  pass "hub run $RUN killed with SIGKILL (status 137)"
}
# Receive everything waiting for agency $1 into dir $2; the JSON lines go
# to $2.jsonl. Sets N to the number of documents received.
inbox() {
  local code="$1" out="$2"
  run_or_fail "inbox of $code" "$TRUC" inbox --jsonl --out "$out" \
    --hub "$HUB" --identity "$(agency_id "$code")"
  cp "$T/out" "$out.jsonl"
  # Documents carry a "header"; status notices (01 from each recipient) a "status".
  N=$(grep -c '"header"' "$out.jsonl" || true)
  S=$(grep -c '"status":"01",' "$out.jsonl" || true)
}

# 1. PKI with the real CLI.
run_or_fail "pki init" "$TRUC" pki init --dir "$PKI"
[[ -f "$PKI/ca.pem" && -d "$PKI/hub" ]] || fail "pki init: no $PKI/ca.pem or $PKI/hub/"
for code in "$SENDER" "$RCPT1" "$RCPT2"; do
  run_or_fail "pki issue $code" "$TRUC" pki issue --dir "$PKI" --agency "$code" --name "${NAMES[$code]}"
  [[ -f "$(agency_id "$code")/cert.pem" ]] || fail "pki issue $code: no $(agency_id "$code")/cert.pem"
done
run_or_fail "pki issue operator" "$TRUC" pki issue --dir "$PKI" --operator ops --name "Operator"
[[ -f "$OP_ID/cert.pem" ]] || fail "pki issue operator: no $OP_ID/cert.pem"
pass "pki init, three agencies and an operator issued"

# 2. Hub, agencies.
start_hub
for code in "$SENDER" "$RCPT1" "$RCPT2"; do
  run_or_fail "register $code" "$TRUC" ops agencies add "$code" --name "${NAMES[$code]}" \
    --hub "$HUB" --identity "$OP_ID"
done
run_or_fail "agencies list" "$TRUC" ops agencies list --json --hub "$HUB" --identity "$OP_ID"
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/out" || true)
[[ "$n" == 3 ]] || fail "register: agencies list shows $n agencies, expected 3"
pass "three agencies registered"

# 3. Send 1 MiB of random bytes to two agencies, SIGKILL the hub at once.
PAYLOAD="$T/report-1MiB.bin"
head -c 1048576 /dev/urandom >"$PAYLOAD"
SUBJECT="Kiểm tra SIGKILL"
DOC_ID="$SENDER,$(date -u +%Y/%m/%d),$RANDOM$RANDOM/SIGKILL"
if ! "$TRUC" send --json --id "$DOC_ID" --to "$RCPT1,$RCPT2" --subject "$SUBJECT" \
  --hub "$HUB" --identity "$(agency_id "$SENDER")" "$PAYLOAD" >"$T/send1.json" 2>"$T/err"; then
  fail "send: exited non-zero: $(tr '\n' ' ' <"$T/err")"
fi
kill_hub # right after the send returned: nothing else ran in between
got=$(json_field "$T/send1.json" document_id)
[[ "$got" == "$DOC_ID" ]] || fail "send: document_id is '$got', expected '$DOC_ID' ($(cat "$T/send1.json"))"
[[ "$(json_field "$T/send1.json" duplicate)" == false ]] || fail "send: first send marked duplicate: $(cat "$T/send1.json")"
HUB_DOC=$(json_field "$T/send1.json" hub_document_id)
[[ -n "$HUB_DOC" ]] || fail "send: no hub_document_id in $(cat "$T/send1.json")"
pass "send accepted $DOC_ID as hub document $HUB_DOC"

# 4. Restart on the same data dir; both recipients get the exact bytes.
start_hub
for code in "$RCPT1" "$RCPT2"; do
  out="$T/inbox-$code"
  inbox "$code" "$out"
  [[ "$N" == 1 ]] || fail "inbox $code after restart: received $N documents, expected 1"
  file="$out/$HUB_DOC-$(basename "$PAYLOAD")"
  [[ -f "$file" ]] || fail "inbox $code: $file not written (have: $(ls "$out" | tr '\n' ' '))"
  cmp -s "$PAYLOAD" "$file" || fail "inbox $code: $file differs from the sent payload ($(cmp "$PAYLOAD" "$file" 2>&1 || true))"
  hdr="$out/$HUB_DOC.header.json"
  [[ -f "$hdr" ]] || fail "inbox $code: $hdr not written"
  [[ "$(json_field "$hdr" document_id)" == "$DOC_ID" ]] || fail "inbox $code: $hdr has document_id '$(json_field "$hdr" document_id)'"
  [[ "$(json_field "$hdr" from)" == "$SENDER" ]] || fail "inbox $code: $hdr has from '$(json_field "$hdr" from)'"
  pass "inbox $code after SIGKILL+restart: exact 1 MiB payload and header of $DOC_ID"
done
inbox "$SENDER" "$T/inbox-$SENDER"
[[ "$N" == 0 ]] || fail "inbox $SENDER (not a recipient): received $N documents, expected 0"
pass "inbox $SENDER (not a recipient) receives no document"
[[ "$S" == 2 ]] || fail "inbox $SENDER: received $S status 01 notices, expected one from each recipient"
pass "inbox $SENDER receives status 01 (arrived) from both recipients"
# track counts the delivery that was acknowledged: 1 attempt each, not 0.
run_or_fail "track" "$TRUC" track --json --hub "$HUB" --identity "$(agency_id "$SENDER")" "$DOC_ID"
cp "$T/out" "$T/track.json"
tries=$(python3 -c 'import json,sys; print(" ".join("%s:%s" % (r["state"], r["attempts"]) for r in json.load(open(sys.argv[1]))["recipients"]))' "$T/track.json")
[[ "$tries" == "delivered:1 delivered:1" ]] || fail "track: recipients $tries, expected delivered:1 for both ($(cat "$T/track.json"))"
pass "track: both copies delivered at the first attempt (ATTEMPTS 1)"

# 5. Acks are durable: SIGKILL right after the inboxes acked, restart, a
# second inbox receives nothing.
kill_hub
start_hub
for code in "$RCPT1" "$RCPT2"; do
  inbox "$code" "$T/inbox2-$code"
  [[ "$N" == 0 ]] || fail "second inbox $code after SIGKILL+restart: received $N documents, expected 0 (ack lost)"
  pass "second inbox $code receives nothing (acks were durable)"
done

# 6. Idempotency survives the crashes: the same --id is a duplicate of the
# original, and nothing new is delivered. (A failure here is reported and
# the remaining checks still run.)
if "$TRUC" send --json --id "$DOC_ID" --to "$RCPT1,$RCPT2" --subject "$SUBJECT" \
  --hub "$HUB" --identity "$(agency_id "$SENDER")" "$PAYLOAD" >"$T/send2.json" 2>"$T/err"; then
  if [[ "$(json_field "$T/send2.json" duplicate)" != true ]]; then
    soft_fail "re-send after restart: not a duplicate: $(cat "$T/send2.json")"
  elif [[ "$(json_field "$T/send2.json" hub_document_id)" != "$HUB_DOC" ]]; then
    soft_fail "re-send after restart: hub_document_id '$(json_field "$T/send2.json" hub_document_id)', expected the original '$HUB_DOC'"
  elif [[ "$(json_field "$T/send2.json" document_id)" != "$DOC_ID" ]]; then
    soft_fail "re-send after restart: wrong document_id: $(cat "$T/send2.json")"
  else
    pass "re-send of $DOC_ID after restart answered as a duplicate of hub document $HUB_DOC"
  fi
else
  soft_fail "re-send of the same --id after restart: \`truc send\` exited non-zero instead of printing a duplicate acceptance: $(tr '\n' ' ' <"$T/err")"
fi
for code in "$RCPT1" "$RCPT2"; do
  inbox "$code" "$T/inbox3-$code"
  [[ "$N" == 0 ]] || fail "inbox $code after the re-send: received $N documents, expected 0"
done
pass "the re-send delivered nothing new"
