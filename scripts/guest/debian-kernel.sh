#!/usr/bin/env bash
# Unpacks Debian's stock kernel (linux-image-amd64's image package) into the cache without
# installing it: vmlinuz (bzImage), vmlinux (ELF, for the PVH path) and its modules.
# Output: $VIREO_CACHE/guest/debian-kernel/<package version>/. Prints the output folder.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

apt_install xz-utils zstd
image_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$image_pkg" ] || die "cannot find the image package linux-image-amd64 depends on (run apt-get update?)"
version=$(apt-cache policy "$image_pkg" | awk '/Candidate:/ {print $2}')
out="$VIREO_CACHE/guest/debian-kernel/$image_pkg-$version"
if [ -f "$out/vmlinuz" ] && [ -f "$out/vmlinux" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
chmod 755 "$work" # apt downloads as the _apt user
trap 'rm -rf "$work"' EXIT
log "downloading $image_pkg $version"
(cd "$work" && apt-get download -qq "$image_pkg" >/dev/null)
dpkg-deb -x "$work"/*.deb "$work/root"
release=$(ls "$work/root/lib/modules")

mkdir -p "$out.tmp"
cp "$work/root/boot/vmlinuz-$release" "$out.tmp/vmlinuz"
node "$VIREO_ROOT/scripts/guest/extract-vmlinux.mjs" "$out.tmp/vmlinuz" "$out.tmp/vmlinux"
mkdir -p "$out.tmp/modules/lib/modules"
mv "$work/root/lib/modules/$release" "$out.tmp/modules/lib/modules/"
depmod -b "$out.tmp/modules" "$release" # the package leaves modules.dep to its postinst
echo "$release" > "$out.tmp/release"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
