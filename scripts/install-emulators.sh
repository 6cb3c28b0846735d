#!/usr/bin/env bash
# Installs the AWS emulators the integration tests run against, from the npm
# registry, at pinned versions, into <repo>/.cache/emulators (git-ignored):
#
#   kinesis-local  (kinesis-mock, Scala.js build: `node main.js`)
#   kinesalite     (Kinesis on LevelDB, needs the leveldown native module)
#   dynalite       (DynamoDB on LevelDB, needs the classic-level native module)
#
# Each package gets its own folder <cache>/<name>/ with its own node_modules,
# so versions never clash. Idempotent: a package whose installed version
# matches the pin is skipped. Needs node >= 20 and npm; nothing else on
# machines where the native modules' prebuilt binaries fit (linux-x64/arm64),
# otherwise make + a C++ compiler + python3 for node-gyp.
#
# Usage: scripts/install-emulators.sh [--force]
# Env:   EMULATORS_DIR overrides the cache folder.
set -euo pipefail

KINESIS_LOCAL_VERSION=0.6.2
KINESALITE_VERSION=3.3.3
DYNALITE_VERSION=4.0.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EMULATORS_DIR:-$root/.cache/emulators}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

die() { echo "install-emulators: $*" >&2; exit 1; }

command -v node >/dev/null || die "node not found: install Node.js 20+ (apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm not found: install npm (apt-get install npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
(( node_major >= 20 )) || die "node $(node --version) is too old: need 20+"

installed_version() { # name -> version or empty
  local pj="$cache/$1/node_modules/$1/package.json"
  [[ -f "$pj" ]] && node -p "require('$pj').version" 2>/dev/null || true
}

# check_native name module: loads the LevelDB binding (node-gyp-build picks
# the prebuilt or built .node at require time); fails loudly if neither a prebuilt binary nor a local build exists.
check_native() {
  local dir="$cache/$1" mod="$2"
  (cd "$dir" && node -e "require('$mod')") || return 1
}

# build_native name module: npm 11 does not run install scripts unless
# approved, so node-gyp-build's fallback compile never ran; do it by hand.
build_native() {
  local dir="$cache/$1/node_modules/$2"
  echo "install-emulators: no usable prebuilt $2 for $(node -p 'process.platform+"-"+process.arch'); building from source" >&2
  (cd "$dir" && npx --yes node-gyp@10 rebuild) || die "build $2 for $1 failed: install make, g++ and python3, then rerun"
}

install_pkg() { # name version native-module
  local name="$1" version="$2" native="${3:-}"
  local have
  have="$(installed_version "$name")"
  if [[ "$force" == 0 && "$have" == "$version" ]]; then
    if [[ -z "$native" ]] || check_native "$name" "$native" 2>/dev/null; then
      echo "install-emulators: $name@$version already installed"
      return
    fi
  fi
  echo "install-emulators: installing $name@$version into $cache/$name"
  rm -rf "$cache/$name"
  mkdir -p "$cache/$name"
  printf '{"name":"emulator-%s","private":true}\n' "$name" >"$cache/$name/package.json"
  (cd "$cache/$name" && npm install --no-audit --no-fund --save-exact --loglevel=error "$name@$version") \
    || die "npm install $name@$version failed"
  have="$(installed_version "$name")"
  [[ "$have" == "$version" ]] || die "$name installed as '$have', want $version"
  if [[ -n "$native" ]] && ! check_native "$name" "$native"; then
    build_native "$name" "$native"
    check_native "$name" "$native" || die "$native for $name still does not load after building"
  fi
}

mkdir -p "$cache"
# Test binaries of several packages may run this at once: one installer at a time.
if command -v flock >/dev/null; then
  exec 9>"$cache/.install.lock"
  flock 9
fi
install_pkg kinesis-local "$KINESIS_LOCAL_VERSION"
install_pkg kinesalite "$KINESALITE_VERSION" leveldown
install_pkg dynalite "$DYNALITE_VERSION" classic-level

[[ -f "$cache/kinesis-local/node_modules/kinesis-local/main.js" ]] || die "kinesis-local main.js missing"
echo "install-emulators: ok ($cache)"
