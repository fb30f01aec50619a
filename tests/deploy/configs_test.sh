#!/usr/bin/env bash
# deploy/: every YAML file parses and holds the properties the deployment depends on (probes,
# security context, read-only weights, one index writer, body limits in step with medvlpd), and the
# systemd unit passes `systemd-analyze verify` with no warning and a low `security` exposure score.
set -uo pipefail
deploy="$MEDVLP_SOURCE_ROOT/deploy"
status=0

/usr/bin/python3 - "$deploy" <<'PY' || status=1
import glob, os, re, sys
import yaml

deploy = sys.argv[1]
failures = []
def check(condition, message):
    if not condition:
        failures.append(message)

docs = {}
for path in sorted(glob.glob(f"{deploy}/*.yml") + glob.glob(f"{deploy}/k8s/*.yaml")):
    with open(path) as f:
        docs[os.path.relpath(path, deploy)] = [d for d in yaml.safe_load_all(f) if d is not None]
check(len(docs) >= 7, f"expected compose + k8s files, found {sorted(docs)}")

nginx = open(f"{deploy}/nginx.conf").read()
body = re.search(r"client_max_body_size (\d+)m;", nginx)
check(body and int(body.group(1)) == 32, "nginx.conf: client_max_body_size must be 32m (medvlpd --max-body)")
max_body = str(32 * 1024 * 1024)

# docker-compose: >= 2 read replicas with read-only weights and index, exactly one index writer.
compose = docs["docker-compose.yml"][0]
services = compose["services"]
daemons = {n: s for n, s in services.items() if n.startswith("medvlpd")}
writers = [n for n, s in daemons.items() if any(v.endswith(":/index") for v in s["volumes"])]
readers = [n for n, s in daemons.items() if "index:/index:ro" in s["volumes"]]
check(writers == ["medvlpd-writer"], f"compose: index writers {writers}, want exactly medvlpd-writer")
check(len(readers) >= 2, f"compose: {len(readers)} read replicas, want >= 2")
for name, service in daemons.items():
    check(any(v.endswith(":/weights:ro") for v in service["volumes"]), f"compose: {name} weights not read-only")
    check(service["environment"]["MEDVLP_MAX_BODY"] == max_body, f"compose: {name} MEDVLP_MAX_BODY")
    check(service.get("read_only") is True and service.get("cap_drop") == ["ALL"], f"compose: {name} hardening")
    check(name in nginx or name == "medvlpd-writer" and "medvlpd-writer:8080" in nginx,
          f"compose: {name} is not an nginx upstream")
check("nginx" in services, "compose: no nginx service")

# Kubernetes.
objects = [d for name, ds in docs.items() if name.startswith("k8s/") for d in ds]
kinds = {}
for o in objects:
    kinds.setdefault(o["kind"], []).append(o)
for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
             "Ingress", "PersistentVolumeClaim", "Kustomization"):
    check(kind in kinds, f"k8s: no {kind}")
kustomization = kinds["Kustomization"][0]
listed = set(kustomization["resources"])
on_disk = {os.path.basename(n) for n in docs if n.startswith("k8s/") and not n.endswith("kustomization.yaml")}
check(listed == on_disk, f"k8s: kustomization resources {sorted(listed)} != files {sorted(on_disk)}")
check(any(g["name"] == "medvlp-api-key" for g in kustomization.get("secretGenerator", [])), "k8s: no API key Secret")

pvcs = {p["metadata"]["name"]: p for p in kinds["PersistentVolumeClaim"]}
check("medvlp-index" in pvcs and "medvlp-weights" in pvcs, f"k8s: PVCs {sorted(pvcs)}")
index_writers = []
for deployment in kinds["Deployment"]:
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    check(deployment["spec"]["template"]["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"],
          f"k8s: {name} selector does not match its pod labels")
    check(pod["securityContext"].get("runAsNonRoot") is True, f"k8s: {name} runAsNonRoot")
    volumes = {v["name"]: v for v in pod["volumes"]}
    for c in pod["containers"]:
        sc = c["securityContext"]
        check(sc.get("readOnlyRootFilesystem") is True, f"k8s: {name} readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"k8s: {name} allowPrivilegeEscalation")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"k8s: {name} must drop ALL capabilities")
        check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"k8s: {name} readiness probe")
        check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"k8s: {name} liveness probe")
        for key in ("requests", "limits"):
            check({"cpu", "memory"} <= set(c["resources"].get(key, {})), f"k8s: {name} resources.{key}")
        env = {e["name"]: e.get("value") for e in c["env"]}
        check(env.get("MEDVLP_MAX_BODY") == max_body, f"k8s: {name} MEDVLP_MAX_BODY")
        key_file = env.get("MEDVLP_API_KEY_FILE", "")
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        key_mount = [m for m in mounts.values() if key_file.startswith(m["mountPath"] + "/")]
        check(key_mount and "secret" in volumes[key_mount[0]["name"]], f"k8s: {name} API key not a mounted Secret")
        check(mounts["weights"].get("readOnly") is True and
              volumes["weights"]["persistentVolumeClaim"].get("readOnly") is True, f"k8s: {name} weights not read-only")
        if not mounts["index"].get("readOnly"):
            index_writers.append(deployment)
check(len(index_writers) == 1, f"k8s: {len(index_writers)} Deployments write the index, want exactly 1")
for writer in index_writers:
    check(writer["spec"]["replicas"] == 1 and writer["spec"]["strategy"]["type"] == "Recreate",
          "k8s: the index writer must be 1 replica with strategy Recreate")
hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in kinds["HorizontalPodAutoscaler"]}
check(not any(w["metadata"]["name"] in hpa_targets for w in index_writers), "k8s: the index writer is autoscaled")
ingress = kinds["Ingress"][0]
check(ingress["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-body-size") == "32m",
      "k8s: ingress proxy-body-size must be 32m")
for f in failures:
    print("FAIL:", f)
print(f"yaml: {len(docs)} files, {len(objects)} k8s objects checked" if not failures else "")
sys.exit(1 if failures else 0)
PY

if command -v systemd-analyze >/dev/null; then
  dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
  # verify also checks that ExecStart exists: point it at any executable on this machine.
  sed 's|^ExecStart=.*|ExecStart=/bin/true|' "$deploy/medvlpd.service" > "$dir/medvlpd.service"
  warnings=$(systemd-analyze verify --man=no "$dir/medvlpd.service" 2>&1)
  if [ -n "$warnings" ]; then echo "FAIL: systemd-analyze verify: $warnings"; status=1; fi
  exposure=$(systemd-analyze security --offline=yes --no-pager "$dir/medvlpd.service" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for medvlpd.service: \([0-9.]*\).*/\1/p')
  # systemd scores 0 (locked down) to 10 (unrestricted); < 2 is its "OK" band.
  if [ -z "$exposure" ] || ! awk -v e="$exposure" 'BEGIN { exit !(e < 2.0) }'; then
    echo "FAIL: systemd-analyze security exposure '${exposure}' (want < 2.0)"; status=1
  else
    echo "systemd: exposure $exposure"
  fi
else
  echo "systemd-analyze not installed: unit not verified"
fi
exit $status
