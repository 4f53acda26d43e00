#!/usr/bin/env bash
# A hub facing many idle TLS connections and a consumer that never acks:
# its memory stays bounded and other agencies are still served.
#
#   tests/e2e/idle_connections.sh [CONNECTIONS]     (default 2000)
#
# Prints trucd's resident memory before and after, and the bound it checks
# (256 MiB over idle for 2,000 connections plus a stuck consumer).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init idle-connections
N="${1:-2000}"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
PORT=$(free_port)
HUB="127.0.0.1:$PORT"
PKI="$T/pki"
"$TRUC" pki init --dir "$PKI" >/dev/null
"$TRUC" pki issue --dir "$PKI" --operator ops >/dev/null
for code in 000.00.00.G22 000.00.00.H26 000.00.00.H29; do
  "$TRUC" pki issue --dir "$PKI" --agency "$code" >/dev/null
done
# All N connections come from 127.0.0.1: raise the per-address cap (and the
# total) above them; the door itself is tested in tests/tests/door.rs.
TRUC_LIMITS_MAX_CONNECTIONS_PER_ADDRESS=$((N + 100)) TRUC_LIMITS_MAX_CONNECTIONS=$((N + 100)) \
TRUC_DELIVERY_LEASE_MS=600000 "$TRUCD" --identity "$PKI/hub" --data-dir "$T/data" --listen "$HUB" >"$T/trucd.log" 2>&1 &
HUB_PID=$!
wait_hub_ready "$PKI/operators/ops" trucd
for code in 000.00.00.G22 000.00.00.H26 000.00.00.H29; do
  "$TRUC" ops agencies add "$code" --name "$code" --hub "$HUB" --identity "$PKI/operators/ops" >/dev/null
done
pass "hub ready on $HUB"
IDLE=$(rss_kib "$HUB_PID")

# A consumer that takes its full credit of deliveries and never
# acknowledges them.
head -c 4096 /dev/urandom >"$T/doc.bin"
SENDS=()
for i in $(seq 40); do
  "$TRUC" send --hub "$HUB" --identity "$PKI/agencies/000.00.00.G22" --to 000.00.00.H26 --number "$i" --notation IDLE "$T/doc.bin" >/dev/null 2>>"$T/send.err" &
  SENDS+=($!)
done
for p in "${SENDS[@]}"; do wait "$p" || fail "a send failed: $(tail -1 "$T/send.err")"; done
"$TRUC" inbox --follow --no-ack --out "$T/stuck-inbox" --max-in-flight 1024 --hub "$HUB" --identity "$PKI/agencies/000.00.00.H26" >"$T/stuck.log" 2>&1 &
BG_PIDS+=("$!") # the stuck consumer

# N idle mutual-TLS connections, handshaken and then silent.
python3 - "$HUB" "$PKI" "$N" "$T/held" <<'PY' &
import ssl, socket, sys, time, os
hub, pki, n, flag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host, port = hub.split(":")
ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
ctx.load_cert_chain(f"{pki}/agencies/000.00.00.H29/cert.pem", f"{pki}/agencies/000.00.00.H29/key.pem")
ctx.set_alpn_protocols(["h2"])
held = []
for i in range(n):
    s = socket.create_connection((host, int(port)))
    held.append(ctx.wrap_socket(s, server_hostname="localhost"))
open(flag, "w").write(str(len(held)))
time.sleep(600)
PY
BG_PIDS+=("$!") # the connections
for _ in $(seq 600); do [[ -f "$T/held" ]] && break; sleep 0.1; done
[[ -f "$T/held" ]] || fail "could not open $N connections"
pass "$(cat "$T/held") idle mTLS connections open"
# The stuck consumer gets all 40 (at most 20 s).
for _ in $(seq 200); do
  DELIVERED=$(grep -c "not acknowledged" "$T/stuck.log" || true)
  ((DELIVERED >= 40)) && break
  sleep 0.1
done
[[ "$DELIVERED" -ge 40 ]] || fail "the stuck consumer got $DELIVERED deliveries, expected all 40"
pass "stuck consumer holds $DELIVERED unacknowledged deliveries"

# Others are still served.
echo "still served" >"$T/small.txt"
"$TRUC" send --hub "$HUB" --identity "$PKI/agencies/000.00.00.G22" --to 000.00.00.H29 --number 41 --notation IDLE "$T/small.txt" >/dev/null \
  || fail "a send failed while the hub was loaded"
"$TRUC" inbox --hub "$HUB" --identity "$PKI/agencies/000.00.00.H29" --out "$T/in29" >/dev/null \
  || fail "another agency could not receive"
cmp -s "$T/small.txt" "$T/in29/"*"-small.txt" || fail "another agency got the wrong bytes"
pass "another agency sends and receives meanwhile"

LOADED=$(rss_kib "$HUB_PID")
PEAK=$(awk '/^VmHWM/ {print $2}' "/proc/$HUB_PID/status")
GROWTH=$(((PEAK - IDLE) / 1024))
echo "trucd RSS: idle $((IDLE / 1024)) MiB, loaded $((LOADED / 1024)) MiB, peak $((PEAK / 1024)) MiB (+$GROWTH MiB for $N connections and a stuck consumer)"
[[ "$GROWTH" -lt 256 ]] || fail "memory grew by $GROWTH MiB (bound 256 MiB)"
pass "memory bounded: +$GROWTH MiB (bound 256 MiB)"
