// The guest material for tests, or the reason a test must skip without it.
import { type GuestMaterial, loadGuestMaterial } from '../../core/src/guest-material/index.js';

export function guestMaterial(): GuestMaterial | undefined {
  return loadGuestMaterial();
}

export function materialSkipReason(): string | false {
  return loadGuestMaterial() ? false : 'guest material not built: run scripts/setup';
}
