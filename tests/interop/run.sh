#!/usr/bin/env bash
# Interop acceptance check: a Python client built from proto/ alone, with the
# certificates `truc pki` writes, sends and receives through a real trucd.
#
#   tests/interop/run.sh                  # from the repo root
#   TRUC_INTEROP_VENV=~/.cache/truc-venv tests/interop/run.sh   # reuse a venv
#   TRUC_BIN_DIR=target/release tests/interop/run.sh            # other binaries
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
e2e_init interop
summary() { :; } # python_client.py prints the checks and the summary line

# 1. Python environment.
VENV="${TRUC_INTEROP_VENV:-$T/venv}"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
start=$SECONDS
"$PY" -m pip install -q --disable-pip-version-check \
  'grpcio>=1.60,<2' 'grpcio-tools>=1.60,<2' 'cryptography>=42,<47'
echo "pip install: $((SECONDS - start)) s"

# 2. Stubs from the public contract only.
mkdir -p "$T/stubs"
"$PY" -m grpc_tools.protoc -I proto --python_out="$T/stubs" --grpc_python_out="$T/stubs" \
  proto/truc/v1/*.proto

# 3. PKI with the real CLI.
PKI="$T/pki"
"$TRUC" pki init --dir "$PKI" >/dev/null
declare -A AGENCIES=(
  [000.00.00.G22]="Văn phòng Chính phủ"
  [000.00.00.H26]="Ủy ban nhân dân Thành phố Hà Nội"
  [G09.01]="Sở Tài chính"
)
for code in "${!AGENCIES[@]}"; do
  "$TRUC" pki issue --dir "$PKI" --agency "$code" --name "${AGENCIES[$code]}" >/dev/null
done
"$TRUC" pki issue --dir "$PKI" --agency G09.02 --name "Sở Tư pháp" --key-type ed25519 >/dev/null
"$TRUC" pki issue --dir "$PKI" --operator ops >/dev/null
AGENCIES[G09.02]="Sở Tư pháp"

# 4. Hub on a free port.
PORT="$(free_port)"
HUB="127.0.0.1:$PORT"
OPS=(--hub "$HUB" --identity "$PKI/operators/ops")
"$TRUCD" --identity "$PKI/hub" --data-dir "$T/data" --listen "$HUB" >"$T/trucd.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 1 80); do
  "$TRUC" ops agencies list "${OPS[@]}" >/dev/null 2>&1 && break
  kill -0 "$HUB_PID" 2>/dev/null || { echo "trucd exited:" >&2; cat "$T/trucd.log" >&2; exit 1; }
  sleep 0.25
done
"$TRUC" ops agencies list "${OPS[@]}" >/dev/null || { echo "trucd not ready on $HUB:" >&2; cat "$T/trucd.log" >&2; exit 1; }

for code in "${!AGENCIES[@]}"; do
  "$TRUC" ops agencies add "$code" --name "${AGENCIES[$code]}" "${OPS[@]}" >/dev/null
done

# 5. The client (grpc's C core logs every failed handshake at INFO otherwise).
export GRPC_VERBOSITY="${GRPC_VERBOSITY:-ERROR}"
if ! "$PY" "$ROOT/tests/interop/python_client.py" --hub "$HUB" --pki "$PKI" --stubs "$T/stubs" \
  --expect-dir "$T/expect"; then
  echo "--- trucd log (tail) ---" >&2
  tail -n 40 "$T/trucd.log" >&2
  exit 1
fi

# 6. The Rust side receives what Python sent last: three attachments, each
#    checked against its signed SHA-256 by `truc inbox` before it acks, and
#    written as a file of its own.
H26=(--hub "$HUB" --identity "$PKI/agencies/000.00.00.H26")
"$TRUC" inbox "${H26[@]}" --out "$T/inbox-h26" --json >"$T/inbox-h26.json"
n=0
for expected in "$T/expect"/*; do
  name="$(basename "$expected")"
  got=("$T/inbox-h26"/*-"$name")
  cmp -s "$expected" "${got[0]}" || { echo "interop: $name differs or is missing in $T/inbox-h26" >&2; exit 1; }
  n=$((n + 1))
done
[[ $n -eq 3 ]] || { echo "interop: $n attachments compared, expected 3" >&2; exit 1; }
left="$("$TRUC" inbox "${H26[@]}" --out "$T/inbox-h26" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["documents"])')"
[[ "$left" == 0 ]] || { echo "interop: $left documents still waiting for H26 after the ack" >&2; exit 1; }
echo "truc inbox (Rust) received the Python document: $n attachments, each verified, byte for byte, acknowledged"
