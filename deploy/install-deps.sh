#!/usr/bin/env bash
# deploy/install-deps.sh - owns the list of Debian (12, bookworm) packages the
# project needs to build, test and run its local services. Installs only what
# is missing; runs `apt-get update` at most once, and only if something is
# missing. Java and Maven are only installed when `java`/`mvn` are not on PATH.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"

log() { printf 'install-deps.sh: %s\n' "$*" >&2; }
die() { printf 'install-deps.sh: error: %s\n' "$*" >&2; exit 1; }

PKGS=(
    # build
    build-essential cmake pkg-config ninja-build clang clang-format
    # libraries (found through pkg-config)
    libuv1-dev librdkafka-dev libhiredis-dev libjansson-dev
    # services and their clients
    redis-server redis-tools kafkacat
    # test tooling
    python3 python3-jsonschema python3-confluent-kafka python3-redis python3-yaml
    # clang's libFuzzer and sanitizer runtimes (tests/fuzz: on bookworm clang-14 neither
    # depends on nor recommends libclang-rt-14-dev), and valgrind for the leak check of a
    # graceful shutdown (tests/e2e/test_valgrind_e2e.py)
    libclang-rt-dev valgrind
    # the live view's browser test (tests/browser), headless
    chromium
)
command -v java >/dev/null 2>&1 || PKGS+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || PKGS+=(maven)

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    die "dpkg-query/apt-get not found: this script supports Debian/Ubuntu only"
fi

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${PKGS[@]}"; do
    installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    log "all ${#PKGS[@]} packages already installed"
    exit 0
fi

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo; install as root: ${missing[*]}"
    SUDO=(sudo)
fi

log "missing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
    || die "apt-get update failed"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" || die "apt-get install failed for: ${missing[*]}"

still=()
for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
((${#still[@]} == 0)) || die "still missing after install: ${still[*]}"
log "installed: ${missing[*]}"
