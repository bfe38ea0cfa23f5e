# NodeOS and its testbed. `make demo` and `make test` do all the set-up on a
# fresh Debian 12 machine (as root): packages, the pinned node, the kernel.
# Not the Swift toolchain: that is a prerequisite (see swift-toolchain below).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
IMAGE := build/image
NODE := build/node/bin/node

APT_PACKAGES := linux-source-6.1 build-essential patch flex bison bc libelf-dev libssl-dev lz4 \
  cpio xz-utils erofs-utils e2fsprogs qemu-system-x86 qemu-utils \
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-dev libvirt-clients libpcap-dev python3-pip curl openssl acpica-tools

.PHONY: help swift-toolchain deps image test test-guest test-image test-swift reliability demo bench nightly bench-check clean

help:
	@echo "make demo    build what is missing, boot NodeOS and run the shipped scenarios"
	@echo "make test    run every test (guest unit tests, image boot test, swift test, the reliability suite)"
	@echo "make reliability  inject faults (guest, testbed, data, bad input, security, fuzzing, a 50-cycle soak); summary + build/reliability/ledger.jsonl"
	@echo "make image   build the NodeOS image into $(IMAGE) (kernel cached in ~/.cache/nodeos)"
	@echo "make bench   boot the image N times against the plain-QEMU runner, time npm installs guest vs host; table + build/bench/report.html"
	@echo "make nightly bench against the saved baseline image; exit 1 on a regression"
	@echo "make bench-check  prove the regression check: a 300 ms delay is flagged, 5 unchanged reruns are not"

TESTBED := .build/debug/testbed
# SwiftPM litters $TMPDIR; scripts/with-scratch-tmp gives it a folder of its own.
SWIFT := scripts/with-scratch-tmp swift
BOOTS ?= 7

# The Swift toolchain is the one prerequisite nothing here installs (Debian 12
# has no Swift 6 package). Every target that runs swift checks for it first,
# so a machine without it stops at once, not after the image's kernel build.
SWIFT_TOOLS_VERSION := $(shell sed -n '1s/.*swift-tools-version: *\([0-9.]*\).*/\1/p' Package.swift)
swift-toolchain:
	@where="get the Linux toolchain from https://www.swift.org/install/linux/ and put its usr/bin on PATH (here it is installed under /opt/swift: export PATH=/opt/swift/usr/bin:\$$PATH)"; \
	if ! command -v swift >/dev/null 2>&1; then \
	  echo "make: 'swift' is not on PATH. The testbed needs the Swift toolchain, $(SWIFT_TOOLS_VERSION) or later (Package.swift's tools version; developed with 6.3.x), which 'make deps' does not install: $$where" >&2; \
	  exit 1; \
	fi; \
	version=$$(swift --version 2>&1 | sed -n 's/.*Swift version \([0-9][0-9.]*\).*/\1/p' | head -n 1); \
	if [ -z "$$version" ] || [ "$${version%%.*}" -lt "$(firstword $(subst ., ,$(SWIFT_TOOLS_VERSION)))" ]; then \
	  echo "make: $$(command -v swift) is Swift '$${version:-unknown}'; the testbed needs $(SWIFT_TOOLS_VERSION) or later (developed with 6.3.x): $$where" >&2; \
	  exit 1; \
	fi

$(TESTBED): $(shell find Sources -name '*.swift') Package.swift | swift-toolchain
	$(SWIFT) build --product testbed

# Installs only what is missing, so a second run costs a dpkg query.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# The embedded QEMU driver refuses to start without this account, even as root.
	@getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin libvirt-qemu

image: deps
	images/build.sh $(IMAGE)

test-guest: image
	$(NODE) --test images/test/*.test.js

# The plain-QEMU runner boots the image and checks what issue #2 promises.
test-image: image
	$(NODE) --test images/test-boot/*.test.js

test-swift: swift-toolchain image
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip ReliabilityTests

# Every case appends a line to the ledger; the summary counts faults injected,
# survived and leaks found, and fails the target on any failure or leak.
RELIABILITY_LEDGER := build/reliability/ledger.jsonl
reliability: swift-toolchain image
	$(SWIFT) build --build-tests
	@mkdir -p build/reliability && rm -f $(RELIABILITY_LEDGER)
	status=0; NODEOS_RELIABILITY_LEDGER=$(CURDIR)/$(RELIABILITY_LEDGER) $(SWIFT) test --filter ReliabilityTests || status=$$?; \
	  scripts/reliability-summary $(RELIABILITY_LEDGER) && exit $$status

test: swift-toolchain test-guest test-image test-swift reliability

demo: swift-toolchain image $(TESTBED)
	$(TESTBED) run scenarios --junit build/junit.xml --json build/run.json

NPM_INSTALLS ?= 3
bench: swift-toolchain image $(TESTBED)
	$(TESTBED) bench --boots $(BOOTS) --npm-installs $(NPM_INSTALLS)

# The baseline is the last image that passed; the candidate is build/image.
# Both boot in the same run, interleaved: only ratios measured together count.
nightly: swift-toolchain image $(TESTBED)
	@if [ ! -f build/bench/baseline/manifest.json ]; then \
	  echo "nightly: no baseline yet; saving this image as the baseline"; \
	  mkdir -p build/bench && rm -rf build/bench/baseline && cp -r $(IMAGE) build/bench/baseline; \
	  $(TESTBED) bench --boots $(BOOTS); \
	else \
	  $(TESTBED) bench --boots $(BOOTS) --image build/bench/baseline --candidate-image $(IMAGE) --fail-on-regression \
	    && rm -rf build/bench/baseline && cp -r $(IMAGE) build/bench/baseline; \
	fi

bench-check: swift-toolchain image $(TESTBED)
	scripts/bench-check

clean:
	rm -rf build .build artifacts
