#!/usr/bin/env bash
# Builds the test guest material into $VIREO_CACHE/guest (see scripts/guest/README.md).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
log "guest material: not built yet"
