# classifyport: build, test and package the Splunk app.
# `make demo` and `make test` are the two commands a new user needs.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
SDK_VERSION := 2.1.1
# sha256 of PyPI's splunk-sdk-2.1.1.tar.gz (its only distribution): vendoring installs exactly that file.
SDK_SHA256 := 46300d52f09e0aed7e5962ce2ba08ef54421ffb3a538c6af6164dcbf9f075faa
VENDORED := bin/splunklib/__init__.py
VERSION := $(shell cat VERSION)
PACKAGE := dist/classifyport-$(VERSION).tar.gz

.PHONY: all venv vendor test demo package inspect icons sysmon-config sigma validate replay bench fuzz clean

all: test

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# The official SDK, pinned and unmodified, copied into bin/ (never committed):
# bin/ is what Splunk replicates to indexers in the knowledge bundle.
$(VENDORED): $(VENV)/.installed
	rm -rf build/sdk bin/splunklib
	mkdir -p build
	echo "splunk-sdk==$(SDK_VERSION) --hash=sha256:$(SDK_SHA256)" > build/sdk-requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --require-hashes \
		--target build/sdk -r build/sdk-requirements.txt
	cp -R build/sdk/splunklib bin/splunklib

vendor: $(VENDORED)

# The one test command: every test under tests/ (pytest's exit code 5, "no tests
# ran", fails here like any other), then the AppInspect gate on a fresh package.
test: vendor
	$(VPY) -m pytest -q tests
	$(MAKE) --no-print-directory inspect

# Runs the command over SCP v2 on the bundled sample events and prints the original search's table.
demo: vendor
	$(VPY) tools/demo.py

# dist/classifyport-<version>.tar.gz from the explicit file list in tools/build_package.py,
# version stamped from VERSION, byte-identical across builds.
package: vendor
	$(VPY) tools/build_package.py

# Splunk AppInspect, default and cloud modes; fails on any failure, error or future_failure
# and on a remaining warning that README.md does not explain.
inspect: package
	$(VPY) tools/appinspect_gate.py --package $(PACKAGE)

# Replays the sample events and the real corpus (../shared) through the packaged command
# and reports, per test and data set, what fired, what did not and why.
validate: package
	$(VPY) tools/validate.py --package $(PACKAGE)

# Replays exported Sysmon logs through the packaged command:
#   make replay FILES="a.evtx b.csv" ARGS="mode=annotate"
replay: package
	$(VPY) tools/replay.py --package $(PACKAGE) -- $(ARGS) $(FILES)

# End-to-end benchmark over SCP v2 (1,000,000 events); writes BENCHMARKS.md.
bench: package
	$(VPY) tools/bench.py --package $(PACKAGE) --write BENCHMARKS.md

# A long fuzzing run through the real protocol: random examples (CLASSIFYPORT_FUZZ_EXAMPLES, default
# 1000) and every protocol fault under all three interpreters; `make test` runs a fixed bounded set.
# Its log is build/fuzz.log; tools/fuzz_report.py writes the results into BENCHMARKS.md.
fuzz: vendor
	mkdir -p build
	CLASSIFYPORT_FUZZ=long $(VPY) -m pytest -q --hypothesis-show-statistics --junitxml=build/fuzz-junit.xml \
		tests/test_fuzz_protocol.py tests/test_protocol_faults.py > build/fuzz.log 2>&1; \
		status=$$?; tail -n 40 build/fuzz.log; \
		$(VPY) tools/fuzz_report.py build/fuzz-junit.xml BENCHMARKS.md && exit $$status

# A Sysmon NetworkConnect include rule group generated from the process lookup.
sysmon-config:
	$(PYTHON) tools/sysmon_config.py --output build/sysmon-classifyport.xml

# Regenerates the Sigma rule (kept in the repository, not the package) from the lookups.
sigma:
	$(PYTHON) tools/build_sigma_rule.py

# Redraws static/*.png (committed; tests check they match this script).
icons:
	$(PYTHON) tools/make_icons.py

clean:
	rm -rf build dist bin/splunklib $(VENV)
