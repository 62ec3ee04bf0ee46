#!/usr/bin/env bash
# The upstream Kubernetes NetworkPolicy conformance run (make conformance):
# brings up the cluster lab lab/kubernetes.yaml (as lab "conf"), runs
# e2e.test of k8s.io/kubernetes (scripts/k8s-binaries.sh) focused on
# [Feature:NetworkPolicy], skipping only SCTPConnectivity (this kernel has
# no SCTP sockets), and writes its JUnit report and log into REPORT_DIR
# (default conformance-report/). The lab is removed at the end unless
# KEEP_LAB=1. Exit status: e2e.test's (0 when every test passed).
#
# Usage: scripts/conformance.sh [extra e2e.test flags, e.g. --ginkgo.focus=...]
set -euo pipefail
cd "$(dirname "$0")/.."

REPORT_DIR=${REPORT_DIR:-conformance-report}
LAB=conf
FOCUS=${FOCUS:-'\[Feature:NetworkPolicy\]'}
SKIP=${SKIP:-'SCTPConnectivity'}

log() { printf 'conformance: %s\n' "$*" >&2; }

[[ $(id -u) -eq 0 ]] || { log "must run as root (the lab creates namespaces)"; exit 1; }
BIN=$(scripts/k8s-binaries.sh --print-dir)
scripts/k8s-binaries.sh
[[ -x bin/serval-lab && -x bin/serval-pause ]] || { log "run 'make build' first"; exit 1; }

mkdir -p "$REPORT_DIR"
REPORT_DIR=$(cd "$REPORT_DIR" && pwd)
bin/serval-lab down --name "$LAB" >/dev/null 2>&1 || true
cleanup() {
	if [[ ${KEEP_LAB:-0} != 1 ]]; then
		bin/serval-lab down --name "$LAB" >/dev/null 2>&1 || log "removing lab $LAB failed: run bin/serval-lab down --name $LAB"
	fi
}
trap cleanup EXIT

log "bringing up lab $LAB (lab/kubernetes.yaml)"
sed "s/^name: .*/name: $LAB/" lab/kubernetes.yaml >"$REPORT_DIR/topology.yaml"
bin/serval-lab up -f "$REPORT_DIR/topology.yaml"

log "running e2e.test --ginkgo.focus='$FOCUS' --ginkgo.skip='$SKIP' (report in $REPORT_DIR; the whole focus takes a long while)"
kubeconfig=$(bin/serval-lab kubeconfig --name "$LAB")
rc=0
(cd "$REPORT_DIR" && ip netns exec "svl-$LAB-datastore" "$BIN/e2e.test" \
	--kubeconfig="$kubeconfig" --provider=local \
	--ginkgo.focus="$FOCUS" --ginkgo.skip="$SKIP" \
	--ginkgo.no-color --ginkgo.timeout=6h --ginkgo.v=false \
	--report-dir="$REPORT_DIR" "$@") 2>&1 | tee "$REPORT_DIR/e2e.log" || rc=$?
grep -E '^(Ran |PASS|FAIL)' "$REPORT_DIR/e2e.log" | tail -3 >&2 || true
exit "$rc"
