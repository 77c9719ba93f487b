# Everything installs itself: a venv from PyPI, toxiproxy with `go install`, the npm and Go clients.
# Stamps make a second `make setup` take about a second.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := $(CURDIR)/tools
STAMPS := $(TOOLS)/stamps
TOXIPROXY_VERSION := 2.12.0

PY_STAMP := $(STAMPS)/python-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TOXI_STAMP := $(STAMPS)/toxiproxy-$(TOXIPROXY_VERSION)
JS_STAMP := $(STAMPS)/js-$(shell cat harness/clients/js/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
GO_STAMP := $(STAMPS)/go-$(shell cat harness/clients/go/go.sum harness/clients/go/*.go 2>/dev/null | sha1sum | cut -c1-12)
H2SPEC_STAMP := $(STAMPS)/h2spec
CC_STAMP := $(STAMPS)/claude-code-$(shell cat harness/clients/claude_code/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: setup run test bench clean python toxiproxy clients

setup: python toxiproxy clients h2spec system-tools

python: $(PY_STAMP)
$(PY_STAMP): pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(STAMPS)/python-*; touch $@

# toxiproxy: a binary >= 2.12 on PATH wins; otherwise build v2.12.0 with Go into tools/bin.
toxiproxy: $(TOXI_STAMP)
$(TOXI_STAMP):
	@mkdir -p $(STAMPS) $(TOOLS)/bin
	@scripts/install-toxiproxy.sh $(TOXIPROXY_VERSION) $(TOOLS)/bin
	@if $(TOOLS)/bin/toxiproxy-server -version >/dev/null 2>&1; then touch $@; \
	 else echo "toxiproxy: no working tools/bin/toxiproxy-server; not stamped (tests that need it fail under CI=true)" >&2; fi

clients: $(JS_STAMP) $(GO_STAMP) $(CC_STAMP)
$(JS_STAMP):
	@mkdir -p $(STAMPS)
	cd harness/clients/js && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(STAMPS)/js-*; touch $@
$(GO_STAMP):
	@mkdir -p $(STAMPS) $(TOOLS)/bin
	cd harness/clients/go && go build -o $(TOOLS)/bin/streamchaos-go-client .
	@rm -f $(STAMPS)/go-*; touch $@
$(CC_STAMP):
	@mkdir -p $(STAMPS)
	cd harness/clients/claude_code && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(STAMPS)/claude-code-*; touch $@

# Debian tools the tests use (ss from iproute2, curl): installed only when missing.
.PHONY: system-tools
system-tools:
	@command -v ss >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 || \
	 { apt-get update -q && apt-get install -y -q iproute2 curl; } || \
	 echo "system-tools: install iproute2 (ss) and curl with your package manager" >&2

# h2spec, the HTTP/2 conformance suite (tests/test_h2spec.py); stamped only when the binary runs.
.PHONY: h2spec
h2spec: $(H2SPEC_STAMP)
$(H2SPEC_STAMP):
	@mkdir -p $(STAMPS) $(TOOLS)/bin
	@if command -v go >/dev/null 2>&1; then GOBIN=$(TOOLS)/bin go install github.com/summerwind/h2spec/cmd/h2spec@latest; \
	 else echo "h2spec: no Go toolchain; install Go and run 'make setup' again" >&2; fi
	@if $(TOOLS)/bin/h2spec --version >/dev/null 2>&1; then touch $@; \
	 else echo "h2spec: no working tools/bin/h2spec; not stamped" >&2; fi

run: setup
	$(BIN)/streamchaos run --max-trials 3 --workers 4

test: setup
	$(BIN)/python -m pytest -q -m "not study"

# The load studies (metastability, the backoff study): minutes of CPU, numbers also in `make bench`.
.PHONY: test-studies
test-studies: setup
	$(BIN)/python -m pytest -q -m study

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(TOOLS) results/*/
