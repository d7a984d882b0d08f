// Address dispatch for port I/O and MMIO exits. Devices see offsets from their own base.
//
// Lookup is a binary search over non-overlapping ranges sorted by base, behind a one-entry cache:
// a guest hammering one device (the UART's THR, a virtio notify register) hits the cache. PCI BARs
// move when the guest reprograms them, so mappings can be removed and added at any time.
//
// Unmapped addresses: `read`/`write` return false and leave `data` untouched. The caller (the
// vCPU exit dispatcher) answers such port reads with all-ones, as an ISA bus with nothing
// driving it does; MMIO reads of nothing likewise read all-ones.

/** A device model reached through a bus. `data.length` is the access size (1, 2, 4 or 8). */
export interface BusDevice {
  /** Fill `data` with the value read at `offset` (little-endian). */
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

interface Mapping {
  base: number;
  end: number;
  device: BusDevice;
  name: string;
}

export class Bus {
  /** Sorted by base, never overlapping. */
  private mappings: Mapping[] = [];
  private lastHit: Mapping | undefined;

  /** Maps [base, base+length) to `device`. Throws when the range is invalid or overlaps another mapping. */
  register(base: number, length: number, device: BusDevice, name: string): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length <= 0) {
      throw new RangeError(`${name}: bad bus range 0x${base.toString(16)}+${length}`);
    }
    const end = base + length;
    if (!Number.isSafeInteger(end)) throw new RangeError(`${name}: bus range past 2^53`);
    const clash = this.overlapping(base, end);
    if (clash) {
      throw new Error(
        `${name} at 0x${base.toString(16)}+0x${length.toString(16)} overlaps ${clash.name} at 0x${clash.base.toString(16)}`,
      );
    }
    const mapping = { base, end, device, name };
    let i = this.mappings.length;
    while (i > 0 && this.mappings[i - 1]!.base > base) i--;
    this.mappings.splice(i, 0, mapping);
  }

  /** Removes the mapping of `device` starting at `base`; false when there was none. */
  unregister(base: number, device: BusDevice): boolean {
    const i = this.mappings.findIndex((m) => m.base === base && m.device === device);
    if (i < 0) return false;
    if (this.lastHit === this.mappings[i]) this.lastHit = undefined;
    this.mappings.splice(i, 1);
    return true;
  }

  /** The first mapping overlapping [base, end), if any. */
  overlapping(base: number, end: number): { name: string; base: number } | undefined {
    return this.mappings.find((m) => base < m.end && m.base < end);
  }

  /** The mapping holding [address, address+size), or undefined. */
  private find(address: number, size: number): Mapping | undefined {
    const hit = this.lastHit;
    if (hit !== undefined && address >= hit.base && address + size <= hit.end) return hit;
    const mappings = this.mappings;
    let lo = 0;
    let hi = mappings.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = mappings[mid]!;
      if (address < m.base) hi = mid - 1;
      else if (address >= m.end) lo = mid + 1;
      else {
        if (address + size > m.end) return undefined;
        this.lastHit = m;
        return m;
      }
    }
    return undefined;
  }

  /** false: nothing mapped there, `data` untouched (the caller answers reads with all-ones). */
  read(address: number, data: Uint8Array): boolean {
    const m = this.find(address, data.length);
    if (!m) return false;
    m.device.read(address - m.base, data);
    return true;
  }

  /** false: nothing mapped there (the write is dropped). */
  write(address: number, data: Uint8Array): boolean {
    const m = this.find(address, data.length);
    if (!m) return false;
    m.device.write(address - m.base, data);
    return true;
  }

  /** What is mapped, for logs and `vireo inspect`. */
  describe(): { name: string; base: number; length: number }[] {
    return this.mappings.map((m) => ({ name: m.name, base: m.base, length: m.end - m.base }));
  }
}

/** Little-endian value of an access's bytes (up to 6 bytes exactly; 8-byte reads use two halves). */
export function readValue(data: Uint8Array): number {
  let value = 0;
  for (let i = Math.min(data.length, 6) - 1; i >= 0; i--) value = value * 256 + data[i]!;
  return value;
}

/** Writes `value` little-endian into all of `data`. */
export function fillValue(data: Uint8Array, value: number): void {
  for (let i = 0; i < data.length; i++) {
    data[i] = value % 256;
    value = Math.floor(value / 256);
  }
}
