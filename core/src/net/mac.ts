// MAC addresses as text and bytes. Apart from the network schemas (config.ts), which load zod:
// the VMM uses these on `vireo run`'s start-up path.

/** The MAC address a network without one gets: QEMU's 52:54:00 prefix and three bytes of `seed`. */
export function defaultMac(seed: Uint8Array): string {
  return formatMac([0x52, 0x54, 0x00, seed[0] ?? 0, seed[1] ?? 0, seed[2] ?? 0]);
}

/** `52:54:00:12:34:56` from six bytes. */
export function formatMac(bytes: ArrayLike<number>): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(':'), (pair) => Number.parseInt(pair, 16));
}
