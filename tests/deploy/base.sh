#!/usr/bin/env bash
# Makes the base images deploy/Dockerfile's FROM lines name, debian:bookworm and
# debian:bookworm-slim, without a registry: `debootstrap --variant=minbase bookworm` from the
# mirror this machine's apt uses, kept as a tarball under $DEPLOY_CACHE (a second run reuses it),
# imported into buildah's storage under both names.
# The storage driver is overlay when this file system can mount it (layers kept as differences),
# else vfs (a whole copy per layer); the choice is written to $DEPLOY_CACHE/driver, and the
# storage is $DEPLOY_CACHE/storage-DRIVER.
#   tests/deploy/base.sh           (env: DEPLOY_CACHE, BUILDAH_DRIVER to force one)
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${DEPLOY_CACHE:-$PWD/build/deploy}
mkdir -p "$cache"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$cache/containers.conf}
[ -f "$CONTAINERS_CONF" ] || printf '[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"

driver=${BUILDAH_DRIVER:-}
if [ -z "$driver" ]; then
  driver=vfs
  probe=(buildah --root "$cache/probe" --runroot "$cache/probe-run" --storage-driver overlay)
  if c=$("${probe[@]}" from scratch 2>/dev/null) && "${probe[@]}" mount "$c" >/dev/null 2>&1; then
    driver=overlay
  fi
  "${probe[@]}" rm --all >/dev/null 2>&1 || true
  rm -rf "$cache/probe" "$cache/probe-run" 2>/dev/null || true
fi
echo "$driver" >"$cache/driver"
B=(buildah --root "$cache/storage-$driver" --runroot "$cache/run-$driver" --storage-driver "$driver")

# The first URIs line of the apt sources that name bookworm (deb822 or one-line format).
mirror() {
  local m
  m=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

tarball=$cache/bookworm-minbase.tar
if [ ! -s "$tarball" ]; then
  tmp=$(mktemp -d "$cache/debootstrap.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  m=$(mirror)
  echo "base: debootstrap --variant=minbase bookworm from $m"
  debootstrap --variant=minbase bookworm "$tmp/root" "$m" >"$cache/debootstrap.log" 2>&1 || {
    tail -20 "$cache/debootstrap.log" >&2
    echo "base: debootstrap failed (log: $cache/debootstrap.log)" >&2
    exit 1
  }
  rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
  tar -C "$tmp/root" --numeric-owner -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  rm -rf "$tmp"
  trap - EXIT
fi

# Imported once per storage: the tarball's digest is kept as a label, so a new tarball replaces it.
sum=$(stat -c %s-%Y "$tarball")
for name in debian:bookworm debian:bookworm-slim; do
  have=$("${B[@]}" inspect --type image --format '{{index .ImageAnnotations "org.goosed.base"}}' \
    "$name" 2>/dev/null || true)
  [ "$have" = "$sum" ] && continue
  echo "base: importing $name"
  c=$("${B[@]}" from scratch)
  mnt=$("${B[@]}" mount "$c")
  tar -C "$mnt" --numeric-owner -xf "$tarball"
  "${B[@]}" umount "$c" >/dev/null
  "${B[@]}" config --annotation "org.goosed.base=$sum" --cmd /bin/bash \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
  "${B[@]}" commit --quiet --rm "$c" "$name" >/dev/null
done
