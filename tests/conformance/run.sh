#!/bin/sh
# The official MCP conformance suite in client mode, with `goosed mcp conformance` as the client:
# the scenarios goosed must pass, then the auth suite against its expected failures.
# usage: tests/conformance/run.sh GOOSED_BIN
set -eu
bin=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! "$bin" mcp 2>&1 | grep -q 'mcp conformance'; then
    echo "conformance: skipped, $bin has no 'mcp conformance' command" >&2
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" # the suite writes its results/ into the working directory
suite() {
    npx --prefix "$root" --no-install conformance client --command "$bin mcp conformance" "$@"
}
for s in initialize tools_call sse-retry elicitation-sep1034-client-defaults; do
    suite --scenario "$s" >"$work/$s.log" 2>&1 || { cat "$work/$s.log"; echo "conformance: $s failed" >&2; exit 1; }
    echo "conformance: $s passed"
done
suite --suite auth --expected-failures "$root/tests/conformance/auth-expected-failures.yml" \
    >"$work/auth.log" 2>&1 || { cat "$work/auth.log"; echo "conformance: the auth suite differs from auth-expected-failures.yml" >&2; exit 1; }
echo "conformance: the auth suite matches auth-expected-failures.yml"
