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
#   - deploy/Containerfile builds what exists and ships deploy/trucd.toml;
#   - the three-hub federation example (deploy/federation/): its template
#     unit verifies as trucd@h49 and scores OK; each hub's configuration is
#     accepted by `trucd check-config` with a PKI made by `truc pki init
#     --hub <id>` (it names the hub and lists its peers); its Kubernetes
#     manifest runs each hub as one replica with its data on a volume, each
#     ConfigMap holds the settings of deploy/federation/<id>.toml, and every
#     file a configuration names (identity, CAs, CRL, peers' and origins'
#     CAs) is mounted.
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
    pass "promtool test rules deploy/prometheus/truc-rules.test.yml (growing queue, overdue urgent, expiring certificate, dead letters, peer down, peer queue growing, peer waiting too long)"
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

# 6. The three-hub federation example (deploy/federation/): the template
# unit, the configurations (accepted by `trucd check-config` with PKIs made
# by `truc pki init --hub`), and the Kubernetes manifest.
FED="$D/federation"
if have systemd-analyze; then
  exe=/bin/true
  [[ -x "$TRUCD" ]] && exe="$TRUCD"
  mkdir -p "$T/fed-unit"
  sed "s|/usr/local/bin/trucd|$exe|" "$FED/systemd/trucd@.service" >"$T/fed-unit/trucd@.service"
  ln -sf trucd@.service "$T/fed-unit/trucd@h49.service"
  if (cd "$T/fed-unit" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify ./trucd@h49.service) >"$T/verify" 2>&1 &&
    ! grep -v -e 'Failed to connect to bus' -e 'No such file or directory' "$T/verify" | grep -q .; then
    pass "systemd-analyze verify deploy/federation/systemd/trucd@.service (as trucd@h49)"
  else
    soft_fail "systemd-analyze verify deploy/federation/systemd/trucd@.service: $(tr '\n' ' ' <"$T/verify")"
  fi
  if (cd "$T/fed-unit" && systemd-analyze security --offline=yes ./trucd@h49.service) >"$T/security" 2>&1; then
    score="$(sed -n 's/.*Overall exposure level for trucd@h49.service: \([0-9.]*\).*/\1/p' "$T/security")"
    if [[ -n "$score" ]] && python3 -c "import sys; sys.exit(0 if float('$score') <= 3.0 else 1)"; then
      pass "systemd-analyze security trucd@h49: exposure $score (OK)"
    else
      soft_fail "systemd-analyze security trucd@h49: exposure '${score:-?}' above 3.0"
    fi
  else
    skip "systemd-analyze security --offline is not supported here: $(tail -n 1 "$T/security")"
  fi
else
  skip "systemd-analyze not installed (apt-get install systemd): federation unit not verified"
fi

FED_HUBS="h49 national g12"
if [[ -x "$TRUC" && -x "$TRUCD" ]]; then
  problems=""
  for id in $FED_HUBS; do
    "$TRUC" pki init --dir "$T/fed/pki-$id" --hub "$id" --san "$id.truc.gov.vn" >/dev/null 2>"$T/err" ||
      problems+="truc pki init --hub $id: $(tr '\n' ' ' <"$T/err"); "
  done
  for id in $FED_HUBS; do
    # The files where the configuration expects them, under $T/fed/<id>.
    etc="$T/fed/$id/etc/truc/$id"
    mkdir -p "$etc/peers" "$etc/origins"
    cp -r "$T/fed/pki-$id" "$etc/pki"
    for other in $FED_HUBS; do
      [[ "$other" == "$id" ]] && continue
      cp "$T/fed/pki-$other/ca.pem" "$etc/peers/$other-ca.pem"
      cp "$T/fed/pki-$other/ca.pem" "$etc/origins/$other-ca.pem"
    done
    sed -e "s|/etc/truc/$id/|$etc/|g" -e "s|/var/lib/truc/$id|$T/fed/$id/data|" "$FED/$id.toml" >"$T/fed/$id.toml"
    if env -u TRUC_CONFIG "$TRUCD" --config "$T/fed/$id.toml" check-config >"$T/fed/$id.out" 2>&1 &&
      grep -q "^hub: urn:truc:hub:$id;" "$T/fed/$id.out"; then
      for peer in $(python3 -c 'import sys, tomllib; print(" ".join(p["id"] for p in tomllib.load(open(sys.argv[1], "rb"))["peers"]))' "$FED/$id.toml"); do
        grep -q "^peer $peer: https://$peer.truc.gov.vn:7443" "$T/fed/$id.out" || problems+="$id.toml: check-config does not list peer $peer; "
      done
    else
      problems+="trucd check-config deploy/federation/$id.toml: $(tr '\n' ' ' <"$T/fed/$id.out"); "
    fi
  done
  if [[ -z "$problems" ]]; then
    pass "deploy/federation/{h49,national,g12}.toml: trucd check-config accepts each with PKIs from truc pki init --hub (hub identity, peers listed)"
  else
    soft_fail "deploy/federation configurations: $problems"
  fi
else
  skip "no $TRUC and $TRUCD (cargo build -p truc): deploy/federation configurations not checked by trucd"
fi

if python3 -c 'import yaml' 2>/dev/null; then
  if python3 - "$FED" >"$T/out" 2>&1 <<'PY'; then
import pathlib, sys, tomllib, yaml
fed = pathlib.Path(sys.argv[1])
docs = [d for d in yaml.safe_load_all(open(fed / "kubernetes/truc-federation.yaml", encoding="utf-8")) if d]
problems = []
hubs = ["h49", "national", "g12"]
for hub in hubs:
    ns = f"truc-{hub}"
    mine = {}
    for d in docs:
        if d["metadata"].get("namespace", d["metadata"]["name"]) == ns:
            mine.setdefault(d["kind"], []).append(d)
    for k in ("Namespace", "ConfigMap", "Service", "StatefulSet"):
        if k not in mine:
            problems.append(f"{ns}: no {k}")
    if problems:
        continue
    cfg = tomllib.loads(mine["ConfigMap"][0]["data"]["trucd.toml"])
    example = tomllib.loads((fed / f"{hub}.toml").read_text(encoding="utf-8"))
    if cfg != example:
        problems.append(f"{ns}: the ConfigMap's trucd.toml does not hold the settings of deploy/federation/{hub}.toml")
    sts = mine["StatefulSet"][0]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    if spec.get("replicas") != 1:
        problems.append(f"{ns}: the StatefulSet must run exactly one replica")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    if mounts.get("data", {}).get("mountPath") != cfg["data_dir"]:
        problems.append(f"{ns}: data_dir {cfg['data_dir']} is not the persistent volume's mount")
    if "data" not in [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]:
        problems.append(f"{ns}: no volume claim template 'data'")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        if g.get("path") != path or g.get("port") != "admin":
            problems.append(f"{ns}: {probe} should GET {path} on the admin port")
    sc = c.get("securityContext", {})
    if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"] and pod["securityContext"].get("runAsNonRoot")):
        problems.append(f"{ns}: container is not locked down")
    # Every file the configuration names is mounted: the file itself from
    # the ConfigMap, the rest from the Secret's items.
    files = set()
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, m in mounts.items():
        v = volumes.get(name, {})
        if "configMap" in v:
            files.add(m["mountPath"])
        for item in v.get("secret", {}).get("items") or []:
            files.add(m["mountPath"] + "/" + item["path"])
    if f"/etc/truc/{hub}/trucd.toml" not in files or c["args"] != ["--config", f"/etc/truc/{hub}/trucd.toml"]:
        problems.append(f"{ns}: trucd does not read the ConfigMap's file")
    wanted = [cfg["identity"] + "/" + f for f in ("cert.pem", "key.pem", "ca.pem", "receipts.key")]
    wanted += cfg["tls"]["client_ca"] + cfg["tls"]["crl"] + cfg["signing"]["trust_anchors"]
    wanted += [p["ca"] for p in cfg.get("peers", [])] + [o["ca"] for o in cfg.get("origins", [])]
    for f in wanted:
        if f not in files:
            problems.append(f"{ns}: {f} (named by its configuration) is not mounted")
    svc_ports = {p["name"] for s in mine["Service"] for p in s["spec"]["ports"]}
    if not {"grpc", "admin"} <= svc_ports:
        problems.append(f"{ns}: Services must expose the grpc and admin ports")
if problems:
    sys.exit("; ".join(problems))
print(len(docs))
PY
    pass "deploy/federation/kubernetes/truc-federation.yaml: $(cat "$T/out") objects, three hubs of one replica, each ConfigMap = deploy/federation/<id>.toml, every file it names mounted"
  else
    soft_fail "deploy/federation/kubernetes/truc-federation.yaml: $(tr '\n' ' ' <"$T/out")"
  fi
else
  skip "python3-yaml not installed (apt-get install python3-yaml): federation manifest not checked"
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
