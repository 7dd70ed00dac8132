#!/bin/sh
# Fetches Apache ECharts from the npm registry at the pinned version and copies the
# minified browser build and its licence files into crates/analytics-server/web/vendor,
# where the dashboard's files are compiled into the binary from. Run it again only to
# change the version (and update ECHARTS_VERSION in the server's assets.rs).
#
#   scripts/vendor-echarts.sh
set -eu

VERSION=5.6.0
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/crates/analytics-server/web/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
# `npm pack` checks the tarball against the registry's integrity hash.
npm pack --silent "echarts@$VERSION" > /dev/null
tar -xzf "echarts-$VERSION.tgz"
mkdir -p "$out"
cp package/dist/echarts.min.js "$out/echarts.min.js"
cp package/LICENSE "$out/echarts.LICENSE"
cp package/NOTICE "$out/echarts.NOTICE" 2> /dev/null || true
sha256sum "$out/echarts.min.js" | sed "s|$out/||" > "$out/echarts.min.js.sha256"
echo "echarts $VERSION vendored into $out"
