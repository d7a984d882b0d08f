// The guest material for tests (kernels and initramfs built by scripts/guest/build-all.sh), or
// the reason a test must skip without it.
import { type GuestMaterial, readGuestMaterial } from '../../core/src/guest-material/index.js';

export type { GuestMaterial };

/** The material, or undefined when it has not been built. */
export function guestMaterial(): GuestMaterial | undefined {
  const result = readGuestMaterial();
  return 'material' in result ? result.material : undefined;
}

/** Why a test needing guest material must skip, or false when the material is there. */
export function materialSkipReason(): string | false {
  const result = readGuestMaterial();
  return 'material' in result ? false : `guest material not built: run scripts/setup (${result.reason})`;
}
