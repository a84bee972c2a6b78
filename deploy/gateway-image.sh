#!/usr/bin/env bash
# Builds (and with --push pushes) the tg-gateway image the model names:
# IMAGE_REPOSITORY:<version of gateway/Cargo.toml> (a test checks stack.toml agrees).
#   bash deploy/gateway-image.sh [--binary PATH] [--base IMAGE] [--tag IMAGE] [--push]
# Without --binary it runs `cargo build --release -p tg-gateway` first. The context holds
# only the Dockerfile and the binary.
set -euo pipefail
IMAGE_REPOSITORY=ghcr.io/tgstack/tg-gateway
root=$(cd "$(dirname "$0")/.." && pwd)
binary="" base=debian:bookworm-slim tag="" push=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --push) push=1; shift ;;
    *) echo "usage: $0 [--binary PATH] [--base IMAGE] [--tag IMAGE] [--push]" >&2; exit 2 ;;
  esac
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/gateway/Cargo.toml" | head -n1)
tag=${tag:-$IMAGE_REPOSITORY:$version}
if [ -z "$binary" ]; then
  (cd "$root" && cargo build --release -p tg-gateway)
  binary="${CARGO_TARGET_DIR:-$root/target}/release/tg-gateway"
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$root/gateway/Dockerfile" "$context/Dockerfile"
cp "$binary" "$context/tg-gateway"
docker build --quiet --build-arg BASE_IMAGE="$base" --build-arg BINARY=tg-gateway \
  --label org.opencontainers.image.version="$version" -t "$tag" "$context" >/dev/null
echo "$tag"
if [ "$push" = 1 ]; then
  docker push "$tag"
fi
