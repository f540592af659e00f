#!/usr/bin/env bash
# Run DynamoDB Local (in-memory, sharedDb, no telemetry) bound to 127.0.0.1 only.
# Usage: scripts/ddb-local/run.sh EMULATOR_DIR PORT
#   EMULATOR_DIR: directory holding DynamoDBLocal.jar and DynamoDBLocal_lib/
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 EMULATOR_DIR PORT" >&2
  exit 2
fi

EMULATOR_DIR=$(cd "$1" && pwd)
PORT=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD="$HERE/build"
SRC="$HERE/LoopbackLauncher.java"
CLASS="$BUILD/LoopbackLauncher.class"

if [ ! -f "$EMULATOR_DIR/DynamoDBLocal.jar" ] || [ ! -d "$EMULATOR_DIR/DynamoDBLocal_lib" ]; then
  echo "$0: $EMULATOR_DIR has no DynamoDBLocal.jar / DynamoDBLocal_lib" >&2
  exit 2
fi

# Java expands "dir/*" classpath entries itself, so keep them quoted.
LIBCP="$EMULATOR_DIR/DynamoDBLocal.jar:$EMULATOR_DIR/DynamoDBLocal_lib/*"

if [ ! -f "$CLASS" ] || [ "$SRC" -nt "$CLASS" ]; then
  mkdir -p "$BUILD"
  # Compile into a temp dir and move into place, so concurrent runs never see a half-written class.
  TMP=$(mktemp -d "$BUILD/.javac.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  javac -nowarn -d "$TMP" -cp "$LIBCP" "$SRC"
  mv -f "$TMP"/*.class "$BUILD/"
  rm -rf "$TMP"
  trap - EXIT
fi

# -disableTelemetry is parsed but not consulted by this DynamoDB Local build; the env var is what
# actually gates telemetry. The launcher never reaches the telemetry code anyway.
export DDB_LOCAL_TELEMETRY=0
# preferIPv4Stack: plain AF_INET socket, so the listener shows as 127.0.0.1:PORT (not [::ffff:127.0.0.1]).
exec java -Xmx2g -Djava.net.preferIPv4Stack=true -Djava.library.path="$EMULATOR_DIR/DynamoDBLocal_lib" \
  -cp "$BUILD:$LIBCP" LoopbackLauncher "$PORT"
