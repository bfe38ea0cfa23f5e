#!/usr/bin/env bash
# Assembles NodeOS's read-only root and packs it as erofs (no root privileges):
# node and npm from the pinned wheel, glibc and libstdc++ from this host, the
# JavaScript system in images/rootfs, and the native addon built here.
#
#   images/build-rootfs.sh NODE_DIR OUT_DIR
#
# NODE_DIR is the unpacked wheel (images/fetch-node.sh). OUT_DIR receives
# rootfs.erofs and nodeos.node.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node_dir=${1:?usage: build-rootfs.sh NODE_DIR OUT_DIR}
out=${2:?usage: build-rootfs.sh NODE_DIR OUT_DIR}
mkdir -p "$out"
stage=$(mktemp -d "${TMPDIR:-/tmp}/nodeos-rootfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT

echo "rootfs: building the native addon"
cc -O2 -Wall -Wextra -Werror -shared -fPIC -DNODE_GYP_MODULE_NAME=nodeos \
  -I "$node_dir/include/node" -o "$out/nodeos.node" "$here/addon/nodeos.c"

echo "rootfs: staging"
cp -a "$here/rootfs/." "$stage/"
find "$stage" -name '.gitkeep' -delete
mkdir -p "$stage"/{proc,sys,dev,run,tmp,var,etc,home,root,mnt,lib64,lib/x86_64-linux-gnu}
install -m 0755 "$node_dir/bin/node" "$stage/bin/node"
strip --strip-unneeded "$stage/bin/node"
mkdir -p "$stage/lib/node_modules"
cp -a "$node_dir/lib/node_modules/npm" "$stage/lib/node_modules/npm"
# Documentation and Windows shims are never read on NodeOS.
rm -rf "$stage/lib/node_modules/npm/"{docs,man} "$stage/lib/node_modules/npm/bin/"*.{cmd,ps1}
install -m 0644 "$out/nodeos.node" "$stage/lib/nodeos/nodeos.node"
# init's boot path, bundled, as a startup snapshot and as /sbin/init with a code
# cache (bundle-init.js says why). After node is staged: the staged node makes both.
"$node_dir/bin/node" "$here/bundle-init.js" "$stage"

# The shared libraries node needs, resolved on this host.
for lib in $(ldd "$node_dir/bin/node" | awk '/=>/ { print $3 } /ld-linux/ && !/=>/ { print $1 }'); do
  real=$(readlink -f "$lib")
  case "$lib" in
    */ld-linux-x86-64.so.2) install -m 0755 "$real" "$stage/lib64/ld-linux-x86-64.so.2" ;;
    *) install -m 0755 "$real" "$stage/lib/x86_64-linux-gnu/$(basename "$lib")" ;;
  esac
done

cat > "$stage/lib/os-release" <<OS
NAME=NodeOS
ID=nodeos
PRETTY_NAME="NodeOS (node $("$node_dir/bin/node" --version))"
OS

echo "rootfs: packing erofs"
rm -f "$out/rootfs.erofs.tmp"
mkfs.erofs --quiet --all-root -T 0 -U 6e6f6465-6f73-4000-8000-000000000001 "$out/rootfs.erofs.tmp" "$stage"
mv "$out/rootfs.erofs.tmp" "$out/rootfs.erofs"
echo "rootfs: $(stat -c %s "$out/rootfs.erofs") bytes"
