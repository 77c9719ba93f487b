#!/usr/bin/env bash
# Install toxiproxy-server and toxiproxy-cli: reuse one on PATH that reports >= the wanted version,
# else `go install` the pinned version (its /version stamped) into the given directory.
set -euo pipefail
want="$1"; dest="$2"
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

if [ -x "$dest/toxiproxy-server" ] && [ -x "$dest/toxiproxy-cli" ]; then
  exit 0
fi
if command -v toxiproxy-server >/dev/null 2>&1; then
  have=$(toxiproxy-server -version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)
  if [ -n "$have" ] && version_ge "$have" "$want"; then
    ln -sf "$(command -v toxiproxy-server)" "$dest/toxiproxy-server"
    command -v toxiproxy-cli >/dev/null 2>&1 && ln -sf "$(command -v toxiproxy-cli)" "$dest/toxiproxy-cli"
    echo "toxiproxy: using toxiproxy-server $have from PATH"
    exit 0
  fi
fi
if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
toxiproxy: no toxiproxy-server >= $want on PATH and no Go toolchain to build it.
  Install Go >= 1.23 (https://go.dev/doc/install) and run 'make setup' again, or put a
  toxiproxy-server >= $want on PATH. Scenarios without toxics still run; the others are skipped.
MSG
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags="-X github.com/Shopify/toxiproxy/v2.Version=$want"
echo "toxiproxy: go install v$want"
(cd "$work" && GOBIN="$work" GOFLAGS=-mod=mod go install -ldflags "$flags" "github.com/Shopify/toxiproxy/v2/cmd/server@v$want" \
  && GOBIN="$work" go install -ldflags "$flags" "github.com/Shopify/toxiproxy/v2/cmd/cli@v$want")
mv "$work/server" "$dest/toxiproxy-server"
mv "$work/cli" "$dest/toxiproxy-cli"
"$dest/toxiproxy-server" -version
