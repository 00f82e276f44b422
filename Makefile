# kubectl-sts — build, test and try the plugin.
#
#   make demo   bring up a local control plane and show the plugin at work
#   make test   run every test (unit and end-to-end), installing what they need

SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/kubectl-sts
# A vX.Y.Z tag on HEAD is the version; any other commit is v0.0.0-dev+<sha>,
# as GoReleaser names snapshots (.goreleaser.yaml).
VERSION ?= $(shell git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null || echo "v0.0.0-dev+$$(git rev-parse --short HEAD)")
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/kubectl-sts/kubectl-sts/pkg/version.version=$(VERSION) -X github.com/kubectl-sts/kubectl-sts/pkg/version.commit=$(COMMIT)

TOOLS_DIR := $(CURDIR)/.tools
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_DIR)/staticcheck-$(STATICCHECK_VERSION)
GORELEASER_VERSION := v2.15.1
GORELEASER := $(TOOLS_DIR)/goreleaser-$(GORELEASER_VERSION)
# The real krew client (as kubectl-krew, so kubectl finds it) and krew's
# manifest validator, for the krew tests.
KREW_VERSION := v0.4.3
KREW_DIR := $(TOOLS_DIR)/krew-$(KREW_VERSION)
KREW := $(KREW_DIR)/kubectl-krew
# GoReleaser reads the commit only where `git ls-remote --get-url` answers
# (else a snapshot is named +none): a repository without a remote gets the
# project's URL for that one question.
GORELEASER_RUN = $(if $(shell git remote 2>/dev/null),,GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url \
	GIT_CONFIG_VALUE_0=https://github.com/kubectl-sts/kubectl-sts) $(GORELEASER)

TESTBED_BIN = $(shell hack/testbed/build.sh --print-bin-dir)
TESTBED_COMPAT_BIN = $(shell hack/testbed/build.sh --compat --print-bin-dir)
TESTBED_ENV = KUBECTL_STS_TESTBED_BIN=$(TESTBED_BIN) KUBECTL_STS_TESTBED_COMPAT_BIN=$(TESTBED_COMPAT_BIN)
# The compatibility suite: these scenarios of the e2e suite again, on the old
# minor (KUBERNETES_COMPAT_VERSION); test/e2e/compat, which holds what only
# the old minor shows, runs with every test on its own test bed.
COMPAT_PACKAGES := ./test/e2e/status ./test/e2e/rollout ./test/e2e/expandpvc ./test/e2e/scaledown
COMPAT_RUN := ^(TestHealthy|TestStuckRollout|TestLeftoverPVCsAfterScaleDown|TestStagedRolloutMovesPodsInPlannedOrder|TestBrokenImageIsRolledBackAutomatically|TestControllerPacedRollout.*|TestInterruptedRolloutResumesFromNextStep|TestOfflineResizeRestartsEachPodOnceAndUpdatesTheTemplate|TestFailingResizeStopsAtTheFirstOrdinal|TestKilledRunResumesFromTheFirstUnverifiedOrdinal|TestScaleDownDeletesExactlyTheRemovedOrdinalsPVCs|TestKilledRunResumesAfterItsLeaseExpires|TestCompat.*)$$
GO_TEST_FLAGS ?= -count=1 -timeout 60m

.PHONY: all build test test-compat unit e2e bench bench-e2e lint fmt testbed testbed-compat deps cluster-up cluster-down demo dist dist-host release-check docs clean

all: build

## build: compile the plugin into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kubectl-sts

## test: every test, unit and end-to-end, against the real control plane and real database servers, then the compatibility suite on the old minor
test: deps testbed testbed-compat dist-host $(KREW)
	$(TESTBED_ENV) KUBECTL_STS_KREW_DIR=$(KREW_DIR) $(GO) test $(GO_TEST_FLAGS) $$($(GO) list ./... | grep -v /test/e2e/compat$$)
	$(MAKE) --no-print-directory test-compat

## test-compat: the compatibility suite, the main scenarios on the old Kubernetes minor (docs/compatibility.md)
test-compat: testbed-compat
	$(TESTBED_ENV) KUBECTL_STS_TESTBED_VERSION=compat $(GO) test $(GO_TEST_FLAGS) -run '$(COMPAT_RUN)' $(COMPAT_PACKAGES) ./test/e2e/compat

## unit: the fast tests that need no control plane
unit:
	$(GO) test -count=1 -short ./pkg/... ./plugins/... ./cmd/...

## e2e: only the end-to-end tests
e2e: deps testbed testbed-compat dist-host $(KREW)
	$(TESTBED_ENV) KUBECTL_STS_KREW_DIR=$(KREW_DIR) $(GO) test $(GO_TEST_FLAGS) ./test/...

## bench: speed and memory benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/... ./plugins/...

## bench-e2e: the workflows on the test bed beside the runbooks and the controller alone; writes docs/benchmarks.md
bench-e2e: testbed
	KUBECTL_STS_TESTBED_BIN=$(TESTBED_BIN) KUBECTL_STS_BENCH_DOC=docs/benchmarks.md \
		$(GO) test -count=1 -timeout 90m -run '^TestBenchE2E$$' -v ./bench/e2e

## lint: go.mod tidy, gofmt, go vet and staticcheck (pinned, installed into .tools/)
lint: $(STATICCHECK)
	@if ! $(GO) mod tidy -diff >/dev/null; then echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; $(GO) mod tidy -diff; exit 1; fi
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	mkdir -p $(TOOLS_DIR)
	GOBIN=$(TOOLS_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS_DIR)/staticcheck $@

$(GORELEASER):
	mkdir -p $(TOOLS_DIR)
	GOBIN=$(TOOLS_DIR) $(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)
	mv $(TOOLS_DIR)/goreleaser $@

$(KREW):
	mkdir -p $(KREW_DIR)
	GOBIN=$(KREW_DIR) $(GO) install sigs.k8s.io/krew/cmd/krew@$(KREW_VERSION) sigs.k8s.io/krew/cmd/validate-krew-manifest@$(KREW_VERSION)
	mv $(KREW_DIR)/krew $@

fmt:
	gofmt -w $$(git ls-files --cached --others --exclude-standard '*.go')

## testbed: build the control-plane binaries once into the cache
testbed:
	hack/testbed/build.sh

## testbed-compat: build the old minor's control plane once into the cache (after testbed: it shares kubectl, etcd and kwok)
testbed-compat: testbed
	hack/testbed/build.sh --compat

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

## dist: release archives for every platform, SHA256SUMS and the krew manifest dist/sts.yaml (GoReleaser snapshot)
dist: $(GORELEASER)
	$(GORELEASER_RUN) release --snapshot --clean
	cp dist/krew/sts.yaml dist/sts.yaml

## release-check: make dist, then krew's validator and the manifest checks on all six platforms
release-check: dist $(KREW)
	KUBECTL_STS_KREW_DIR=$(KREW_DIR) $(GO) test -count=1 ./hack/krew/

# dist-host: what the krew tests install: the archive and manifest of this
# machine's platform only, and an earlier snapshot (0.0.0-0 sorts before
# 0.0.0-dev) in dist/previous that krew's upgrade test starts from.
# GoReleaser's --single-target exists for `build`, not for `release`, so
# the release config is narrowed to the host target on its way in.
dist-host: $(GORELEASER)
	$(call goreleaser-host,dist,0.0.0-dev)
	$(call goreleaser-host,dist/previous,0.0.0-0)

goreleaser-host = sed -e 's|^\(    targets:\).*|\1 [$(shell $(GO) env GOOS)_$(shell $(GO) env GOARCH)]|' -e '$$a dist: $(1)' .goreleaser.yaml \
	| KUBECTL_STS_SNAPSHOT_VERSION=$(2) $(GORELEASER_RUN) release --snapshot --clean --config - \
	&& cp $(1)/krew/sts.yaml $(1)/sts.yaml \
	&& { [ "$$(ls $(1)/*.tar.gz | wc -l)" = 1 ] || { echo "dist-host: more than one archive; keep the targets of .goreleaser.yaml on one line" >&2; exit 1; }; }

## docs: regenerate the command reference in docs/reference (make test fails when it is stale)
docs:
	$(GO) run ./hack/gendocs docs/reference

clean:
	rm -rf bin dist
