#!/usr/bin/env bash
# Builds all test guest material into $VIREO_CACHE and writes $VIREO_CACHE/guest/manifest.json
# (read by core/src/guest-material; shape and protocol in scripts/guest/README.md). Each piece is
# cached by its inputs' versions, so a second run only checks. Safe to run concurrently: a lock
# serialises builders.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
here="$VIREO_ROOT/scripts/guest"
guest="$VIREO_CACHE/guest"
mkdir -p "$guest"

exec 9> "$guest/.build.lock"
if ! flock -n 9; then
  log "another build of the guest material is running; waiting for it"
  flock 9
fi

bash "$here/build-test-guests.sh"
log "Debian kernel"
debian=$(bash "$here/debian-kernel.sh")
log "  $debian"
log "small kernel"
small=$(bash "$here/small-kernel.sh")
log "  $small"
log "initramfs"
initramfs=$(bash "$here/initramfs.sh" "$debian")
log "  $initramfs"

manifest="$guest/manifest.json"
DEBIAN="$debian" SMALL="$small" INITRAMFS="$initramfs" FRAGMENT="$here/small-kernel.config" \
  SOURCE_VERSION="$(dpkg-query -W -f='${Version}' linux-source-6.1)" \
  node --input-type=module - "$manifest.tmp" <<'JS'
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const { DEBIAN, SMALL, INITRAMFS, FRAGMENT, SOURCE_VERSION } = process.env;
const line = (path) => readFileSync(path, 'utf8').trim();
const release = line(join(DEBIAN, 'release'));
const manifest = {
  version: 2,
  builtAt: new Date().toISOString(),
  debianKernel: {
    package: line(join(DEBIAN, 'package')),
    version: line(join(DEBIAN, 'version')),
    release,
    bzImage: join(DEBIAN, 'vmlinuz'),
    vmlinux: join(DEBIAN, 'vmlinux'),
    modules: join(DEBIAN, 'modules', 'lib', 'modules', release),
  },
  smallKernel: {
    sourcePackage: 'linux-source-6.1',
    version: SOURCE_VERSION,
    configHash: createHash('sha256').update(readFileSync(FRAGMENT)).digest('hex').slice(0, 12),
    release: line(join(SMALL, 'release')),
    bzImage: join(SMALL, 'bzImage'),
    vmlinux: join(SMALL, 'vmlinux'),
    config: join(SMALL, 'config'),
  },
  initramfs: join(INITRAMFS, 'initramfs.cpio'),
  initramfsGzip: join(INITRAMFS, 'initramfs.cpio.gz'),
  busybox: { version: line(join(INITRAMFS, 'busybox-version')) },
};
writeFileSync(process.argv[2], `${JSON.stringify(manifest, null, 2)}\n`);
JS
sync "$manifest.tmp"
mv "$manifest.tmp" "$manifest"
# Older builds of each piece are no longer named by the manifest.
for current in "$debian" "$small" "$initramfs"; do
  find "$(dirname "$current")" -mindepth 1 -maxdepth 1 ! -name "$(basename "$current")" -exec rm -rf {} +
done
log "guest material ready: $manifest"
