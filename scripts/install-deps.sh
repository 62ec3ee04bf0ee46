#!/usr/bin/env bash
# Installs what Serval's build and tests need, only what is missing, so that
# `make test` works on a fresh Debian 12 machine and costs nothing when all
# is there already.
set -euo pipefail

# Debian packages the tests use. Later parts add theirs here (iproute2,
# nftables, bird2, frr, iperf3, ...).
# containerd and runc: the lab's Kubernetes nodes run Debian's containerd
# (1.6), and the image tests (internal/containerdtest) a private one.
APT_PACKAGES=(ca-certificates git iproute2 nftables bird2 traceroute containernetworking-plugins iperf3 frr etcd-server iptables iputils-ping systemd man-db containerd runc)

missing=()
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# bird2, frr, etcd-server and containerd would start system services on install;
	# the tests run their own instances in namespaces, so keep the
	# packages' services from starting (Debian's policy-rc.d convention).
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

export PATH=$PATH:/usr/local/go/bin
if ! command -v go >/dev/null; then
	echo "install-deps: Go is not installed (expected at /usr/local/go)" >&2
	exit 1
fi
cd "$(dirname "$0")/.."
go mod download

# kube-apiserver and kubectl for the tests that run a real Kubernetes API
# server (internal/kubetest), built from the k8s.io/kubernetes module into a
# cache outside the repository (${SERVAL_K8S_CACHE:-/root/.cache/serval/k8s}).
# Nothing to do when they are there; the first build takes a while.
scripts/k8s-binaries.sh
