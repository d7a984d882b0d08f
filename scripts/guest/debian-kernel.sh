#!/usr/bin/env bash
# Unpacks Debian's stock kernel (the image package linux-image-amd64 depends on) into the cache
# without installing anything: apt-get download + dpkg-deb -x.
# Output: $VIREO_CACHE/guest/debian-kernel/<image package>-<version>/
#   vmlinuz   the bzImage
#   vmlinux   the ELF extracted from it (PVH boot path; checked to carry the PVH entry note)
#   modules/lib/modules/<release>/   the modules tree with modules.dep (depmod -b)
#   release, package, version
# Prints the output folder on stdout; progress goes to stderr.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

apt_install xz-utils zstd kmod
image_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$image_pkg" ] || die "cannot find the image package linux-image-amd64 depends on (run apt-get update?)"
version=$(apt-cache policy "$image_pkg" | awk '/Candidate:/ {print $2}')
[ -n "$version" ] && [ "$version" != "(none)" ] || die "no installable version of $image_pkg"
out="$VIREO_CACHE/guest/debian-kernel/${image_pkg}-${version//[:~]/_}"
if [ -f "$out/vmlinuz" ] && [ -f "$out/vmlinux" ] && [ -f "$out/version" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
# apt downloads as the _apt user when it can; a folder it cannot write makes it warn.
if id _apt >/dev/null 2>&1; then chown _apt "$work"; else chmod 755 "$work"; fi
trap 'rm -rf "$work"' EXIT
log "downloading $image_pkg $version"
(cd "$work" && apt-get download -qq "$image_pkg=$version" >/dev/null)
dpkg-deb -x "$work"/*.deb "$work/root"
release=$(ls "$work/root/lib/modules")

rm -rf "$out.tmp" && mkdir -p "$out.tmp"
cp "$work/root/boot/vmlinuz-$release" "$out.tmp/vmlinuz"
log "extracting vmlinux from $image_pkg's bzImage"
node "$VIREO_ROOT/scripts/guest/extract-vmlinux.mjs" "$out.tmp/vmlinuz" "$out.tmp/vmlinux"
mkdir -p "$out.tmp/modules/lib/modules"
mv "$work/root/lib/modules/$release" "$out.tmp/modules/lib/modules/"
depmod -b "$out.tmp/modules" "$release" # the package leaves modules.dep to its postinst
echo "$release" > "$out.tmp/release"
echo "$image_pkg" > "$out.tmp/package"
echo "$version" > "$out.tmp/version"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
