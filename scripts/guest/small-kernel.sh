#!/usr/bin/env bash
# Builds Vireo's small test kernel from Debian's linux-source package with the trimmed
# configuration in small-kernel.config (merged on top of `make tinyconfig`).
# Output: $VIREO_CACHE/guest/small-kernel/<package version>-<fragment hash>/
#   bzImage  the 64-bit boot protocol image (LZ4-compressed payload)
#   vmlinux  the ELF image with the Xen PVH entry note (PVH boot path)
#   config   the full resolved .config
#   release  `make kernelrelease`
# Prints the output folder on stdout; progress goes to stderr.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

fragment="$VIREO_ROOT/scripts/guest/small-kernel.config"
apt_install linux-source-6.1 bc bison flex libelf-dev libssl-dev xz-utils lz4 make gcc
version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key="$version-$(sha256sum "$fragment" | cut -c1-12)"
out="$VIREO_CACHE/guest/small-kernel/${key//[:~]/_}"
if [ -f "$out/bzImage" ] && [ -f "$out/vmlinux" ] && [ -f "$out/release" ]; then
  echo "$out"
  exit 0
fi

# One build at a time in the shared build tree.
mkdir -p "$VIREO_CACHE/build"
exec 8> "$VIREO_CACHE/build/.small-kernel.lock"
flock 8
if [ -f "$out/bzImage" ] && [ -f "$out/vmlinux" ] && [ -f "$out/release" ]; then
  echo "$out" # built by the holder of the lock
  exit 0
fi

tarball=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -1)
[ -n "$tarball" ] || die "linux-source-6.1 is installed but /usr/src/linux-source-6.1.tar.* is missing"
build="$VIREO_CACHE/build/linux-source-${version//[:~]/_}"
if [ ! -f "$build/.vireo-unpacked" ]; then
  log "unpacking linux-source $version"
  rm -rf "$build" && mkdir -p "$build"
  tar -xf "$tarball" -C "$build" --strip-components=1
  touch "$build/.vireo-unpacked"
fi

log "configuring the small kernel (tinyconfig + $(basename "$fragment"))"
make -C "$build" -s tinyconfig >/dev/null
"$build/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" > "$build/.vireo-merge.log" 2>&1 ||
  { cat "$build/.vireo-merge.log" >&2; die "merging $(basename "$fragment") failed"; }
make -C "$build" -s olddefconfig >> "$build/.vireo-merge.log" 2>&1
# merge_config only warns about symbols it could not set; for these the kernel would not boot
# or could not run the tests.
required="64BIT SMP SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP BINFMT_ELF BINFMT_SCRIPT DEVTMPFS
  DEVTMPFS_MOUNT ACPI ACPI_BUTTON PCI PCI_MSI VIRTIO_PCI VIRTIO_BLK VIRTIO_NET VIRTIO_CONSOLE
  HW_RANDOM_VIRTIO VIRTIO_INPUT INET UNIX PACKET EXT4_FS PVH KVM_GUEST FUTEX EPOLL KERNEL_LZ4
  MAGIC_SYSRQ MAGIC_SYSRQ_SERIAL IP_PNP IP_PNP_DHCP"
for symbol in $required; do
  grep -q "^CONFIG_$symbol=y" "$build/.config" || die "CONFIG_$symbol did not stick in the small kernel's config"
done
for symbol in MODULES SECURITY VT; do
  if grep -q "^CONFIG_$symbol=y" "$build/.config"; then die "CONFIG_$symbol should be off in the small kernel"; fi
done

build_log="$build/.vireo-build.log"
log "building the small kernel with $(nproc) jobs (first build: 10-20 minutes; log: $build_log)"
started=$(date +%s)
if ! make -C "$build" -j"$(nproc)" bzImage vmlinux > "$build_log" 2>&1; then
  tail -40 "$build_log" >&2
  die "the small kernel did not build (full log: $build_log)"
fi
log "small kernel built in $(($(date +%s) - started)) s"

rm -rf "$out.tmp" && mkdir -p "$out.tmp"
cp "$build/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$build/vmlinux" "$out.tmp/vmlinux"
strip --strip-debug "$out.tmp/vmlinux" 2>/dev/null || true
cp "$build/.config" "$out.tmp/config"
make -C "$build" -s kernelrelease > "$out.tmp/release"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
