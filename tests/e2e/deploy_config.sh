#!/usr/bin/env bash
# deploy/trucd.toml is a working configuration: it sets every key of
# truc_hub::Config and names every TRUC_* variable; with only its paths and
# listen addresses (gRPC and admin) rewritten to a temp dir, `trucd --config`
# starts, serves, answers /healthz, /readyz and /metrics on the admin address
# (with per-agency gauges equal to `truc ops queues --json`) and stops cleanly
# on SIGTERM. Also: an unknown key and an out-of-range value from the
# environment exit 64 naming the key.
#
#   tests/e2e/deploy_config.sh                          # from the repo root
#   TRUC_BIN_DIR=target/release tests/e2e/deploy_config.sh
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init deploy-config
HUB_LOG_LINES=20
# Only the file under test may configure trucd and truc.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^TRUC_' || true)

EXAMPLE="$ROOT/deploy/trucd.toml"
CONFIG_RS="$ROOT/crates/hub/src/config.rs"

# 1. The example covers the whole schema: every key of ENV_KEYS is set in
# the file and every TRUC_* variable is named in its comments.
[[ -f "$EXAMPLE" ]] || fail "no $EXAMPLE"
if ! python3 - "$EXAMPLE" "$CONFIG_RS" >"$T/coverage" 2>&1 <<'PY'; then
import re, sys, tomllib
text = open(sys.argv[1], encoding="utf-8").read()
cfg = tomllib.loads(text)
src = open(sys.argv[2], encoding="utf-8").read()
block = src[src.index("pub const ENV_KEYS"):]
block = block[:block.index("];")]
pairs = re.findall(r'\(\s*"(TRUC_[A-Z_]+)",\s*"([a-z_.]+)",?\s*\)', block)
if len(pairs) < 13:
    sys.exit(f"could not read ENV_KEYS from {sys.argv[2]} (found {len(pairs)})")
# Old names still read, named in the comments but not set beside their
# new key (setting both to different values is refused).
aliases = {"deadlines.utc_offset_minutes"}
problems = []
for var, key in pairs:
    v = cfg
    for part in key.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    if v is None and key not in aliases:
        problems.append(f"key {key} is not set")
    if not re.search(r"\b" + var + r"\b", text):
        problems.append(f"{var} (for {key}) is not mentioned")
if problems:
    sys.exit("; ".join(problems))
print(len(pairs))
PY
  fail "deploy/trucd.toml does not cover ENV_KEYS of config.rs: $(tr '\n' ' ' <"$T/coverage")"
fi
pass "deploy/trucd.toml sets all $(cat "$T/coverage") keys of ENV_KEYS and names their TRUC_* variables"

# 2. A fresh PKI where the rewritten paths point.
PKI="$T/pki"
"$TRUC" pki init --dir "$PKI" >/dev/null 2>"$T/err" || fail "pki init: $(cat "$T/err")"
"$TRUC" pki issue --dir "$PKI" --operator ops >/dev/null 2>"$T/err" || fail "pki issue --operator: $(cat "$T/err")"
[[ -f "$PKI/crl.pem" && -f "$PKI/ca.pem" && -d "$PKI/hub" ]] || fail "pki init did not write crl.pem, ca.pem and hub/"
pass "fresh PKI in $PKI"

# 3. Rewrite only the paths and the listen address.
PORT="$(free_port)"
HUB="127.0.0.1:$PORT"
ADMIN_PORT="$(free_port)"
while [[ "$ADMIN_PORT" == "$PORT" ]]; do ADMIN_PORT="$(free_port)"; done
ADMIN="127.0.0.1:$ADMIN_PORT"
CONSOLE_PORT="$(free_port)"
while [[ "$CONSOLE_PORT" == "$PORT" || "$CONSOLE_PORT" == "$ADMIN_PORT" ]]; do CONSOLE_PORT="$(free_port)"; done
CONSOLE="127.0.0.1:$CONSOLE_PORT"
CONF="$T/trucd.toml"
cp "$EXAMPLE" "$CONF"
# The first `listen =` is the gRPC one; the ones after [admin] and [console]
# are the admin and console ones.
sed -i \
  -e "s|/etc/truc/pki|$PKI|g" \
  -e "s|/var/lib/truc|$T/data|g" \
  -e "s|/etc/truc/holidays.txt|$ROOT/deploy/holidays-vn-2027.txt|g" \
  -e "0,/^listen = /s|^listen = .*|listen = \"$HUB\"|" \
  -e "/^\[admin\]/,/^listen = /s|^listen = .*|listen = \"$ADMIN\"|" \
  -e "/^\[console\]/,/^listen = /s|^listen = .*|listen = \"$CONSOLE\"|" \
  "$CONF"
grep -q "^listen = \"$ADMIN\"" "$CONF" || fail "deploy/trucd.toml has no [admin] listen to rewrite"
# Every changed line must be the listen line or one whose only change is a path.
if ! python3 - "$EXAMPLE" "$CONF" "$PKI" "$T/data" "$ROOT/deploy/holidays-vn-2027.txt" >"$T/diff" 2>&1 <<'PY'; then
import sys
a = open(sys.argv[1], encoding="utf-8").read().splitlines()
b = open(sys.argv[2], encoding="utf-8").read().splitlines()
pki, data, holidays = sys.argv[3], sys.argv[4], sys.argv[5]
if len(a) != len(b):
    sys.exit(f"line count changed: {len(a)} -> {len(b)}")
changed = 0
for i, (x, y) in enumerate(zip(a, b), 1):
    if x == y:
        continue
    changed += 1
    ok = x.startswith("listen = ") and y.startswith("listen = ")
    ok = ok or x.replace("/etc/truc/pki", pki).replace("/var/lib/truc", data).replace(
        "/etc/truc/holidays.txt", holidays) == y
    if not ok:
        sys.exit(f"line {i} changed beyond paths/listen: {x!r} -> {y!r}")
if changed == 0:
    sys.exit("nothing was rewritten")
print(changed)
PY
  fail "rewrite of the example: $(tr '\n' ' ' <"$T/diff")"
fi
grep -Eq '^[^#]*(/etc/truc|/var/lib/truc)' "$CONF" &&
  fail "rewritten config still sets a path under /etc/truc or /var/lib/truc"
pass "rewrote $(cat "$T/diff") lines (paths and listen only) in a copy of deploy/trucd.toml"

# 4. trucd --config alone starts and serves.
"$TRUCD" --config "$CONF" >"$T/trucd.log" 2>&1 &
HUB_PID=$!
wait_hub_ready "$PKI/operators/ops" "trucd --config"
pass "trucd --config $CONF ready on $HUB"
[[ -d "$T/data" ]] || fail "data_dir $T/data was not created"
# The file's log.format = "json" took effect: every log line is JSON.
if ! python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
assert lines, "no log lines"
for l in lines: json.loads(l)
' "$T/trucd.log" 2>"$T/err"; then
  fail "log.format = \"json\" not applied: log is not JSON lines ($(tail -n 1 "$T/err"))"
fi
pass "data_dir created and log.format = \"json\" applied"

# 4b. The admin listener of the file answers, and /metrics agrees with
# `truc ops queues --json` after a real send.
http_get() { # URL -> "STATUS\nBODY" on stdout
  python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode())
PY
}
out="$(http_get "http://$ADMIN/healthz")" || fail "GET /healthz on $ADMIN failed"
[[ "$(head -n 1 <<<"$out")" == 200 ]] || fail "/healthz: $out"
out="$(http_get "http://$ADMIN/readyz")" || fail "GET /readyz on $ADMIN failed"
[[ "$(head -n 1 <<<"$out")" == 200 ]] || fail "/readyz: $out"
pass "admin listener of the file on $ADMIN: /healthz and /readyz answer 200"

OP_ID="$PKI/operators/ops"
for code in 000.00.00.G22 000.00.00.H26; do
  "$TRUC" pki issue --dir "$PKI" --agency "$code" --name "Agency $code" >/dev/null 2>"$T/err" ||
    fail "pki issue $code: $(cat "$T/err")"
  "$TRUC" ops agencies add "$code" --name "Agency $code" --hub "$HUB" --identity "$OP_ID" >/dev/null 2>"$T/err" ||
    fail "ops agencies add $code: $(cat "$T/err")"
done
printf 'Công văn thử nghiệm\n' >"$T/cv.txt"
"$TRUC" send --to 000.00.00.H26 --number 1 --notation METRICS --priority khan --subject "metrics" "$T/cv.txt" \
  --hub "$HUB" --identity "$PKI/agencies/000.00.00.G22" >/dev/null 2>"$T/err" || fail "send: $(cat "$T/err")"
"$TRUC" ops queues --json --hub "$HUB" --identity "$OP_ID" >"$T/queues.json" 2>"$T/err" ||
  fail "truc ops queues --json: $(cat "$T/err")"
http_get "http://$ADMIN/metrics" >"$T/metrics" || fail "GET /metrics on $ADMIN failed"
if ! python3 - "$T/queues.json" "$T/metrics" >"$T/agree" 2>&1 <<'PY'; then
import json, re, sys
queues = json.load(open(sys.argv[1], encoding="utf-8"))
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
if lines[0] != "200":
    sys.exit(f"/metrics answered {lines[0]}")
samples = {}
for l in lines[1:]:
    m = re.match(r'^([a-z_]+)(\{[^}]*\})? (\S+)$', l)
    if m:
        samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
fields = {"queued": "truc_queue_depth", "in_flight": "truc_queue_in_flight", "dead_letters": "truc_dead_letters",
          "bytes": "truc_queue_bytes", "overdue_urgent": "truc_overdue_urgent",
          "connected_streams": "truc_receive_streams"}
problems = []
if len(queues) != 2:
    problems.append(f"truc ops queues lists {len(queues)} agencies, expected 2")
for q in queues:
    for field, metric in fields.items():
        got = samples.get((metric, '{agency="%s"}' % q["agency"]))
        if got != float(q[field]):
            problems.append(f"{metric}{{agency={q['agency']}}} = {got}, truc ops queues {field} = {q[field]}")
    age = samples.get(("truc_queue_oldest_age_seconds", '{agency="%s"}' % q["agency"]))
    if age is None or abs(age - q["oldest_age_ms"] / 1000) > 10:
        problems.append(f"oldest age of {q['agency']}: /metrics {age} s, truc ops queues {q['oldest_age_ms']} ms")
h26 = [q for q in queues if q["agency"] == "000.00.00.H26"]
if not h26 or h26[0]["queued"] != 1:
    problems.append(f"H26 should have 1 queued: {h26}")
for want in [("truc_sends_total", '{outcome="accepted"}', 1.0), ("truc_ready", "", 1.0)]:
    if samples.get(want[:2]) != want[2]:
        problems.append(f"{want[0]}{want[1]} = {samples.get(want[:2])}, expected {want[2]}")
if not any(k[0] == "truc_certificate_expiry_timestamp_seconds" and 'kind="hub"' in k[1] for k in samples):
    problems.append("no hub certificate expiry")
if problems:
    sys.exit("; ".join(problems))
print(len(queues))
PY
  fail "/metrics disagrees with truc ops queues --json: $(tr '\n' ' ' <"$T/agree")"
fi
pass "/metrics per-agency gauges equal truc ops queues --json ($(cat "$T/agree") agencies) after a send"
# `truc ops storage` and the disk gauges of the same scrape agree.
# Free space moves while other jobs write to the same disk (CI runs tests
# side by side): /metrics is read again right after, and `truc ops storage`
# must fall between the two readings (with the same 256 MiB margin).
"$TRUC" ops storage --json --hub "$HUB" --identity "$OP_ID" >"$T/storage.json" 2>"$T/err" ||
  fail "truc ops storage --json: $(cat "$T/err")"
http_get "http://$ADMIN/metrics" >"$T/metrics.after" || fail "GET /metrics on $ADMIN failed"
if ! python3 - "$T/storage.json" "$T/metrics" "$T/metrics.after" >"$T/agree" 2>&1 <<'PY'; then
import json, re, sys
st = json.load(open(sys.argv[1], encoding="utf-8"))
def plain(path):
    out = {}
    for l in open(path, encoding="utf-8").read().splitlines()[1:]:
        m = re.match(r'^([a-z_]+) (\S+)$', l)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out
samples, after = plain(sys.argv[2]), plain(sys.argv[3])
problems = []
for field, metric in [("disk_reserve_bytes", "truc_disk_reserve_bytes"), ("payloads", "truc_payloads"),
                      ("payload_bytes", "truc_payload_bytes"), ("uploads_incomplete", "truc_uploads_incomplete"),
                      ("upload_part_bytes", "truc_upload_part_bytes")]:
    if samples.get(metric) != float(st[field]):
        problems.append(f"{metric} = {samples.get(metric)}, truc ops storage {field} = {st[field]}")
if not st["store_bytes"] > 0 or not samples.get("truc_store_bytes", 0) > 0:
    problems.append(f"store bytes: {st['store_bytes']}, /metrics {samples.get('truc_store_bytes')}")
free = [samples.get("truc_disk_free_bytes"), after.get("truc_disk_free_bytes")]
if None in free or st["disk_free_bytes"] is None or not (
    min(free) - (256 << 20) <= st["disk_free_bytes"] <= max(free) + (256 << 20)
):
    problems.append(f"free: /metrics {free[0]} then {free[1]}, truc ops storage {st['disk_free_bytes']} between them")
if problems:
    sys.exit("; ".join(problems))
PY
  fail "/metrics disagrees with truc ops storage --json: $(tr '\n' ' ' <"$T/agree")"
fi
"$TRUC" ops storage --hub "$HUB" --identity "$OP_ID" >"$T/storage.txt" 2>"$T/err" || fail "truc ops storage: $(cat "$T/err")"
grep -q "^data disk .* free" "$T/storage.txt" || fail "truc ops storage prints no free space: $(cat "$T/storage.txt")"
pass "truc ops storage agrees with the disk gauges of /metrics"
if command -v promtool >/dev/null; then
  tail -n +2 "$T/metrics" | promtool check metrics >"$T/lint" 2>&1 ||
    fail "promtool check metrics on /metrics: $(tr '\n' ' ' <"$T/lint")"
  pass "promtool check metrics accepts /metrics"
fi

# 5. SIGTERM: exit 0 within 15 s.
kill -TERM "$HUB_PID"
deadline=$((SECONDS + 15))
while kill -0 "$HUB_PID" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "trucd still running 15 s after SIGTERM"
  sleep 0.1
done
status=0
wait "$HUB_PID" || status=$?
HUB_PID=""
[[ $status -eq 0 ]] || fail "trucd exited with $status after SIGTERM, expected 0"
pass "SIGTERM: trucd exited 0 within 15 s"
mv "$T/trucd.log" "$T/trucd.done.log" # not shown on later failures

# 6. Refused configurations exit 64 and name the key. The rest is valid, so
# a trucd that ignored the problem would start (and be stopped by timeout).
printf '[delivery]\nlease_secs = 3\n' >"$T/unknown.toml"
status=0
timeout 15 "$TRUCD" --config "$T/unknown.toml" --identity "$PKI/hub" --data-dir "$T/data2" \
  --listen "127.0.0.1:$(free_port)" >"$T/out" 2>"$T/err" || status=$?
[[ $status -eq 64 ]] || fail "unknown key lease_secs: exit status $status, expected 64 ($(tr '\n' ' ' <"$T/err"))"
grep -q 'lease_secs' "$T/err" || fail "unknown key: the error does not name lease_secs: $(tr '\n' ' ' <"$T/err")"
pass "unknown key [delivery] lease_secs: exit 64, $(head -n 1 "$T/err")"

status=0
TRUC_DELIVERY_MAX_ATTEMPTS=0 timeout 15 "$TRUCD" --config "$CONF" >"$T/out" 2>"$T/err" || status=$?
[[ $status -eq 64 ]] || fail "TRUC_DELIVERY_MAX_ATTEMPTS=0: exit status $status, expected 64 ($(tr '\n' ' ' <"$T/err"))"
grep -q 'delivery\.max_attempts' "$T/err" ||
  fail "TRUC_DELIVERY_MAX_ATTEMPTS=0: the error does not name delivery.max_attempts: $(tr '\n' ' ' <"$T/err")"
pass "TRUC_DELIVERY_MAX_ATTEMPTS=0: exit 64, $(head -n 1 "$T/err")"
