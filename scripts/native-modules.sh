#!/usr/bin/env bash
# Builds the sensor daemon's run-time packages (daemon/package.json "dependencies" and
# "optionalDependencies": better-sqlite3, sd-notify, node-record-lpcm16) for another CPU, on
# the controller, in a container of that arch with the Node.js version the sensors run:
#
#   scripts/native-modules.sh arm64 22.12.0 build/arm64
#   npm run release -- --arch arm64 --native-modules build/arm64/node_modules
#
# Needs docker or podman; on an x86-64 controller also QEMU user emulation for arm64
# (Debian/Ubuntu: apt install qemu-user-static binfmt-support). On an arm64 machine (a Pi 4/5
# with 64-bit Raspberry Pi OS, an arm64 server) it runs natively. better-sqlite3's install
# downloads its prebuilt binary for that arch and Node ABI from its GitHub release when it can
# reach it, and compiles it otherwise (the node:<version>-bookworm image has the compilers);
# sd-notify always compiles (against libsystemd-dev). The result records the arch and Node ABI
# (node_modules/.screamwatch-native.json), which the release and the playbook check.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 ARCH NODE_VERSION OUTDIR   (ARCH: arm64 or x64; NODE_VERSION e.g. 22.12.0)" >&2
  exit 2
fi
arch=$1 node_version=$2 out=$3
case "$arch" in
  arm64) platform=linux/arm64 ;;
  x64) platform=linux/amd64 ;;
  *) echo "$0: unsupported arch $arch (arm64 or x64)" >&2; exit 2 ;;
esac
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
engine="$(command -v docker || command -v podman || true)"
[ -n "$engine" ] || { echo "$0: needs docker or podman" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
"$engine" run --rm --platform "$platform" \
  -v "$repo/daemon/package.json:/src/package.json:ro" -v "$out:/out" \
  "docker.io/library/node:$node_version-bookworm" sh -ec '
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends libsystemd-dev >/dev/null
    mkdir /build && cd /build
    # the run-time dependencies only: devDependencies are bundled into dist/daemon.mjs
    node -e "const p = require(\"/src/package.json\"); delete p.devDependencies; require(\"fs\").writeFileSync(\"package.json\", JSON.stringify(p))"
    npm install --omit=dev --no-audit --no-fund
    node -e "require(\"better-sqlite3\")(\":memory:\").close(); require(\"sd-notify\")"
    node -e "require(\"fs\").writeFileSync(\"node_modules/.screamwatch-native.json\", JSON.stringify({ arch: process.arch, node: process.version, modules: process.versions.modules }))"
    rm -rf /out/node_modules && cp -a node_modules /out/'
echo "native modules for linux-$arch, Node $node_version: $out/node_modules"
echo "next: npm run release -- --arch $arch --native-modules $out/node_modules"
