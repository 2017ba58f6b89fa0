#!/bin/sh
# The official MCP conformance suite in client mode, with `goosed mcp conformance` as the client:
# the scenarios goosed must pass, then the authorization suites.
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
# authorization: the auth suite, the machine clients' (extensions: client credentials with a secret
# or a signed JWT) and MCP 2025-03-26's (backcompat), every scenario passing
for s in auth extensions backcompat; do
    suite --suite "$s" >"$work/$s.log" 2>&1 || { cat "$work/$s.log"; echo "conformance: the $s suite failed" >&2; exit 1; }
    echo "conformance: the $s suite passed ($(grep -c '^✓' "$work/$s.log") scenarios)"
done
# a client registered beforehand, given to `goosed mcp` on its command line as a user does
# (--client-id with --client-secret-env or --client-key), the browser played by given-client.mjs
for s in auth/pre-registration auth/client-credentials-basic auth/client-credentials-jwt; do
    log="$work/given-$(basename "$s").log"
    npx --prefix "$root" --no-install conformance client \
        --command "node $root/tests/conformance/given-client.mjs $bin" --scenario "$s" >"$log" 2>&1 ||
        { cat "$log"; echo "conformance: $s with the client given on the command line failed" >&2; exit 1; }
    echo "conformance: $s passed with the client given on the command line"
done
