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
OPENAI_JS_STAMP := $(STAMPS)/openai-js-$(shell cat harness/clients/openai_js/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: setup run test lint bench clean python toxiproxy clients actionlint image lab
.PHONY: report-tools

setup: python toxiproxy clients h2spec system-tools actionlint report-tools lab versions

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

# actionlint checks .github/workflows/ in the suite; stamped only once the binary runs.
ACTIONLINT_STAMP := $(STAMPS)/actionlint
actionlint: $(ACTIONLINT_STAMP)
$(ACTIONLINT_STAMP):
	@mkdir -p $(STAMPS) $(TOOLS)/bin
	GOBIN=$(TOOLS)/bin go install github.com/rhysd/actionlint/cmd/actionlint@latest
	$(TOOLS)/bin/actionlint -version >/dev/null && touch $@

# The image deploy/k8s/indexed-job.yaml runs (needs a docker engine; the suite checks the names agree).
IMAGE ?= ghcr.io/streamchaos/streamchaos:0.1.0
image:
	docker build -f deploy/Dockerfile -t $(IMAGE) .

# Issue 14: the client versions the suite runs, installed once into the user cache
# (~/.cache/streamchaos, or $STREAMCHAOS_CACHE_DIR) where `streamchaos NAME@VERSION` finds them.
SUITE_VERSIONS := python-sdk@0.49.0 ts-sdk-node@0.40.0 claude-code@2.1.104 claude-code-bun@2.1.104
VERSIONS_STAMP := $(STAMPS)/versions-$(shell echo '$(SUITE_VERSIONS)' | sha1sum | cut -c1-12)-$(shell echo "$${STREAMCHAOS_CACHE_DIR:-$$HOME/.cache/streamchaos}" | sha1sum | cut -c1-8)
.PHONY: versions
versions: $(VERSIONS_STAMP)
$(VERSIONS_STAMP): $(PY_STAMP) $(JS_STAMP)
	$(BIN)/streamchaos setup --no-toxiproxy --clients $(SUITE_VERSIONS)
	@rm -f $(STAMPS)/versions-*; touch $@
# The OpenAI SDK for TypeScript and the Vercel AI SDK (ai + @ai-sdk/openai), pinned by their lock.
$(OPENAI_JS_STAMP):
	@mkdir -p $(STAMPS)
	cd harness/clients/openai_js && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(STAMPS)/openai-js-*; touch $@

run: setup
	$(BIN)/streamchaos run --max-trials 3 --workers 4

# Lint (ruff), format check (ruff format), type check (mypy) and layering (import-linter), all
# configured in pyproject.toml; `make test` runs it first so a wrong import fails in seconds.
LINT_PATHS := simulator harness tests benchmarks examples
.PHONY: lint
lint: python
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/python -m pytest -q -m "not study"

# The load studies (metastability, the backoff study): minutes of CPU, numbers also in `make bench`.
.PHONY: test-studies
test-studies: setup
	$(BIN)/python -m pytest -q -m study

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(TOOLS) results/*/

# The report's checks and replay's bundle: Debian's chromium (headless), tcpdump and tshark, and
# playwright-core (npm) to drive Chromium from the tests.
BROWSER_STAMP := $(STAMPS)/browser-$(shell cat tests/browser/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)
report-tools: $(BROWSER_STAMP)
$(BROWSER_STAMP):
	@mkdir -p $(STAMPS)
	@missing=""; for tool in chromium tcpdump tshark; do command -v $$tool >/dev/null || test -x /usr/sbin/$$tool || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $$missing; \
	fi
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	@rm -f $(STAMPS)/browser-*; touch $@
# The network lab (harness/lab): `ip` (iproute2), `nft` (nftables) and `ss`, from Debian packages when
# missing. The stamp is made only once `nft` runs; without root the lab tests skip (fail under CI=true).
LAB_STAMP := $(STAMPS)/lab-nft
lab: $(LAB_STAMP)
$(LAB_STAMP):
	@mkdir -p $(STAMPS)
	@if ! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1 || ! command -v ss >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables iproute2 >/dev/null || \
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables iproute2 >/dev/null; }; \
		else echo "network lab: install nftables and iproute2 (apt-get install nftables iproute2) as root"; fi; \
	fi
	@if nft --version >/dev/null 2>&1; then touch $@; else echo "network lab: nft not usable; lab tests will skip (fail under CI=true)"; fi
