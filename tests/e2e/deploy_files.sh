#!/usr/bin/env bash
# The files in deploy/ are checked with the tools that consume them, where
# those tools are installed (on Debian: apt-get install systemd prometheus
# python3-yaml). A missing tool FAILS the check, unless TRUC_SKIP_DEPLOY_TOOLS=1
# is set: then it is reported as SKIP (and cargo test records and shows it;
# tests/skip.rs), never as a pass.
#
#   - deploy/systemd/trucd.service passes `systemd-analyze verify` and scores
#     "OK" (exposure <= 3.0) in `systemd-analyze security --offline`;
#   - deploy/prometheus/prometheus.yml passes `promtool check config`,
#     truc-rules.yml `promtool check rules`, and truc-rules.test.yml
#     `promtool test rules` (each alert fires when it should);
#   - every truc_* metric the rules and the Grafana dashboard query is one
#     that crates/hub/src/metrics/ exports; the dashboard is valid JSON;
#   - deploy/kubernetes/truc.yaml parses, runs one replica with a persistent
#     volume and probes /healthz and /readyz on the admin port, and its
#     ConfigMap's trucd.toml is accepted by trucd itself;
#   - deploy/Containerfile builds what exists and ships deploy/trucd.toml.
# deploy/trucd.toml itself is exercised by deploy_config.sh.
#
#   tests/e2e/deploy_files.sh                          # from the repo root
#   TRUC_BIN_DIR=target/release tests/e2e/deploy_files.sh
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_setup deploy-files # trucd is optional here: no e2e_need_bins
e2e_start
D="$ROOT/deploy"
SKIPPED=0
# Every check here is a soft_fail: one run reports on all the files.

summary() {
  echo "deploy-files: $PASSED passed ($SKIPPED skipped), $FAILED failed"
}
# A tool that is not here: a failure, unless TRUC_SKIP_DEPLOY_TOOLS=1.
skip() {
  if [[ "${TRUC_SKIP_DEPLOY_TOOLS:-}" == 1 ]]; then
    SKIPPED=$((SKIPPED + 1))
    echo "SKIP $*"
  else
    soft_fail "$* (set TRUC_SKIP_DEPLOY_TOOLS=1 to skip it knowingly)"
  fi
}
have() { command -v "$1" >/dev/null 2>&1; }

# 1. systemd unit.
UNIT="$D/systemd/trucd.service"
if have systemd-analyze; then
  # verify checks that ExecStart's binary exists: point it at the one built.
  exe=/bin/true
  [[ -x "$TRUCD" ]] && exe="$TRUCD"
  mkdir -p "$T/unit"
  sed "s|/usr/local/bin/trucd|$exe|" "$UNIT" >"$T/unit/trucd.service"
  if (cd "$T/unit" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify ./trucd.service) >"$T/verify" 2>&1 &&
    ! grep -v -e 'Failed to connect to bus' -e 'No such file or directory' "$T/verify" | grep -q .; then
    pass "systemd-analyze verify deploy/systemd/trucd.service (ExecStart=$exe)"
  else
    soft_fail "systemd-analyze verify deploy/systemd/trucd.service: $(tr '\n' ' ' <"$T/verify")"
  fi
  if (cd "$T/unit" && systemd-analyze security --offline=yes ./trucd.service) >"$T/security" 2>&1; then
    score="$(sed -n 's/.*Overall exposure level for trucd.service: \([0-9.]*\).*/\1/p' "$T/security")"
    if [[ -n "$score" ]] && python3 -c "import sys; sys.exit(0 if float('$score') <= 3.0 else 1)"; then
      pass "systemd-analyze security: exposure $score (OK)"
    else
      soft_fail "systemd-analyze security: exposure '${score:-?}' above 3.0: $(tail -n 3 "$T/security" | tr '\n' ' ')"
    fi
  else
    skip "systemd-analyze security --offline is not supported here: $(tail -n 1 "$T/security")"
  fi
else
  skip "systemd-analyze not installed (apt-get install systemd): unit not verified"
fi

# 2. Prometheus configuration, rules, and rule unit tests.
if have promtool; then
  if (cd "$D/prometheus" && promtool check config prometheus.yml) >"$T/out" 2>&1; then
    pass "promtool check config deploy/prometheus/prometheus.yml"
  else
    soft_fail "promtool check config: $(tr '\n' ' ' <"$T/out")"
  fi
  if promtool check rules "$D/prometheus/truc-rules.yml" >"$T/out" 2>&1; then
    pass "promtool check rules deploy/prometheus/truc-rules.yml: $(grep -o '[0-9]* rules found' "$T/out" | head -n 1)"
  else
    soft_fail "promtool check rules: $(tr '\n' ' ' <"$T/out")"
  fi
  if (cd "$D/prometheus" && promtool test rules truc-rules.test.yml) >"$T/out" 2>&1; then
    pass "promtool test rules deploy/prometheus/truc-rules.test.yml (growing queue, overdue urgent, expiring certificate, dead letters)"
  else
    soft_fail "promtool test rules: $(tr '\n' ' ' <"$T/out")"
  fi
else
  skip "promtool not installed (apt-get install prometheus): rules and scrape config not checked"
fi

# 3. Metric names used by the rules and the dashboard exist; dashboard JSON.
if python3 - "$ROOT/crates/hub/src/metrics" "$D/prometheus/truc-rules.yml" \
  "$D/grafana/truc-dashboard.json" >"$T/out" 2>&1 <<'PY'; then
import json, pathlib, re, sys
src = "".join(p.read_text(encoding="utf-8") for p in sorted(pathlib.Path(sys.argv[1]).glob("*.rs")))
exported = set(re.findall(r'"(truc_[a-z_]+)"', src))
histograms = set(re.findall(r'\.render\(\s*&mut out,\s*"(truc_[a-z_]+)"', src))
names = set(exported)
for h in histograms:
    names |= {h + "_bucket", h + "_sum", h + "_count"}
if len(exported) < 15:
    sys.exit(f"found only {len(exported)} metric names in {sys.argv[1]}")
problems = []
rules = open(sys.argv[2], encoding="utf-8").read()
dash_text = open(sys.argv[3], encoding="utf-8").read()
dash = json.loads(dash_text)
for what, text in (("truc-rules.yml", rules), ("truc-dashboard.json", dash_text)):
    for used in sorted(set(re.findall(r"\b(truc_[a-z_]+)", text))):
        if used not in names:
            problems.append(f"{what} uses {used}, which the hub does not export")
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    problems.append("dashboard panel ids are not unique")
for p in dash["panels"]:
    if not p.get("targets") or not all(t.get("expr") for t in p["targets"]):
        problems.append(f"panel {p.get('title')} has no query")
if dash.get("uid") != "truc-hub":
    problems.append("dashboard uid is not truc-hub")
if problems:
    sys.exit("; ".join(problems))
print(f"{len(dash['panels'])} panels")
PY
  pass "rules and dashboard query only exported metrics; dashboard JSON valid ($(cat "$T/out"))"
else
  soft_fail "metric names or dashboard: $(tr '\n' ' ' <"$T/out")"
fi

# 4. Kubernetes manifest.
if python3 -c 'import yaml' 2>/dev/null; then
  if python3 - "$D/kubernetes/truc.yaml" "$D/trucd.toml" "$T/k8s.toml" >"$T/out" 2>&1 <<'PY'; then
import sys, tomllib, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")) if d]
kinds = {}
for d in docs:
    kinds.setdefault(d["kind"], []).append(d)
problems = []
for k in ("Namespace", "ConfigMap", "Service", "StatefulSet"):
    if k not in kinds:
        problems.append(f"no {k}")
if problems:
    sys.exit("; ".join(problems))
sts = kinds["StatefulSet"][0]
spec = sts["spec"]
pod = spec["template"]["spec"]
c = pod["containers"][0]
if spec.get("replicas") != 1:
    problems.append("the StatefulSet must run exactly one replica (one sled store)")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
if "data" not in claims or mounts.get("data") != "/var/lib/truc":
    problems.append("no persistent volume claim mounted at /var/lib/truc")
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/readyz")):
    g = c.get(probe, {}).get("httpGet", {})
    if g.get("path") != path or g.get("port") != "admin":
        problems.append(f"{probe} should GET {path} on the admin port")
sc = c.get("securityContext", {})
if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
        and sc.get("capabilities", {}).get("drop") == ["ALL"] and pod["securityContext"].get("runAsNonRoot")):
    problems.append("container is not locked down (non-root, read-only root, no privilege escalation, no capabilities)")
cm = kinds["ConfigMap"][0]["data"]["trucd.toml"]
cfg = tomllib.loads(cm)
example = tomllib.loads(open(sys.argv[2], encoding="utf-8").read())
def keys(t, prefix=""):
    out = set()
    for k, v in t.items():
        out |= keys(v, prefix + k + ".") if isinstance(v, dict) else {prefix + k}
    return out
unknown = keys(cfg) - keys(example)
if unknown:
    problems.append(f"ConfigMap sets keys the example does not know: {sorted(unknown)}")
for key, port in (("listen", ports.get("grpc")), ("admin.listen", ports.get("admin"))):
    v = cfg
    for part in key.split("."):
        v = v.get(part, {}) if isinstance(v, dict) else {}
    if not isinstance(v, str) or not v.endswith(f":{port}") or not v.startswith("0.0.0.0:"):
        problems.append(f"ConfigMap {key} = {v!r} does not match container port {port} on 0.0.0.0")
if cfg.get("data_dir") != mounts.get("data"):
    problems.append("ConfigMap data_dir is not the persistent volume")
svc_ports = {p["name"] for s in kinds["Service"] for p in s["spec"]["ports"]}
if not {"grpc", "admin"} <= svc_ports:
    problems.append("Services must expose the grpc and admin ports")
if problems:
    sys.exit("; ".join(problems))
open(sys.argv[3], "w", encoding="utf-8").write(cm)
print(len(docs))
PY
    pass "deploy/kubernetes/truc.yaml: $(cat "$T/out") objects, one replica, PVC at /var/lib/truc, probes on the admin port"
    # trucd itself accepts the ConfigMap's file: it gets past the
    # configuration and stops at the (absent) identity, exit 64.
    if [[ -x "$TRUCD" ]]; then
      status=0
      env -u TRUC_CONFIG TRUC_LISTEN=127.0.0.1:0 TRUC_ADMIN_LISTEN=127.0.0.1:0 \
        timeout 15 "$TRUCD" --config "$T/k8s.toml" >"$T/out" 2>"$T/err" || status=$?
      if [[ $status -eq 64 ]] && ! grep -q 'invalid configuration' "$T/err" && grep -q '/etc/truc/pki' "$T/err"; then
        pass "trucd accepts the ConfigMap's trucd.toml (then stops at the missing PKI: $(grep -m 1 '^trucd:' "$T/err"))"
      else
        soft_fail "trucd --config <ConfigMap trucd.toml>: exit $status: $(tr '\n' ' ' <"$T/err")"
      fi
    else
      skip "no $TRUCD (cargo build -p truc): ConfigMap's trucd.toml not loaded by trucd"
    fi
  else
    soft_fail "deploy/kubernetes/truc.yaml: $(tr '\n' ' ' <"$T/out")"
  fi
else
  skip "python3-yaml not installed (apt-get install python3-yaml): Kubernetes manifest not checked"
fi

# 5. Containerfile: static checks (building it needs a container engine and
# the network; TRUC_BUILD_IMAGE=1 builds it with docker or podman).
CF="$D/Containerfile"
problems=""
grep -q -- '--locked -p truc --bin trucd' "$CF" || problems+="does not build trucd with --locked; "
grep -q 'deploy/trucd.toml' "$CF" || problems+="does not ship deploy/trucd.toml; "
grep -q '^USER 65532' "$CF" || problems+="does not run as a non-root user; "
grep -q '^EXPOSE 7443 7444' "$CF" || problems+="does not expose 7443 and 7444; "
grep -qx 'target/' "$ROOT/.dockerignore" 2>/dev/null || problems+=".dockerignore does not leave out target/; "
if [[ -z "$problems" ]]; then
  pass "deploy/Containerfile: builds trucd --locked, ships deploy/trucd.toml, non-root, ports 7443/7444"
else
  soft_fail "deploy/Containerfile: $problems"
fi
if [[ "${TRUC_BUILD_IMAGE:-}" == 1 ]]; then
  engine=""
  have docker && docker info >/dev/null 2>&1 && engine=docker
  [[ -z "$engine" ]] && have podman && engine=podman
  if [[ -n "$engine" ]]; then
    if "$engine" build -f "$CF" -t truc:deploy-check "$ROOT" >"$T/build" 2>&1; then
      pass "$engine build -f deploy/Containerfile"
    else
      soft_fail "$engine build -f deploy/Containerfile: $(tail -n 5 "$T/build" | tr '\n' ' ')"
    fi
  else
    skip "TRUC_BUILD_IMAGE=1 but no running docker or podman: image not built"
  fi
else
  # Opt-in (it needs a container engine and the network), not a skip.
  echo "note: container image not built (TRUC_BUILD_IMAGE=1 builds it)"
fi
