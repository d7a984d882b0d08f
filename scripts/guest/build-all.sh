#!/usr/bin/env bash
# Builds all test guest material into $VIREO_CACHE and writes $VIREO_CACHE/guest/manifest.json
# (read by core/src/guest-material). Each piece is cached by its inputs' versions, so a second
# run only checks.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
here="$VIREO_ROOT/scripts/guest"

bash "$here/build-test-guests.sh"
debian=$(bash "$here/debian-kernel.sh")
small=$(bash "$here/small-kernel.sh")
initramfs=$(bash "$here/initramfs.sh" "$debian")

manifest="$VIREO_CACHE/guest/manifest.json"
cat > "$manifest.tmp" <<JSON
{
  "version": 1,
  "debianKernel": {
    "release": "$(cat "$debian/release")",
    "bzImage": "$debian/vmlinuz",
    "vmlinux": "$debian/vmlinux"
  },
  "smallKernel": {
    "bzImage": "$small/bzImage",
    "vmlinux": "$small/vmlinux"
  },
  "initramfs": "$initramfs/initramfs.cpio"
}
JSON
sync "$manifest.tmp"
mv "$manifest.tmp" "$manifest"
log "guest material ready: $manifest"
