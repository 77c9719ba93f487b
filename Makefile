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
CC_STAMP := $(STAMPS)/claude-code-$(shell cat harness/clients/claude_code/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
OPENAI_JS_STAMP := $(STAMPS)/openai-js-$(shell cat harness/clients/openai_js/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: setup run test bench clean python toxiproxy clients

setup: python toxiproxy clients

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
	@touch $@

clients: $(JS_STAMP) $(GO_STAMP) $(CC_STAMP) $(OPENAI_JS_STAMP)
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

# The OpenAI SDK for TypeScript and the Vercel AI SDK (ai + @ai-sdk/openai), pinned by their lock.
$(OPENAI_JS_STAMP):
	@mkdir -p $(STAMPS)
	cd harness/clients/openai_js && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(STAMPS)/openai-js-*; touch $@

run: setup
	$(BIN)/streamchaos run --max-trials 3 --workers 4

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(TOOLS) results/*/
