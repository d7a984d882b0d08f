#!/usr/bin/env bash
# Builds the freestanding test guests (tests/guests/*.S) into flat binaries in
# $VIREO_CACHE/test-guests/<name>.bin, linked at KERNEL_LOAD (0x100000). Rebuilds a guest only
# when its source, the shared include or this script changed.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

src_dir="$VIREO_ROOT/tests/guests"
out_dir="$VIREO_CACHE/test-guests"
mkdir -p "$out_dir"
command -v as >/dev/null && command -v ld >/dev/null && command -v objcopy >/dev/null ||
  die "needs binutils (as, ld, objcopy): apt-get install binutils"

built=0
for src in "$src_dir"/*.S; do
  name=$(basename "$src" .S)
  out="$out_dir/$name.bin"
  if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$src_dir/guest.inc" ] && [ "$out" -nt "$0" ]; then
    continue
  fi
  work=$(mktemp -d)
  as --64 -I "$src_dir" -o "$work/$name.o" "$src"
  ld -m elf_x86_64 -nostdlib -static -Ttext=0x100000 -e _start -o "$work/$name.elf" "$work/$name.o"
  objcopy -O binary "$work/$name.elf" "$work/$name.bin"
  cp "$work/$name.elf" "$out_dir/$name.elf"
  mv "$work/$name.bin" "$out"
  rm -rf "$work"
  built=$((built + 1))
done
log "test guests in $out_dir ($built rebuilt)"
