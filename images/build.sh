#!/usr/bin/env bash
# Builds the whole NodeOS image into OUT_DIR (default build/image):
#   vmlinux, bzImage  the kernel (cached outside the repo, see kernel/build.sh);
#                      both runners boot vmlinux: QEMU loads the uncompressed
#                      ELF and enters it through PVH, which saves the firmware's
#                      copy and the LZ4 decompression (~150 ms under TCG)
#   rootfs.erofs       the read-only JavaScript root
#   cmdline            the default kernel command line
#   manifest.json      versions, sizes and the image hash
# A second run with unchanged inputs does nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:-$root/build/image}
node_dir=$root/build/node
mkdir -p "$out"

"$here/fetch-node.sh" "$node_dir"
"$here/kernel/build.sh" "$out"
# Each kernel input change leaves a 14 MB entry in the cache: keep the one
# this image uses and the two used most recently before it.
kernel_cache=${NODEOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodeos}/kernel
touch "$kernel_cache/$(cat "$out/kernel.sha256")"
find "$kernel_cache" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' -printf '%T@ %p\n' | sort -rn | tail -n +4 | cut -d' ' -f2- |
  while read -r old; do echo "kernel: pruning the cached build $(basename "$old")"; rm -rf "$old"; done

# The rootfs is rebuilt only when something that goes into it changed.
rootfs_key=$( { cat "$here/node.lock" "$here/build-rootfs.sh" "$here/bundle-init.js" "$here/init-snapshot.js" "$here/addon/nodeos.c"; (cd "$here/rootfs" && find . -type f | LC_ALL=C sort | xargs sha256sum); ldd "$node_dir/bin/node" | awk '{print $3}' | xargs -r readlink -f | xargs -r sha256sum; } | sha256sum | cut -c1-16)
if [ -f "$out/rootfs.erofs" ] && [ "$(cat "$out/rootfs.key" 2>/dev/null)" = "$rootfs_key" ]; then
  echo "rootfs: up to date ($rootfs_key)"
else
  "$here/build-rootfs.sh" "$node_dir" "$out"
  echo "$rootfs_key" > "$out/rootfs.key"
fi

# quiet: the serial console costs time per byte under TCG, and init prints
# what a person needs. 8250.nr_uarts=1: probe one port, not four.
# acpi=noirq: routing each virtio device's legacy INTx through ACPI's AML took
# ~0.7 s per device under TCG (3.25 s to init, 1.07 s without); virtio-pci
# uses MSI-X and needs no INTx.
# The next three were found by sampling the guest's instruction pointer through
# QEMU's monitor during boots (System.map names the addresses):
# noreplace-smp: on one vCPU the kernel otherwise rewrites every lock prefix
# with text_poke, two page-table switches each, each a full TLB flush under
# TCG (~150 ms). lapic_timer_period (images/kernel/patches/0001): QEMU's and
# KVM's local APIC count at 1 GHz, so the period per jiffy is 1e9/HZ and need
# not be calibrated (~120 ms). keep_initmem (patches/0002): freeing init code
# poisons it, and under TCG every store into code that ran first discards its
# translations (~440 ms for 744 KiB).
# NODE_OPTIONS: the kernel hands parameters it does not know to init as
# environment variables, and this one makes node start /sbin/init from init's
# startup snapshot (bundle-init.js says why); without it /sbin/init runs as a
# script, only slower.
hz=$(sed -n 's/^CONFIG_HZ=//p' "$out/.config")
cmdline="console=ttyS0 root=/dev/vda ro rootfstype=erofs init=/sbin/init quiet acpi=noirq 8250.nr_uarts=1 tsc=reliable no_timer_check noreplace-smp lapic_timer_period=$((1000000000 / hz)) keep_initmem NODE_OPTIONS=--snapshot-blob=/lib/nodeos/init.blob"
echo "$cmdline" > "$out/cmdline"

kernel_version=$(grep -m1 -o 'Linux/x86 [0-9.]*' "$out/.config" | cut -d' ' -f2)
node_version=$("$node_dir/bin/node" --version)
image_hash=$(cat "$out/vmlinux" "$out/rootfs.erofs" "$out/cmdline" | sha256sum | cut -c1-16)
cat > "$out/manifest.json" <<JSON
{
  "imageHash": "$image_hash",
  "kernelVersion": "$kernel_version",
  "nodeVersion": "$node_version",
  "kernel": "vmlinux",
  "bzImage": "bzImage",
  "rootfs": "rootfs.erofs",
  "cmdline": "$cmdline",
  "kernelBytes": $(stat -c %s "$out/vmlinux"),
  "rootfsBytes": $(stat -c %s "$out/rootfs.erofs")
}
JSON
echo "image: $out (hash $image_hash, kernel $(stat -c %s "$out/vmlinux") B, rootfs $(stat -c %s "$out/rootfs.erofs") B)"
