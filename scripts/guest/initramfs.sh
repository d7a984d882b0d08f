#!/usr/bin/env bash
# Builds the test initramfs: busybox-static, /init (scripts/guest/init; protocol in README.md)
# and the Debian kernel's virtio modules with their dependencies, decompressed, with a
# modules.dep from depmod for busybox modprobe. The small kernel has virtio built in and a
# different release, so /init finds no modules for it and loads nothing.
# Usage: initramfs.sh DEBIAN_KERNEL_DIR
# Output: $VIREO_CACHE/guest/initramfs/<key>/, keyed by the busybox and kernel versions and the
# hash of this script and /init:
#   initramfs.cpio     newc, uncompressed: on hosts whose KVM emulates guest kernel code,
#                      gunzip in the guest costs minutes
#   initramfs.cpio.gz  the same archive, gzip (what boot loaders usually hand over)
# Prints the output folder on stdout; progress goes to stderr.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

kernel_dir=${1:?usage: initramfs.sh DEBIAN_KERNEL_DIR}
apt_install busybox-static cpio kmod xz-utils zstd gzip
release=$(cat "$kernel_dir/release")
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static)
sources_hash=$(cat "$0" "$VIREO_ROOT/scripts/guest/init" | sha256sum | cut -c1-12)
key="busybox-$busybox_version-$release-$sources_hash"
out="$VIREO_CACHE/guest/initramfs/${key//[:~]/_}"
if [ -f "$out/initramfs.cpio" ] && [ -f "$out/initramfs.cpio.gz" ]; then
  echo "$out"
  exit 0
fi

log "building the initramfs (busybox $busybox_version, modules of $release)"
busybox=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -1)
[ -x "$busybox" ] || die "busybox-static installed but its binary is not found"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,proc,sys,dev,tmp,mnt,etc,root}
cp "$busybox" "$stage/bin/busybox"
cp "$VIREO_ROOT/scripts/guest/init" "$stage/init"
chmod 755 "$stage/init"
# The kernel opens /dev/console before it runs /init; devtmpfs is mounted only later.
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3

modules_root="$kernel_dir/modules"
wanted="virtio virtio_ring virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev virtio_blk virtio_net
  net_failover failover virtio_console virtio_rng virtio_input"
for module in $wanted; do
  # A module built into this kernel shows up as "builtin", not as an insmod line.
  modprobe -d "$modules_root" -S "$release" --show-depends "$module" ||
    die "module $module not found for $release"
done | awk '$1 == "insmod" {print $2}' | sort -u | while read -r path; do
  relative=${path#"$modules_root"/}
  mkdir -p "$stage/$(dirname "$relative")"
  case "$path" in
    *.ko.xz) xz -dc "$path" > "$stage/${relative%.xz}" ;;
    *.ko.zst) zstd -dcq "$path" > "$stage/${relative%.zst}" ;;
    *.ko.gz) gzip -dc "$path" > "$stage/${relative%.gz}" ;;
    *) cp "$path" "$stage/$relative" ;;
  esac
done
cp "$modules_root/lib/modules/$release"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$release/" 2>/dev/null || true
depmod -b "$stage" "$release"
log "modules in the initramfs: $(cut -d: -f1 "$stage/lib/modules/$release/modules.dep" | xargs -n1 basename | tr '\n' ' ')"

rm -rf "$out.tmp" && mkdir -p "$out.tmp"
(cd "$stage" && find . -print0 | sort -z | cpio --null -o -H newc --owner=0:0 --reproducible --quiet) > "$out.tmp/initramfs.cpio"
gzip -9n < "$out.tmp/initramfs.cpio" > "$out.tmp/initramfs.cpio.gz"
echo "$busybox_version" > "$out.tmp/busybox-version"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
