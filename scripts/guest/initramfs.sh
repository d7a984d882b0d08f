#!/usr/bin/env bash
# Builds the test initramfs: busybox-static, /init (scripts/guest/init) and the Debian kernel's
# virtio modules with their dependencies and a modules.dep for busybox modprobe.
# Usage: initramfs.sh DEBIAN_KERNEL_DIR. Output: $VIREO_CACHE/guest/initramfs/<key>/initramfs.cpio,
# keyed by the busybox and kernel versions and the hash of this script and /init. Uncompressed on
# purpose: on hosts whose KVM emulates guest kernel code, gunzip in the guest costs minutes.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

kernel_dir=${1:?usage: initramfs.sh DEBIAN_KERNEL_DIR}
apt_install busybox-static cpio kmod xz-utils zstd
release=$(cat "$kernel_dir/release")
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static)
sources_hash=$(cat "$0" "$VIREO_ROOT/scripts/guest/init" | sha256sum | cut -c1-12)
key="busybox-$busybox_version-$release-$sources_hash"
out="$VIREO_CACHE/guest/initramfs/${key//[:~]/_}"
if [ -f "$out/initramfs.cpio" ]; then
  echo "$out"
  exit 0
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,proc,sys,dev,tmp,mnt,etc,root}
cp /bin/busybox "$stage/bin/busybox"
cp "$VIREO_ROOT/scripts/guest/init" "$stage/init"
chmod 755 "$stage/init"

modules_root="$kernel_dir/modules"
want="virtio_pci virtio_blk virtio_net virtio_console virtio_rng virtio_input"
for module in $want; do
  modprobe -d "$modules_root" -S "$release" --show-depends "$module"
done | awk '$1 == "insmod" {print $2}' | sort -u | while read -r path; do
  relative=${path#"$modules_root"/}
  mkdir -p "$stage/$(dirname "$relative")"
  case "$path" in
    *.ko.xz) xz -dc "$path" > "$stage/${relative%.xz}" ;;
    *.ko.zst) zstd -dcq "$path" > "$stage/${relative%.zst}" ;;
    *) cp "$path" "$stage/$relative" ;;
  esac
done
cp "$modules_root/lib/modules/$release"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$release/" 2>/dev/null || true
depmod -b "$stage" "$release"

mkdir -p "$out.tmp"
(cd "$stage" && find . -print0 | sort -z | cpio --null -o -H newc --owner=0:0 --quiet) > "$out.tmp/initramfs.cpio"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
