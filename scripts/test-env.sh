#!/usr/bin/env bash
# Installs and starts everything the test suite needs. Idempotent: safe to run again.
# Used by scripts/test.sh (and so by CI); run it alone to prepare a fresh machine.
set -euo pipefail

# Debian packages the real-program tests start or call.
PACKAGES=(pgbouncer prometheus redis-server redis-sentinel rabbitmq-server postgresql postgresql-client shellcheck plantuml systemd nginx man-db graphviz)
# The whole-stack scenario (gateway/tests/e2e_stack.rs) also needs Docker Engine, Compose
# and debootstrap; TGSTACK_E2E=0 leaves them out (that test then fails, saying so).
E2E=${TGSTACK_E2E:-1}
if [ "$E2E" = 1 ]; then
  PACKAGES+=(docker.io docker-compose debootstrap)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# schemathesis (PyPI), pinned, in a venv of its own: the API fuzz test (gateway/tests/api.rs)
# runs it against gateway/openapi.yaml.
TOOLS=/opt/tgstack-tools
SCHEMATHESIS_VERSION=4.32.5
if ! "$TOOLS/bin/st" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  echo "installing: schemathesis $SCHEMATHESIS_VERSION into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
# taplo (PyPI wheel, pinned) in the same venv: stack.toml and the examples must pass
# `taplo fmt --check` and `taplo lint` against schemas/stack.schema.json (tests/cli.rs).
TAPLO_VERSION=0.9.3
if ! "$TOOLS/bin/taplo" --version 2>/dev/null | grep -qF "$TAPLO_VERSION"; then
  echo "installing: taplo $TAPLO_VERSION into $TOOLS"
  [ -x "$TOOLS/bin/pip" ] || python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check "taplo==$TAPLO_VERSION"
fi
# The SARIF 2.1.0 JSON Schema (OASIS, errata 01 / rtm.5) as Microsoft's @microsoft/jest-sarif
# npm package ships it: the SARIF output test (tests/cli.rs) validates against it.
SARIF_PACKAGE=@microsoft/jest-sarif@1.0.0-beta.0
SARIF_SCHEMA=$TOOLS/sarif/sarif-2.1.0-rtm.5.json
if [ ! -s "$SARIF_SCHEMA" ]; then
  echo "installing: the SARIF 2.1.0 schema from $SARIF_PACKAGE into $TOOLS/sarif"
  command -v npm >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends npm >/dev/null; }
  scratch=$(mktemp -d)
  (cd "$scratch" && npm pack --silent "$SARIF_PACKAGE" >/dev/null)
  tar -xzf "$scratch"/*.tgz -C "$scratch" package/lib/schemas/sarif-2.1.0-rtm.5.json
  mkdir -p "$TOOLS/sarif"
  mv "$scratch/package/lib/schemas/sarif-2.1.0-rtm.5.json" "$SARIF_SCHEMA"
  rm -rf "$scratch"
fi
# Debian starts these services on install; the tests start private instances instead.
for svc in pgbouncer prometheus redis-sentinel; do
  pkill -f "^/usr/(s)?bin/$svc" 2>/dev/null || true
done
pkill -f "^nginx: master process /usr/sbin/nginx$" 2>/dev/null || true

# The shared servers the tests talk to: start whichever is not running.
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  rabbitmq-server -detached
fi

# Wait until each answers (bounded).
for i in $(seq 1 60); do
  pg_isready -h 127.0.0.1 -p 5432 -q && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 \
    && rabbitmqctl -q await_startup >/dev/null 2>&1 && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis did not start" >&2; exit 1; }
rabbitmqctl -q await_startup || { echo "RabbitMQ did not start" >&2; exit 1; }
# Docker Engine for the end-to-end test (gateway/tests/e2e_stack.rs): no systemd here, so
# start dockerd when its socket does not answer.
if [ "$E2E" = 1 ] && ! docker info >/dev/null 2>&1; then
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 30); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start (see /var/log/dockerd.log)" >&2; exit 1; }
fi
echo "test environment ready"
