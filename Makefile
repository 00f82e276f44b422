# kubectl-sts — build, test and try the plugin.
#
#   make demo   bring up a local control plane and show the plugin at work
#   make test   run every test (unit and end-to-end), installing what they need

SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/kubectl-sts
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo v0.1.0-dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/kubectl-sts/kubectl-sts/pkg/version.version=$(VERSION) -X github.com/kubectl-sts/kubectl-sts/pkg/version.commit=$(COMMIT)

TOOLS_DIR := $(CURDIR)/.tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_DIR)/staticcheck-$(STATICCHECK_VERSION)

TESTBED_BIN = $(shell hack/testbed/build.sh --print-bin-dir)
GO_TEST_FLAGS ?= -count=1 -timeout 60m

.PHONY: all build test unit e2e bench bench-e2e lint fmt testbed deps cluster-up cluster-down demo dist krew-manifest docs clean

all: build

## build: compile the plugin into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kubectl-sts

## test: every test, unit and end-to-end, against the real control plane and real database servers
test: deps testbed dist
	$(GO) run ./hack/krew/render -version $(VERSION) -dist dist -out dist/krew-manifest.yaml
	KUBECTL_STS_TESTBED_BIN=$(TESTBED_BIN) $(GO) test $(GO_TEST_FLAGS) ./...

## unit: the fast tests that need no control plane
unit:
	$(GO) test -count=1 -short ./pkg/... ./plugins/... ./cmd/...

## e2e: only the end-to-end tests
e2e: deps testbed
	KUBECTL_STS_TESTBED_BIN=$(TESTBED_BIN) $(GO) test $(GO_TEST_FLAGS) ./test/...

## bench: speed and memory benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/... ./plugins/...

## bench-e2e: the workflows on the test bed beside the runbooks and the controller alone; writes docs/benchmarks.md
bench-e2e: testbed
	KUBECTL_STS_TESTBED_BIN=$(TESTBED_BIN) KUBECTL_STS_BENCH_DOC=docs/benchmarks.md \
		$(GO) test -count=1 -timeout 90m -run '^TestBenchE2E$$' -v ./bench/e2e

## lint: gofmt, go vet and staticcheck (pinned, installed into .tools/)
lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	mkdir -p $(TOOLS_DIR)
	GOBIN=$(TOOLS_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS_DIR)/staticcheck $@

fmt:
	gofmt -w $$(git ls-files --cached --others --exclude-standard '*.go')

## testbed: build the control-plane binaries once into the cache
testbed:
	hack/testbed/build.sh

## deps: install the database servers the engine tests run against
deps:
	hack/install-deps.sh

## cluster-up / cluster-down: a local control plane for trying the plugin by hand
cluster-up: testbed
	hack/cluster-up.sh

cluster-down:
	hack/cluster-down.sh

## demo: the plugin's main jobs against a throwaway local control plane
demo: build testbed
	hack/demo.sh

## dist: static, reproducible release archives for every platform, with SHA256SUMS
dist:
	hack/dist.sh $(VERSION) $(COMMIT)

## krew-manifest: render krew-manifest.yaml from the archives in dist/
krew-manifest:
	$(GO) run ./hack/krew/render -version $(VERSION) -dist dist -out krew-manifest.yaml

## docs: regenerate the command reference in docs/reference (make test fails when it is stale)
docs:
	$(GO) run ./hack/gendocs docs/reference

clean:
	rm -rf bin dist
