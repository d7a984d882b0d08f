// A 16-bit ring index in guest RAM, read and written with sequentially consistent atomics: the
// indices are how the device and the driver (on other CPUs) hand buffers to each other, and they
// carry the ordering of everything else in the rings.

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A little-endian u16 in guest RAM read and written with sequentially consistent atomics. */
export class GuestU16 {
  private readonly atomic: Uint16Array | undefined;
  private readonly plain: DataView;

  constructor(bytes: Uint8Array) {
    this.plain = new DataView(bytes.buffer, bytes.byteOffset, 2);
    // Atomics need an aligned typed array in host byte order; x86 hosts are little-endian like
    // the guest. The fallback (misaligned backing store) has no ordering guarantee.
    this.atomic =
      HOST_LITTLE_ENDIAN && bytes.byteOffset % 2 === 0
        ? new Uint16Array(bytes.buffer, bytes.byteOffset, 1)
        : undefined;
  }

  load(): number {
    return this.atomic ? Atomics.load(this.atomic, 0) : this.plain.getUint16(0, true);
  }

  store(value: number): void {
    if (this.atomic) Atomics.store(this.atomic, 0, value);
    else this.plain.setUint16(0, value, true);
  }
}
