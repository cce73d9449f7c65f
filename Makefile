# libblockcache: `make` builds the library and the CLI; `make dnsmasq` the
# patched dnsmasq; `make test` runs every test (needs scripts/apt-setup.sh
# once on a fresh machine: valkey-server, sqlite3, the dnsmasq source).
GO      ?= go
CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   := build
GOFILES := $(shell find libblockcache -name '*.go' -not -name '*_test.go') go.mod go.sum
# The source revision the library and the CLI report (blockcachectl
# version, dnsmasq's SIGUSR1 line, blockcache_build_info): Go's own stamp
# is off wherever GOFLAGS has -buildvcs=false.
REVISION ?= $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
LDFLAGS  := -X github.com/libblockcache/libblockcache/libblockcache/blockcache.revision=$(REVISION)

.PHONY: all lib ctl dnsmasq ports sanitize bench test race fuzz vet install clean demo FORCE

all: lib ctl

lib: $(BUILD)/libblockcache.so
ctl: $(BUILD)/blockcachectl

# The stamp's file changes only when the revision does, so that a build
# never reports a revision older than the tree it was built from (the tests
# check it) and an unchanged tree is not linked again.
$(BUILD)/revision: FORCE
	@mkdir -p $(BUILD)
	@echo '$(REVISION)' | cmp -s - $@ || echo '$(REVISION)' >$@
FORCE:

$(BUILD)/libblockcache.so: $(GOFILES) include/blockcache.h $(BUILD)/revision
	@mkdir -p $(BUILD)
	$(GO) build -buildmode=c-shared -ldflags '$(LDFLAGS)' -o $@ ./libblockcache/capi
	@rm -f $(BUILD)/libblockcache.h  # the hand-written include/blockcache.h is the contract

$(BUILD)/blockcachectl: $(GOFILES) $(BUILD)/revision
	@mkdir -p $(BUILD)
	$(GO) build -ldflags '$(LDFLAGS)' -o $@ ./libblockcache/cmd/blockcachectl

dnsmasq: $(BUILD)/dnsmasq
# /etc/os-release: an upgraded Debian gets its own release's dnsmasq, built
# against its libraries.
$(BUILD)/dnsmasq: $(wildcard dnsmasq-patch/*.patch dnsmasq-patch/*/*.patch /etc/os-release) include/blockcache.h scripts/build-dnsmasq.sh scripts/dnsmasq-source.sh scripts/dnsmasq-features.sh
	PREFIX=$(PREFIX) scripts/build-dnsmasq.sh $(BUILD)

# The patched dnsmasq of every other release the patch is kept for
# (dnsmasq-patch/V/), each through the end-to-end suite.
ports: all dnsmasq
	GO=$(GO) scripts/test-ports.sh $(BUILD)

# The patched dnsmasq again with AddressSanitizer and UBSan, through the
# end-to-end suite; any report fails it.
sanitize: all dnsmasq
	GO=$(GO) scripts/test-sanitized.sh $(BUILD)

bench: $(BUILD)/bench
$(BUILD)/bench: bench/harness.c include/blockcache.h
	@mkdir -p $(BUILD)
	$(CC) -O2 -Wall -Wextra -Iinclude -o $@ bench/harness.c -ldl -lm

SCRIPTS = $(wildcard bench/*.sh scripts/*.sh scripts/packaging/*.sh) .ci/run
# staticcheck comes from the Go module proxy at this version, built once
# into Go's cache; //lint:ignore marks the findings kept on purpose.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
vet:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@test -z "$$(gofmt -l libblockcache dnsmasq-patch bench)" || { gofmt -l libblockcache dnsmasq-patch bench; exit 1; }
	@for f in $(SCRIPTS); do test -x $$f || { echo "$$f: not executable (its usage runs it directly)"; exit 1; }; done
	@if command -v shellcheck >/dev/null; then shellcheck -S warning $(SCRIPTS); \
	else echo "vet: shellcheck not installed (scripts/apt-setup.sh installs it), scripts not checked"; fi

# Every test: Go unit tests (real SQLite), the C ABI test, the Valkey tier
# against real valkey-server processes, the patched dnsmasq end to end (each
# release's, and this release's under the sanitizers), and the benchmark
# scripts on a tiny list.
test: all dnsmasq bench vet
	BLOCKCACHE_BUILD=$(CURDIR)/$(BUILD) $(GO) test -count=1 -timeout 30m ./...
	GO=$(GO) scripts/test-ports.sh $(BUILD)
	GO=$(GO) scripts/test-sanitized.sh $(BUILD)
	BLOCKCACHE_DNSPERF_SMOKE=1 $(GO) test -count=1 -timeout 10m -run TestDNSPerfScriptsSmoke ./bench/smoke
	$(MAKE) race fuzz

# The concurrent parts again under the race detector.
race:
	$(GO) test -race -count=1 ./libblockcache/store ./libblockcache/engine ./libblockcache/lrutier ./libblockcache/blockcache ./libblockcache/valkeytier \
		./libblockcache/ratelog ./libblockcache/cgopace ./libblockcache/childsock ./libblockcache/metrics ./libblockcache/cmd/...

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report its own stop at the deadline as "context deadline exceeded" and fail
# a target that found nothing (golang/go#75804, fixed in Go 1.27). 300000
# runs take about 5-10 s each here.
FUZZTIME ?= 300000x
# FuzzAnswer asks a real list (~5k runs a second); minimizing each new input
# for the default 60 s would stall it.
FUZZTIME_ANSWER ?= 100000x
fuzz:
	$(GO) test -run XXX -fuzz FuzzNormalize -fuzztime $(FUZZTIME) ./libblockcache/name
	$(GO) test -run XXX -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./libblockcache/verdict
	$(GO) test -run XXX -fuzz FuzzReader -fuzztime $(FUZZTIME) ./libblockcache/listfile
	$(GO) test -run XXX -fuzz FuzzAnswer -fuzztime $(FUZZTIME_ANSWER) -fuzzminimizetime 100x ./libblockcache/childsock

install: all dnsmasq
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/share/doc/libblockcache/examples
	install -m 0755 $(BUILD)/libblockcache.so $(DESTDIR)$(PREFIX)/lib/libblockcache.so
	install -m 0644 include/blockcache.h $(DESTDIR)$(PREFIX)/include/blockcache.h
	install -m 0755 $(BUILD)/dnsmasq $(DESTDIR)$(PREFIX)/sbin/dnsmasq-blockcache
	install -m 0755 $(BUILD)/blockcachectl $(DESTDIR)$(PREFIX)/bin/blockcachectl
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/libblockcache/README.md
	install -m 0644 dnsmasq-patch/README.md $(DESTDIR)$(PREFIX)/share/doc/libblockcache/dnsmasq-options.md
	install -m 0644 scripts/packaging/* $(DESTDIR)$(PREFIX)/share/doc/libblockcache/examples/

demo: all dnsmasq
	scripts/demo.sh

clean:
	rm -rf $(BUILD)
