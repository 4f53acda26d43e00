#!/usr/bin/env bash
# The README's five-minute walk-through, as a script: the same commands in
# the same order, from a scratch directory outside the repository (as the
# README says to run it), against the real binaries. Each step must succeed,
# and the "things to try" must fail with the exit code and words the README
# promises. At the end the repository holds nothing the walk-through wrote.
#
#   tests/e2e/walkthrough.sh                        # from the repo root
#   TRUC_E2E_KEEP=1 tests/e2e/walkthrough.sh        # keep the scratch directory
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init walkthrough
BEFORE=$(git -C "$ROOT" status --porcelain --ignored 2>/dev/null | sort || true)
cd "$T"
export PATH="$BIN:$PATH"
unset TRUC_IDENTITY TRUC_CONTEXT
export TRUC_CONTEXTS="$T/contexts.json" NO_COLOR=1

# step NAME CMD...: run it; its stdout in $T/out, stderr in $T/err.
step() {
  local what="$1"
  shift
  if ! "$@" >"$T/out" 2>"$T/err"; then
    fail "$what: \`$*\` exited non-zero: $(tr '\n' ' ' <"$T/err" | cut -c1-400)"
  fi
  pass "$what"
}
# refused CODE NAME WORDS CMD...: it must exit CODE and say WORDS.
refused() {
  local code="$1" what="$2" words="$3" status=0
  shift 3
  "$@" >"$T/out" 2>"$T/err" || status=$?
  [[ $status -eq $code ]] || fail "$what: exit $status, expected $code: $(cat "$T/out" "$T/err" | tr '\n' ' ')"
  grep -q -- "$words" "$T/out" "$T/err" || fail "$what: does not say \"$words\": $(cat "$T/out" "$T/err" | tr '\n' ' ')"
  # A usage error is clap's: "For more information, try '--help'".
  grep -q "hint:\|try '--help'" "$T/err" || fail "$what: no hint line: $(cat "$T/err")"
  pass "$what: exit $code, \"$words\", with a hint"
}

# Terminal 1 — the CA and the hub.
step "pki init" truc pki init --dir pki
step "issue operator" truc pki issue --dir pki --operator ops
step "issue G22" truc pki issue --dir pki --agency 000.00.00.G22 --name "Văn phòng Chính phủ"
step "issue H26 (ed25519)" truc pki issue --dir pki --agency 000.00.00.H26 --name "UBND Thành phố Hà Nội" --key-type ed25519
step "issue H29" truc pki issue --dir pki --agency 000.00.00.H29 --name "UBND Thành phố Hồ Chí Minh"
export TRUC_HUB="127.0.0.1:$(free_port)"
HUB="$TRUC_HUB"
trucd --identity pki/hub --data-dir truc-data --crl pki/crl.pem --listen "$HUB" >"$HUB_LOG" 2>&1 &
HUB_PID=$!
wait_hub_ready pki/operators/ops trucd

# Terminal 2 — an operator registers the agencies.
export TRUC_IDENTITY=pki/operators/ops
step "agencies add G22" truc ops agencies add 000.00.00.G22 --name "Văn phòng Chính phủ"
step "agencies add H26" truc ops agencies add 000.00.00.H26 --name "UBND Thành phố Hà Nội"
step "agencies add H29" truc ops agencies add 000.00.00.H29 --name "UBND Thành phố Hồ Chí Minh"
step "agencies list" truc ops agencies list
grep -q "000.00.00.H29" "$T/out" || fail "agencies list: no H29: $(cat "$T/out")"

# The sender signs and sends.
echo "Công văn số 1" >cv.txt
step "send to H26, H29" env TRUC_IDENTITY=pki/agencies/000.00.00.G22 \
  truc send --to 000.00.00.H26,000.00.00.H29 --number 1 --notation VPCP-KSTT \
    --signer "Nguyễn Văn A" --position "Phó Chủ nhiệm" --priority khan --subject "Về việc thử nghiệm" cv.txt
grep -q "^accepted: \"000.00.00.G22,[0-9]\{4\}/[0-9][0-9]/[0-9][0-9],1/VPCP-KSTT\"" "$T/out" || fail "send: $(cat "$T/out")"
grep -q " at [0-9-]* [0-9:]* +07:00;" "$T/out" || fail "send: the acceptance time is not local (+07:00): $(cat "$T/out")"

# Each recipient receives, verifies and acknowledges.
step "inbox H26" env TRUC_IDENTITY=pki/agencies/000.00.00.H26 truc inbox --out inbox-h26
grep -q "1 document(s) and 0 status notice(s) received" "$T/out" || fail "inbox H26: $(cat "$T/out")"
env TRUC_IDENTITY=pki/agencies/000.00.00.H29 truc inbox --out inbox-h29 --follow >"$T/follow.out" 2>&1 &
FOLLOW=$!
BG_PIDS+=("$FOLLOW")
deadline=$((SECONDS + 20))
until grep -q "^received " "$T/follow.out"; do
  ((SECONDS < deadline)) || fail "inbox --follow H29: nothing within 20 s: $(cat "$T/follow.out")"
  sleep 0.1
done
kill -INT "$FOLLOW" 2>/dev/null || true
pass "inbox --follow H29 received the document"

# Business statuses and tracking.
ID=$(TRUC_IDENTITY=pki/agencies/000.00.00.G22 truc send --json --to 000.00.00.H26 --number 2 --notation VPCP-KSTT cv.txt |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["document_id"])')
[[ -n "$ID" ]] || fail "send --json: no document_id"
step "inbox H26 again" env TRUC_IDENTITY=pki/agencies/000.00.00.H26 truc inbox --out inbox-h26
step "status 03" env TRUC_IDENTITY=pki/agencies/000.00.00.H26 truc status "$ID" --code 03
step "status 06" env TRUC_IDENTITY=pki/agencies/000.00.00.H26 truc status "$ID" --code 06
step "track" env TRUC_IDENTITY=pki/agencies/000.00.00.G22 truc track "$ID"
grep -q "delivered .* 1 " "$T/out" || fail "track: the delivered copy does not show 1 attempt: $(cat "$T/out")"
step "inbox G22 (the status notices)" env TRUC_IDENTITY=pki/agencies/000.00.00.G22 truc inbox --out inbox-g22
grep -q "0 document(s) and [1-9][0-9]* status notice(s) received" "$T/out" || fail "inbox G22: $(cat "$T/out")"

# Certificates over time.
step "pki list" truc pki list --dir pki
step "pki renew H26" truc pki renew --dir pki --agency 000.00.00.H26

# Auditors verify without trusting the operator.
step "issue auditor" truc pki issue --dir pki --auditor a1
export TRUC_IDENTITY=pki/auditors/a1
step "audit receipts --agency" truc audit receipts --agency 000.00.00.H26
step "audit receipts --out" truc audit receipts --document "$ID" --out receipts.json
step "audit verify" truc audit verify receipts.json --hub-key pki/hub/receipts.pub
step "audit watch --once" truc audit watch --once --hub-key pki/hub/receipts.pub
step "audit heads" truc audit heads --hub-key pki/hub/receipts.pub

# Operators.
export TRUC_IDENTITY=pki/operators/ops
step "ops queues" truc ops queues
step "ops queue H29" truc ops queue 000.00.00.H29
step "ops dlq list H29" truc ops dlq list 000.00.00.H29
step "ops trace" truc ops trace "$ID"
step "ops storage" truc ops storage
step "ops status" truc ops status
step "suspend H29" truc ops agencies suspend 000.00.00.H29 --reason "bảo trì"
step "resume H29" truc ops agencies resume 000.00.00.H29
step "retire H29" truc ops agencies retire 000.00.00.H29 --successor 000.00.00.H26 --reason "sáp nhập"
step "revoke H29" truc pki revoke --dir pki --agency 000.00.00.H29

# Things to try next: each error says what went wrong and what to do.
refused 4 "send to an unregistered agency" "000.00.00.H99" \
  env TRUC_IDENTITY=pki/agencies/000.00.00.G22 truc send --to 000.00.00.H99 --number 3 --notation VPCP-KSTT cv.txt
refused 4 "send with the operator's identity" "not an agency identity" \
  truc send --to 000.00.00.H26 --number 3 --notation VPCP-KSTT cv.txt
refused 2 "send without a number" "--number" env TRUC_IDENTITY=pki/agencies/000.00.00.G22 truc send --to 000.00.00.H26 cv.txt
refused 3 "ops queue of an unregistered code" "is not registered" truc ops queue 000.00.00.H62
refused 2 "a mistyped code" "not an agency code" truc ops dlq list 000.00.00.h29
refused 5 "a hub that is not there" "is trucd running at" truc ops queues --hub "127.0.0.1:$(free_port)"

# Nothing in the repository.
AFTER=$(git -C "$ROOT" status --porcelain --ignored 2>/dev/null | sort || true)
NEW=$(comm -13 <(echo "$BEFORE") <(echo "$AFTER") | grep -v ' target/' || true)
[[ -z "$NEW" ]] || fail "the walk-through wrote into the repository: $NEW"
pass "the repository holds nothing the walk-through wrote (it ran in $T)"
