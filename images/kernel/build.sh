#!/usr/bin/env bash
# Builds the NodeOS kernel from Debian's linux-source-6.1 with nodeos.config on
# top of tinyconfig, and caches it outside the repository keyed by a hash of
# every input, because the build takes ~20 minutes on 2 cores.
#
#   images/kernel/build.sh OUT_DIR
#
# OUT_DIR receives bzImage, vmlinux (for PVH direct boot), .config,
# System.map (to name the addresses that initcall_debug and a sampling
# profile print: the kernel carries no kallsyms) and kernel.sha256 (the cache
# key). Set NODEOS_CACHE to move the cache.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_DIR}
cache_root=${NODEOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nodeos}
src_tar=/usr/src/linux-source-6.1.tar.xz
[ -f "$src_tar" ] || { echo "kernel: $src_tar is missing (apt-get install linux-source-6.1)" >&2; exit 2; }
command -v iasl >/dev/null || { echo "kernel: iasl is missing (apt-get install acpica-tools); it compiles images/kernel/dsdt.asl" >&2; exit 2; }

src_version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
patches=("$here"/patches/*.patch)
key=$( { echo "linux-source-6.1 $src_version"; cat "$here/nodeos.config" "$here/build.sh" "$here/dsdt.asl" "${patches[@]}"; gcc --version | head -1; } | sha256sum | cut -c1-16)
cached="$cache_root/kernel/$key"
mkdir -p "$out"

if [ -f "$cached/bzImage" ] && [ -f "$cached/vmlinux" ] && [ -f "$cached/System.map" ]; then
  echo "kernel: cached ($key)"
else
  echo "kernel: building linux $src_version with nodeos.config (key $key); about 20 minutes on 2 cores"
  work=$(mktemp -d "${TMPDIR:-/tmp}/nodeos-kernel.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  tar -C "$work" -xf "$src_tar"
  ksrc="$work/linux-source-6.1"
  # Small patches that only add boot parameters; why each exists is said in it.
  for p in "${patches[@]}"; do
    patch -d "$ksrc" -p1 --quiet --forward < "$p" || { echo "kernel: $p does not apply to linux-source $src_version" >&2; exit 1; }
  done
  # The DSDT linked in place of QEMU's (dsdt.asl says why); nodeos.config
  # names it relative to include/, where Kbuild looks for it. -p names the
  # array dsdt_aml_code, one of the two names the kernel accepts.
  mkdir -p "$ksrc/include/nodeos"
  iasl -tc -p "$ksrc/include/nodeos/dsdt" "$here/dsdt.asl" >"$work/iasl.log" 2>&1 || { cat "$work/iasl.log" >&2; echo "kernel: iasl could not compile $here/dsdt.asl" >&2; exit 1; }
  make -C "$ksrc" -s tinyconfig >/dev/null
  "$ksrc/scripts/kconfig/merge_config.sh" -m -O "$ksrc" "$ksrc/.config" "$here/nodeos.config" >/dev/null
  make -C "$ksrc" -s olddefconfig >/dev/null
  # merge_config silently drops what Kconfig refuses: say so, then stop.
  missing=0
  while IFS= read -r line; do
    case "$line" in CONFIG_*=*) grep -qxF "$line" "$ksrc/.config" || { echo "kernel: $line did not survive olddefconfig" >&2; missing=1; } ;; esac
  done < "$here/nodeos.config"
  [ "$missing" = 0 ] || exit 1
  total=$(find "$ksrc" -name '*.c' \( -path '*/kernel/*' -o -path '*/mm/*' -o -path '*/fs/*' -o -path '*/drivers/*' -o -path '*/arch/x86/*' -o -path '*/net/*' -o -path '*/lib/*' -o -path '*/block/*' -o -path '*/init/*' -o -path '*/security/*' -o -path '*/crypto/*' \) | wc -l)
  start=$(date +%s)
  # Progress: one line per 100 compiled files, with elapsed time.
  make -C "$ksrc" -j"$(nproc)" bzImage vmlinux 2>"$work/build.err" | awk -v start="$start" '
    /^  CC / { n++; if (n % 100 == 0) { printf "kernel: %d files compiled, %ds\n", n, systime() - start; fflush() } }
    /^  LD  *vmlinux$/ { printf "kernel: linking\n"; fflush() }' || { tail -30 "$work/build.err" >&2; exit 1; }
  [ -f "$ksrc/arch/x86/boot/bzImage" ] || { tail -30 "$work/build.err" >&2; echo "kernel: build produced no bzImage" >&2; exit 1; }
  mkdir -p "$cached.tmp"
  cp "$ksrc/arch/x86/boot/bzImage" "$ksrc/.config" "$ksrc/System.map" "$cached.tmp/"
  strip -o "$cached.tmp/vmlinux" "$ksrc/vmlinux"
  echo "$key" > "$cached.tmp/kernel.sha256"
  rm -rf "$cached" && mv "$cached.tmp" "$cached"
  echo "kernel: built in $(( $(date +%s) - start ))s"
fi
cp "$cached/bzImage" "$cached/vmlinux" "$cached/.config" "$cached/System.map" "$cached/kernel.sha256" "$out/"
echo "kernel: $(stat -c %s "$out/bzImage") bytes (bzImage)"
