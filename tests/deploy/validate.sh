#!/usr/bin/env bash
# tests/deploy/validate.sh — offline checks of the deployment files in deploy/ (issue 5 item 4).
#
# Validates what can be validated without starting anything: the systemd unit
# (systemd-analyze verify and security), every YAML and JSON file (a real parse), the
# Kubernetes manifests and the compose file (structure, the config they ship accepted by
# `funneld --check-config`), the metric names used by alerts and the dashboard against
# deploy/prometheus/METRICS.md, and, where installed, promtool (check and the alert unit
# tests in alerts_test.yml), hadolint, kubectl kustomize and `docker compose config`.
# A tool that is missing (python3-yaml included) is reported as skipped; any failed check
# makes the exit status 1.
#
# FUNNELD_BUILD_DIR names the build directory holding funneld (default: build).
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
build=${FUNNELD_BUILD_DIR:-build}
case $build in /*) ;; *) build=$repo/$build ;; esac
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failed=0 skipped=0 passed=0
ok() { printf 'ok      %s\n' "$*"; passed=$((passed + 1)); }
bad() { printf 'FAIL    %s\n' "$*"; failed=$((failed + 1)); }
skip() { printf 'skipped %s\n' "$*"; skipped=$((skipped + 1)); }
# run DESCRIPTION CMD...: passes when CMD exits 0 and prints nothing (tools such as
# systemd-analyze verify only warn, with status 0, about unknown keys).
run() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1) && [ -z "$out" ]; then ok "$what"; else bad "$what"; printf '%s\n' "$out" | sed 's/^/        /'; fi
}

# ---- systemd -------------------------------------------------------------------------------
unit=deploy/systemd/funneld.service
if command -v systemd-analyze >/dev/null; then
    # verify refuses a unit whose ExecStart binary is missing: check a copy that runs the
    # built funneld (or /bin/true) instead of /usr/local/bin/funneld; nothing else changes.
    bin=/bin/true
    [ -x "$build/funneld" ] && bin=$build/funneld
    sed "s#/usr/local/bin/funneld#$bin#g" "$unit" >"$tmp/funneld.service"
    run "systemd-analyze verify $unit (ExecStart → $bin)" systemd-analyze verify "$tmp/funneld.service"
    # --threshold is in tenths: 20 = overall exposure at most 2.0 ("OK").
    if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
        if out=$(systemd-analyze security --offline=yes --threshold=20 "$tmp/funneld.service" 2>&1); then
            ok "systemd-analyze security $unit: $(printf '%s\n' "$out" | grep -o 'exposure level.*' | sed 's/ for [^:]*:/:/')"
        else
            bad "systemd-analyze security $unit: exposure above 2.0"
            printf '%s\n' "$out" | grep -E '^(✗|→)' | sed 's/^/        /'
        fi
    else
        skip "systemd-analyze security (no --offline in this systemd)"
    fi
else
    skip "systemd-analyze verify (systemd-analyze not installed)"
fi

# ---- structure, YAML, JSON, metric names (one Python run) ---------------------------------
if [ -x "$py" ] && "$py" -c 'import yaml' 2>/dev/null; then
    "$py" - "$tmp" <<'PY'
import glob, json, os, re, sys, yaml

tmp = sys.argv[1]
good = bad = 0
def ok(msg):
    global good
    good += 1
    print(f"ok      {msg}")
def fail(msg):
    global bad
    bad += 1
    print(f"FAIL    {msg}")
def check(cond, msg):
    ok(msg) if cond else fail(msg)

# Every YAML and JSON file under deploy/ parses (multi-document YAML included).
files = sorted(f for f in glob.glob("deploy/**/*", recursive=True) + glob.glob("tests/deploy/*")
               if os.path.isfile(f) and not f.startswith(("deploy/.kafka/", "deploy/.run/")))
docs = {}
for f in files:
    try:
        if f.endswith((".yaml", ".yml")):
            docs[f] = [d for d in yaml.safe_load_all(open(f)) if d is not None]
        elif f.endswith(".json"):
            docs[f] = json.load(open(f))
        else:
            continue
        ok(f"parse {f}")
    except Exception as e:
        fail(f"parse {f}: {e}")

# The systemd unit carries the hardening the deployment promises.
unit = open("deploy/systemd/funneld.service").read()
missing = 0
for d in ["DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "NoNewPrivileges=yes",
          "PrivateTmp=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
          "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
          "CapabilityBoundingSet=\n", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
          "KillSignal=SIGTERM", "TimeoutStopSec=45", "LimitNOFILE=",
          "ExecStart=/usr/local/bin/funneld -c /etc/funneld/funneld.json"]:
    if d not in unit:
        fail(f"deploy/systemd/funneld.service lacks {d.strip()}")
        missing += 1
if not missing:
    ok("deploy/systemd/funneld.service has the required directives")

# Kubernetes: every manifest named by kustomization.yaml, wired together.
k8s = {}
for f in docs.get("deploy/k8s/kustomization.yaml", [{}])[0].get("resources", []):
    for d in docs.get(f"deploy/k8s/{f}", []):
        k8s[d["kind"]] = d
kinds = {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"}
check(kinds <= set(k8s), f"deploy/k8s: kustomization lists {', '.join(sorted(kinds))}")
dep, cm, svc = k8s.get("Deployment"), k8s.get("ConfigMap"), k8s.get("Service")
if dep and cm and svc:
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    port = lambda p: ports.get(p, p)
    lp, rp = c.get("livenessProbe", {}).get("httpGet", {}), c.get("readinessProbe", {}).get("httpGet", {})
    check(dep["spec"].get("replicas") == 3, "deploy/k8s: Deployment replicas 3")
    check(lp.get("path") == "/healthz" and port(lp.get("port")) == 9464, "deploy/k8s: liveness GET /healthz on 9464")
    check(rp.get("path") == "/readyz" and port(rp.get("port")) == 9464, "deploy/k8s: readiness GET /readyz on 9464")
    check(spec.get("terminationGracePeriodSeconds", 30) >= 45, "deploy/k8s: terminationGracePeriodSeconds >= 45")
    sc = c.get("securityContext", {})
    check(spec.get("securityContext", {}).get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
          and sc.get("allowPrivilegeEscalation") is False, "deploy/k8s: non-root, read-only root fs, no privilege escalation")
    check("limits" in c.get("resources", {}) and "requests" in c.get("resources", {}), "deploy/k8s: resources set")
    vols = [v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v]
    check(cm["metadata"]["name"] in vols, "deploy/k8s: Deployment mounts the ConfigMap")
    sel = svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    check(sel and port(svc["spec"]["ports"][0].get("targetPort")) == 9464, "deploy/k8s: Service selects the pods, port 9464")
    try:
        cfg = json.loads(cm["data"]["funneld.json"])
        json.dump(cfg, open(os.path.join(tmp, "k8s-funneld.json"), "w"))
        check(cfg.get("http", {}).get("listen") == "0.0.0.0:9464", "deploy/k8s: ConfigMap funneld.json parses, http.listen 0.0.0.0:9464")
    except Exception as e:
        fail(f"deploy/k8s: ConfigMap funneld.json: {e}")

# Container config shipped in the image and mounted by compose.
cfg = docs.get("deploy/docker/funneld.json", {})
check(cfg.get("http", {}).get("listen") == "0.0.0.0:9464", "deploy/docker/funneld.json: http.listen 0.0.0.0:9464")

# Compose: the services, and every file it builds from or mounts exists.
cf = "deploy/compose/compose.yaml"
comp = (docs.get(cf) or [{}])[0]
svcs = comp.get("services", {})
need = {"kafka", "kafka-init", "redis", "funneld", "loadgen"}
check(need <= set(svcs), f"{cf}: services {', '.join(sorted(need))}")
base = os.path.dirname(cf)
for name, s in svcs.items():
    b = s.get("build")
    if b:
        check(os.path.isfile(os.path.join(base, b["context"], b["dockerfile"])), f"{cf}: {name} builds {b['dockerfile']}")
    for v in s.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            check(os.path.exists(os.path.normpath(os.path.join(base, src))), f"{cf}: {name} mounts {src}")
check(svcs.get("loadgen", {}).get("entrypoint") == ["funneld-loadgen"], f"{cf}: loadgen runs funneld-loadgen")

# The Redis Cluster examples (issue 18): six cluster-enabled nodes, a one-shot that joins
# them, funneld pointed at one node with FUNNELD_REDIS_CLUSTER=true.
co = "deploy/compose/redis-cluster.yaml"
ov = ((docs.get(co) or [{}])[0]).get("services", {})
rc = sorted(n for n in ov if n.startswith("rc-"))
check(len(rc) == 6 and all("--cluster-enabled yes" in " ".join(ov[n].get("command", []))
                           and "--appendonly yes" in " ".join(ov[n].get("command", [])) for n in rc),
      f"{co}: six cluster-enabled, appendonly nodes")
check(set(ov.get("redis-cluster-init", {}).get("depends_on", {})) == set(rc)
      and "--cluster-replicas 1" in " ".join(ov.get("redis-cluster-init", {}).get("command", [])),
      f"{co}: redis-cluster-init joins the six, one replica each")
fe = ov.get("funneld", {}).get("environment", {})
check(fe.get("FUNNELD_REDIS_CLUSTER") == "true" and fe.get("FUNNELD_REDIS_URL", "").split("//")[-1].split(":")[0] in rc
      and "funneld" in svcs, f"{co}: overrides compose.yaml's funneld: a node's URL, FUNNELD_REDIS_CLUSTER true")
kc = {d["kind"]: d for d in docs.get("deploy/k8s/redis-cluster.yaml", [])}
sts, hs = kc.get("StatefulSet", {}), kc.get("Service", {})
args = " ".join(sts.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("args", []))
check(sts.get("spec", {}).get("replicas") == 6 and sts["spec"].get("serviceName") == hs.get("metadata", {}).get("name")
      and hs.get("spec", {}).get("clusterIP") == "None" and "--cluster-enabled yes" in args
      and sts["spec"].get("volumeClaimTemplates"), "deploy/k8s/redis-cluster.yaml: six nodes behind a headless Service, a volume each")
job = " ".join(kc.get("Job", {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("args", []))
check("--cluster create" in job and "--cluster-replicas 1" in job,
      "deploy/k8s/redis-cluster.yaml: a Job creates the cluster")
envs = {e["name"]: e for e in (dep or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("env", [])}
check(envs.get("FUNNELD_REDIS_CLUSTER", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("key") == "redis-cluster",
      "deploy/k8s: FUNNELD_REDIS_CLUSTER from the Secret's redis-cluster key")

# Dockerfile: multi-stage, slim runtime, non-root, and what it COPYs from the context exists.
df = open("deploy/docker/Dockerfile").read()
froms = re.findall(r"^FROM\s+(\S+)", df, re.M)
check(froms[:1] == ["debian:bookworm"] and froms[-1:] == ["debian:bookworm-slim"],
      "deploy/docker/Dockerfile: build on debian:bookworm, run on debian:bookworm-slim")
users = re.findall(r"^USER\s+(\S+)", df, re.M)
check(bool(users) and not users[-1].split(":")[0] in ("root", "0"), "deploy/docker/Dockerfile: runs as non-root USER")
for src in re.findall(r"^COPY\s+(?!--from)(\S+)\s+\S+", df, re.M):
    check(src == "." or os.path.exists(src), f"deploy/docker/Dockerfile: COPY {src} exists")

# Prometheus rules have the alerts promised, and every funneld_ metric used by the rules
# and the dashboard is in METRICS.md (so /metrics and its consumers agree on names).
rules = [r for g in (docs.get("deploy/prometheus/alerts.yml") or [{}])[0].get("groups", []) for r in g["rules"]]
names = {r.get("alert") for r in rules}
for a in ["FunneldConsumerLagHigh", "FunneldDeadLetterRate", "FunneldNotReady", "FunneldRedisDisconnected", "FunneldNoThroughput"]:
    check(a in names, f"deploy/prometheus/alerts.yml: alert {a}")
check(all(r.get("alert") and r.get("expr") for r in rules), "deploy/prometheus/alerts.yml: every rule has alert and expr")
known = set(re.findall(r"^\| `(funneld_[a-z_]+)`", open("deploy/prometheus/METRICS.md").read(), re.M))
dash = docs.get("deploy/grafana/funneld-dashboard.json", {})
exprs = [r["expr"] for r in rules] + [t["expr"] for p in dash.get("panels", []) for t in p.get("targets", [])]
used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\bfunneld_[a-z_]+", e)}
unknown = sorted(used - known)
check(not unknown and used, f"alerts.yml and funneld-dashboard.json use only METRICS.md names ({len(used)} used)"
      + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
ids = [p["id"] for p in dash.get("panels", [])]
check(dash.get("uid") and len(ids) == len(set(ids)), "deploy/grafana/funneld-dashboard.json: uid set, panel ids unique")
open(os.path.join(tmp, "py-counts"), "w").write(f"{good} {bad}\n")
PY
    if read -r g b <"$tmp/py-counts" 2>/dev/null; then
        passed=$((passed + g)) failed=$((failed + b))
    else
        bad "the Python checks did not finish"
    fi
else
    skip "YAML/JSON parse and structure checks ($py has no yaml module; Debian: python3-yaml)"
fi

# ---- funneld --check-config on the shipped container configs -------------------------------
if [ -x "$build/funneld" ]; then
    for f in deploy/docker/funneld.json "$tmp/k8s-funneld.json"; do
        name=$f
        [ "$f" = "$tmp/k8s-funneld.json" ] && name="deploy/k8s/configmap.yaml funneld.json"
        if [ ! -f "$f" ]; then
            # extracted by the Python checks: missing when they were skipped or failed early
            if [ -f "$tmp/py-counts" ]; then bad "funneld --check-config $name: not extracted"
            else skip "funneld --check-config $name (needs the YAML checks)"; fi
            continue
        fi
        if out=$("$build/funneld" --check-config -c "$f" 2>&1); then
            ok "funneld --check-config $name: $out"
        else
            bad "funneld --check-config $name"
            printf '%s\n' "$out" | sed 's/^/        /'
        fi
    done
    # the environment deploy/compose/redis-cluster.yaml and deploy/k8s/redis-cluster.yaml give
    if out=$(FUNNELD_REDIS_URL=redis://rc-1:6379 FUNNELD_REDIS_CLUSTER=true \
             "$build/funneld" --check-config -c deploy/docker/funneld.json 2>&1); then
        ok "funneld --check-config deploy/docker/funneld.json on a Redis Cluster: $out"
    else
        bad "funneld --check-config deploy/docker/funneld.json on a Redis Cluster"
        printf '%s\n' "$out" | sed 's/^/        /'
    fi
else
    skip "funneld --check-config (no $build/funneld; build it or set FUNNELD_BUILD_DIR)"
fi

# ---- optional tools ------------------------------------------------------------------------
if command -v promtool >/dev/null; then
    # check config also checks the rule_files it names (relative to the config file).
    # test rules: the alerts fire on the cases of tests/deploy/alerts_test.yml.
    for c in "check rules deploy/prometheus/alerts.yml" "check config deploy/prometheus/prometheus.yml" \
             "test rules tests/deploy/alerts_test.yml"; do
        # shellcheck disable=SC2086 # a subcommand and a file, split on purpose
        if out=$(promtool $c 2>&1); then ok "promtool $c"
        else bad "promtool $c"; printf '%s\n' "$out" | sed 's/^/        /'; fi
    done
else
    skip "promtool check config/rules, test rules (promtool not installed; Debian: prometheus)"
fi

if command -v hadolint >/dev/null; then
    if out=$(hadolint deploy/docker/Dockerfile 2>&1); then ok "hadolint deploy/docker/Dockerfile"
    else bad "hadolint deploy/docker/Dockerfile"; printf '%s\n' "$out" | sed 's/^/        /'; fi
else
    skip "hadolint deploy/docker/Dockerfile (hadolint not installed)"
fi

if command -v kubectl >/dev/null; then
    # Renders the kustomization offline (no cluster needed): catches broken resource lists.
    if out=$(kubectl kustomize deploy/k8s 2>&1) && [ "$(printf '%s\n' "$out" | grep -c '^kind:')" -ge 4 ]; then
        ok "kubectl kustomize deploy/k8s ($(printf '%s\n' "$out" | grep -c '^kind:') objects)"
    else
        bad "kubectl kustomize deploy/k8s"; printf '%s\n' "$out" | head -20 | sed 's/^/        /'
    fi
else
    skip "kubectl kustomize deploy/k8s (kubectl not installed)"
fi

if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
    if out=$(docker compose -f deploy/compose/compose.yaml --profile monitoring config -q 2>&1); then
        ok "docker compose config deploy/compose/compose.yaml"
    else
        bad "docker compose config deploy/compose/compose.yaml"; printf '%s\n' "$out" | sed 's/^/        /'
    fi
    if out=$(docker compose -f deploy/compose/compose.yaml -f deploy/compose/redis-cluster.yaml config -q 2>&1); then
        ok "docker compose config compose.yaml + redis-cluster.yaml"
    else
        bad "docker compose config compose.yaml + redis-cluster.yaml"; printf '%s\n' "$out" | sed 's/^/        /'
    fi
else
    skip "docker compose config (docker compose not installed)"
fi

printf '\n%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
