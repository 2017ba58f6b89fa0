#!/usr/bin/env bash
# Installs what goosed needs on Debian 12, idempotently and quietly when all is present.
#   scripts/deps.sh build   compiler, CMake and the libraries goosed links
#   scripts/deps.sh test    build + cmocka + Node, the npm packages of package-lock.json, nginx
#                          (the trusted-proxy tests run goosed behind it) and openssl (the TLS
#                          tests make their certificates with it), prometheus (it scrapes
#                          GET /metrics in tests/api/prometheus.test.mjs)
#   scripts/deps.sh bench   build + wrk and nginx (the benchmark's reference server)
#   scripts/deps.sh deploy  test + what `make deploy-test` uses: buildah and debootstrap (the
#                          container image built from deploy/Dockerfile and run), systemd
#                          (systemd-analyze verify), curl (the Kubernetes readiness probe's
#                          command, run against goosed)
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-build}
# bubblewrap: shell commands and stdio extensions run under bwrap (without it goosed refuses to
# run tools unless `sandbox: off`). slirp4netns: their network, without the host's loopback (without
# it they get none, unless `tool_network: host`).
# libedit-dev: the line editor of `goose session`'s chat.
# libgnutls28-dev: goosed's own TLS (the certificate checked, the self-signed one made, HTTPS
# served by its own HTTP engine).
pkgs=(gcc make cmake pkg-config libjansson-dev libyaml-dev libsqlite3-dev
      libsodium-dev libcurl4-openssl-dev libwslay-dev libcmocka-dev bubblewrap slirp4netns
      libgnutls28-dev libedit-dev)
case $what in
  build) ;;
  test)  pkgs+=(util-linux clang-format sqlite3 nginx-light openssl tmux prometheus) ;;
  bench) pkgs+=(wrk nginx-light sqlite3) ;;
  deploy) pkgs+=(util-linux clang-format sqlite3 nginx-light openssl tmux prometheus buildah
                 debootstrap systemd curl) ;;
  *) echo "usage: $0 build|test|bench|deploy" >&2; exit 2 ;;
esac
case $what in test | deploy) command -v node >/dev/null || pkgs+=(nodejs npm) ;; esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$what" = test ] || [ "$what" = deploy ]; then
  # npm ci only when node_modules is absent or older than the lock file.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "deps: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
