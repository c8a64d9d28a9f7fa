#!/usr/bin/env bash
# Install what aigw needs to build and test on a fresh Debian 12 machine (run as root).
# Idempotent: apt-get update only when a package is missing; installs only the missing ones;
# `npm ci` in tests/integration only when node_modules is missing or older than the lockfile.
# Quiet unless something fails (then the captured output is printed). AIGW_DEPS_VERBOSE=1 to see all.
set -eu

ROOT=$(CDPATH="" cd -- "$(dirname -- "$0")/.." && pwd)
LOG=$(mktemp "${TMPDIR:-/tmp}/aigw-deps.XXXXXX")
trap 'rm -f "$LOG"' EXIT

run() {
    if [ "${AIGW_DEPS_VERBOSE:-0}" = 1 ]; then
        "$@"
    elif ! "$@" >"$LOG" 2>&1; then
        echo "deps.sh: failed: $*" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev libevent-dev libcurl4-openssl-dev
libssl-dev zlib1g-dev libcjson-dev liblua5.4-dev libhiredis-dev nginx-light wrk redis-server abigail-tools"
if ! command -v node >/dev/null 2>&1; then
    PKGS="$PKGS nodejs npm"
elif ! command -v npm >/dev/null 2>&1; then
    PKGS="$PKGS npm"
fi

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

MISSING=""
for p in $PKGS; do
    installed "$p" || MISSING="$MISSING $p"
done

if [ -n "$MISSING" ]; then
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
            echo "deps.sh: missing packages:$MISSING (run as root)" >&2
            exit 1
        fi
    else
        SUDO=
    fi
    export DEBIAN_FRONTEND=noninteractive
    run $SUDO apt-get update
    # shellcheck disable=SC2086
    run $SUDO apt-get install -y --no-install-recommends $MISSING
fi

# Node test dependencies (the official SDKs), pinned by tests/integration/package-lock.json.
IT="$ROOT/tests/integration"
if [ -f "$IT/package.json" ]; then
    STAMP="$IT/node_modules/.package-lock.json"
    if [ ! -d "$IT/node_modules" ] || [ ! -f "$STAMP" ] ||
       [ "$IT/package-lock.json" -nt "$STAMP" ] || [ "$IT/package.json" -nt "$STAMP" ]; then
        if [ -f "$IT/package-lock.json" ]; then
            run sh -c "cd '$IT' && npm ci --no-audit --no-fund"
        else
            run sh -c "cd '$IT' && npm install --no-audit --no-fund"
        fi
    fi
fi
