# classifyport: build, test and package the Splunk app.
# `make demo` and `make test` are the two commands a new user needs.

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
SDK_VERSION := 2.1.1
VENDORED := bin/splunklib/__init__.py

.PHONY: all venv vendor test demo package inspect clean

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
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --target build/sdk splunk-sdk==$(SDK_VERSION)
	cp -R build/sdk/splunklib bin/splunklib

vendor: $(VENDORED)

test: vendor
	$(VPY) -m pytest -q tests

# Runs the command over SCP v2 on the bundled sample events and prints the original search's table.
demo: vendor
	$(VPY) tools/demo.py

# dist/classifyport-<version>.tar.gz from an explicit file list, byte-identical across builds.
package: vendor
	$(VPY) tools/build_package.py

# Splunk AppInspect, default and cloud modes; fails on any failure, error or future_failure.
inspect: package
	$(VPY) tools/appinspect_gate.py

clean:
	rm -rf build dist bin/splunklib $(VENV)
