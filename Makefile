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
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/test/')
LAB_PKGS = $(shell $(GO) list ./test/...)

.PHONY: all build test deps demo bench fmt vet clean fuzz

all: build

build:
	@mkdir -p bin
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

## deps: install what the tests need (apt packages, Go modules) when missing.
deps:
	@scripts/install-deps.sh

## test: the one test command (CI runs it): installs what is missing, vets, runs every test.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -p $(TEST_PARALLEL) -timeout $(TEST_TIMEOUT) $(UNIT_PKGS)
	$(GO) test -count=1 -p 1 -timeout $(TEST_TIMEOUT) $(LAB_PKGS)

## demo: the Calico talk's demo in network namespaces (root): builds, runs lab/demo.sh, cleans up.
## Exit 0: all shown as expected; 1: something was not; 3: incomplete (a part is not built yet).
demo: deps build
	@lab/demo.sh

## bench: every benchmark (root): writes bench/REPORT.md and bench/results.json (see bench/README.md).
## PART=dataplane|control|cni|bgp|scale|micro runs one part into bench/REPORT.PART.md.
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
	rm -rf bin
