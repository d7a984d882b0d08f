#!/usr/bin/env bash
# Builds Vireo's small test kernel from Debian's linux-source package with the trimmed
# configuration in small-kernel.config. Output: $VIREO_CACHE/guest/small-kernel/<key>/{bzImage,vmlinux},
# keyed by the package version and the configuration's hash. Prints the output folder.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

fragment="$VIREO_ROOT/scripts/guest/small-kernel.config"
apt_install linux-source-6.1 bc bison flex libelf-dev libssl-dev xz-utils make gcc
version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key="$version-$(sha256sum "$fragment" | cut -c1-12)"
out="$VIREO_CACHE/guest/small-kernel/$key"
if [ -f "$out/bzImage" ] && [ -f "$out/vmlinux" ]; then
  echo "$out"
  exit 0
fi

build="$VIREO_CACHE/build/linux-source-$version"
if [ ! -f "$build/Makefile" ]; then
  log "unpacking linux-source $version"
  rm -rf "$build.tmp" && mkdir -p "$build.tmp"
  tar -xf /usr/src/linux-source-6.1.tar.xz -C "$build.tmp" --strip-components=1
  rm -rf "$build" && mv "$build.tmp" "$build"
fi

log "configuring the small kernel (tinyconfig + $(basename "$fragment"))"
make -C "$build" -s tinyconfig >/dev/null
"$build/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" >/dev/null
make -C "$build" -s olddefconfig >/dev/null
# merge_config warns about symbols it could not set; a required symbol missing is an error.
for symbol in SERIAL_8250_CONSOLE VIRTIO_PCI VIRTIO_BLK BLK_DEV_INITRD ACPI PVH DEVTMPFS; do
  grep -q "^CONFIG_$symbol=y" "$build/.config" || die "CONFIG_$symbol did not stick in the small kernel's config"
done

log "building the small kernel with $(nproc) jobs (several minutes)"
started=$(date +%s)
make -C "$build" -s -j"$(nproc)" bzImage vmlinux >/dev/null
log "small kernel built in $(($(date +%s) - started)) s"

rm -rf "$out.tmp" && mkdir -p "$out.tmp"
cp "$build/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$build/vmlinux" "$out.tmp/vmlinux"
cp "$build/.config" "$out.tmp/config"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
