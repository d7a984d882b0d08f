#!/usr/bin/env bash
# Renders assets/icons/vireo.svg to the PNG sizes desktop environments and electron-builder use
# (assets/icons/NxN.png). Run after changing the SVG; needs rsvg-convert (librsvg2-bin).
set -euo pipefail
cd "$(dirname "$0")/../assets/icons"
for size in 16 32 48 64 128 256 512; do
  rsvg-convert --width "$size" --height "$size" vireo.svg --output "${size}x${size}.png"
done
