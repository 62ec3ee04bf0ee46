# Serval — see README.md. Every target works on a fresh Debian 12 machine as root.

SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/servalnet/serval/internal/version.Version=$(VERSION) \
           -X github.com/servalnet/serval/internal/version.GitCommit=$(COMMIT)
# Unit test packages run two at a time. The packages that build labs of
# network namespaces with BGP timers (test/...) run one at a time: side by
# side on 2 cores their hold-time and convergence checks become a race
# against each other's load.
TEST_PARALLEL ?= 2
TEST_TIMEOUT ?= 25m
# The unit packages run under the race detector: their concurrency (the
# syncer, the BGP speaker's goroutine, the agent's loops) is what it checks.
# The lab packages run without: the code they drive is the same, and under
# -race their agents' timing on 2 cores would test the machine instead.
UNIT_FLAGS ?= -race
# ... except internal/routing: its tests run several GoBGP servers in one
# process, and GoBGP v3.37.0 keeps route selection options in package
# variables that every StartBgp writes, a race between servers (fixed
# upstream by osrg/gobgp#3659, after v3.37.0). serval-node runs one server,
# whose StartBgp and reads are ordered by GoBGP's own management channel.
RACE_EXEMPT = github.com/servalnet/serval/internal/routing
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/test/')
LAB_PKGS = $(shell $(GO) list ./test/...)

.PHONY: all build test deps k8s-binaries conformance demo bench fmt vet clean fuzz root crds package

all: build

build:
	@mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

## package: build the Debian package dist/serval_<version>_<arch>.deb (see docs/PACKAGING.md).
package:
	VERSION="$(VERSION)" COMMIT="$(COMMIT)" LDFLAGS="$(LDFLAGS)" GO="$(GO)" scripts/package.sh dist

## crds: regenerate manifests/crds (the CRDs of Serval's kinds) from internal/api's Go types.
crds:
	$(GO) run ./internal/crd/gen -out manifests/crds

## deps: install what the tests need (apt packages, Go modules) when missing.
deps:
	@scripts/install-deps.sh

## k8s-binaries: build kube-apiserver and kubectl (the version internal/kubetest runs) into
## ${SERVAL_K8S_CACHE:-/root/.cache/serval/k8s}, outside the repository, unless they are there.
k8s-binaries:
	@scripts/k8s-binaries.sh

## root: fails at once unless run as root. Without root every network
## namespace, nftables and lab test would fail (they never skip), so say why
## up front instead of after half an hour of failures.
root:
	@if [ "$$(id -u)" -ne 0 ]; then \
		echo "make: this target must run as root: its tests create network namespaces, nftables tables and labs (and fail, not skip, without root). Run: sudo make $(MAKECMDGOALS)" >&2; \
		exit 1; \
	fi

## test: the one test command (CI runs it, as root): installs what is missing, vets, runs every test.
test: root deps
	$(GO) vet ./...
	$(GO) test -count=1 $(UNIT_FLAGS) -p $(TEST_PARALLEL) -timeout $(TEST_TIMEOUT) $(filter-out $(RACE_EXEMPT),$(UNIT_PKGS))
	$(GO) test -count=1 -p $(TEST_PARALLEL) -timeout $(TEST_TIMEOUT) $(RACE_EXEMPT)
	$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(LAB_PKGS)

## conformance: the upstream Kubernetes NetworkPolicy e2e tests (e2e.test, --ginkgo.focus='\[Feature:NetworkPolicy\]',
## SCTPConnectivity skipped) on the cluster lab lab/kubernetes.yaml (root); JUnit report in conformance-report/.
## make test runs a handful of them (test/kubecluster).
conformance: root deps build
	@scripts/conformance.sh

## demo: the Calico talk's demo in network namespaces (root): builds, runs lab/demo.sh, cleans up.
## Exit 0: all shown as expected; 1: something was not; 3: incomplete (a part is not built yet).
demo: deps build
	@lab/demo.sh

## bench: every benchmark (root): writes bench/REPORT.md and bench/results.json (see bench/README.md).
## PART=dataplane|control|cni|bgp|scale|kubernetes|micro runs one part into bench/REPORT.PART.md.
PART ?=
bench: deps build
	$(GO) build -o bin/ ./bench/cmd/servalbench
	bin/servalbench $(if $(PART),--part $(PART))

## fuzz: run every native fuzz target for FUZZTIME each (make test runs only their seed corpora).
## Minimisation is capped: at its default (60 s) one interesting input can eat a whole run.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./internal/selector:FuzzParse ./internal/api:FuzzLoad ./internal/admission:FuzzDecodeAndCalculate ./internal/cni:FuzzLoadNetConf ./internal/lab:FuzzParseTopology
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz: $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg; \
	done

fmt:
	gofmt -l -w .

vet:
	$(GO) vet ./...

clean:
	rm -rf bin dist
