#!/usr/bin/env bash
# Builds the images of the end-to-end test once per machine and prints them as
# `NAME=IMAGE` lines: the Debian base (debootstrap, rootfs cached), every stand-in, the
# systemd image and (with --gateway-binary PATH) the gateway image from gateway/Dockerfile.
# With --newcomer: the base and the newcomer image only (a bare Debian with a C linker, in
# which tests/getting_started.rs follows docs/getting-started.md).
# Each image is tagged by a hash of its inputs and rebuilt only when they change.
#   bash deploy/e2e/images.sh [--gateway-binary PATH | --newcomer]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${TGSTACK_E2E_CACHE:-/var/cache/tgstack-e2e}
PREFIX=tgstack-e2e
SUITE=bookworm
STANDINS=(timescaledb pgbouncer redis rabbitmq prometheus postgres-exporter redis-exporter pgbouncer-exporter node-exporter systemd)

gateway_binary=""
newcomer=0
case "${1:-}" in
  --gateway-binary) gateway_binary=$2 ;;
  --newcomer) newcomer=1 ;;
  "") ;;
  *) echo "usage: images.sh [--gateway-binary PATH | --newcomer]" >&2; exit 2 ;;
esac

log() { printf 'images: %s\n' "$*" >&2; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }
hash_of() { sha256sum "$@" | sha256sum | cut -c1-12; }

if ! docker info >/dev/null 2>&1; then
  echo "docker does not answer: run 'bash scripts/test-env.sh' (installs docker.io and starts dockerd)" >&2
  exit 1
fi
mkdir -p "$CACHE"

# 1. The base: debootstrap minbase from the machine's Debian mirror, imported.
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
base="$PREFIX/debian:$SUITE-$(printf '%s %s' "$SUITE" "$mirror" | sha256sum | cut -c1-12)"
if ! has_image "$base"; then
  tarball="$CACHE/$SUITE-minbase.tar"
  if [ ! -s "$tarball" ]; then
    log "debootstrap $SUITE from $mirror (about a minute)"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -n 20 "$CACHE/debootstrap.log" >&2; rm -rf "$rootfs"; exit 1; }
    tar -C "$rootfs" -c . >"$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing $base"
  docker import - "$base" <"$tarball" >/dev/null
fi
echo "base=$base"

if [ "$newcomer" = 1 ]; then
  image="$PREFIX/newcomer:$(hash_of "$here/newcomer.Dockerfile" <(echo "$base"))"
  if ! has_image "$image"; then
    log "building $image"
    docker build --build-arg BASE="$base" -t "$image" -f "$here/newcomer.Dockerfile" "$here" \
      >"$CACHE/build-newcomer.log" 2>&1 || { tail -n 30 "$CACHE/build-newcomer.log" >&2; exit 1; }
  fi
  echo "newcomer=$image"
  exit 0
fi

# 2. The stand-ins and the systemd image: targets of one Dockerfile.
standin_hash=$(cd "$here/standins" && hash_of Dockerfile bin/* <(echo "$base"))
for target in "${STANDINS[@]}"; do
  image="$PREFIX/$target:$standin_hash"
  if ! has_image "$image"; then
    log "building $image"
    docker build --build-arg BASE="$base" --target "$target" -t "$image" \
      "$here/standins" >"$CACHE/build-$target.log" 2>&1 \
      || { tail -n 30 "$CACHE/build-$target.log" >&2; exit 1; }
  fi
  echo "$target=$image"
done

# 3. The gateway image from the project's Dockerfile and the given binary.
if [ -n "$gateway_binary" ]; then
  gateway_hash=$(hash_of "$root/gateway/Dockerfile" "$gateway_binary" <(echo "$base"))
  image="$PREFIX/tg-gateway:$gateway_hash"
  if ! has_image "$image"; then
    log "building $image"
    bash "$root/deploy/gateway-image.sh" --binary "$gateway_binary" --base "$base" --tag "$image" \
      >"$CACHE/build-tg-gateway.log" 2>&1 || { tail -n 30 "$CACHE/build-tg-gateway.log" >&2; exit 1; }
  fi
  # Every build of the binary makes a new tag: drop the older ones (one in use stays).
  docker images --format '{{.Repository}}:{{.Tag}}' "$PREFIX/tg-gateway" | grep -vxF "$image" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
  echo "tg-gateway=$image"
fi
