// Posted writes: a vCPU's guest writes to registers whose owner declared them safe to apply later
// (e.g. a UART's transmit register, a POST-code port) go into a single-producer/single-consumer
// ring in shared memory, and the vCPU runs on at once instead of waiting for the main thread.
// The main thread drains every vCPU's ring before it handles any forwarded exit, so a device
// still sees one vCPU's accesses in program order; only the moment a write lands moves, as
// with posted writes on a PCI bus.

const HEAD = 0;
const TAIL = 1;
const HEADER_BYTES = 16;
const SLOT_BYTES = 24;
export const POSTED_RING_SLOTS = 256;

export const SPACE_PIO = 0;
export const SPACE_MMIO = 1;

export interface PostedWrite {
  space: typeof SPACE_PIO | typeof SPACE_MMIO;
  address: number;
  data: Uint8Array;
}

/** Which addresses may be posted, as given to VcpuSet. */
export interface PostedWriteConfig {
  pio?: readonly number[];
  mmio?: readonly { start: number; length: number }[];
  /**
   * 0 (default): wake the main thread for every write it might be asleep for. Above 0: do not
   * wake it; it drains every this many milliseconds (and before any forwarded exit, and when a
   * ring is half full), so a burst of writes costs the vCPU no cross-thread wake-up at all.
   */
  maxDelayMs?: number;
}

export class PostedWriteRing {
  readonly buffer: SharedArrayBuffer;
  private readonly words: Int32Array;
  private readonly view: DataView;
  private readonly bytes: Uint8Array;

  constructor(buffer = new SharedArrayBuffer(HEADER_BYTES + POSTED_RING_SLOTS * SLOT_BYTES)) {
    this.buffer = buffer;
    this.words = new Int32Array(buffer, 0, 2);
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
  }

  /**
   * Producer (the vCPU's thread): queues the write and returns how many writes are pending
   * counting it (1 = the consumer had drained everything: it may be asleep and needs waking),
   * or 0 when the ring is full or the write cannot be posted.
   */
  post(space: number, address: number, data: Uint8Array): number {
    if (data.length > 8) return 0;
    const head = Atomics.load(this.words, HEAD);
    const tail = this.words[TAIL]!;
    if (tail - head >= POSTED_RING_SLOTS) return 0;
    const o = HEADER_BYTES + (tail % POSTED_RING_SLOTS) * SLOT_BYTES;
    this.view.setUint32(o, (space << 8) | data.length, true);
    this.view.setUint32(o + 4, address >>> 0, true);
    this.view.setUint32(o + 8, Math.floor(address / 0x1_0000_0000), true);
    this.bytes.set(data, o + 16);
    Atomics.store(this.words, TAIL, (tail + 1) | 0);
    // Read HEAD after publishing TAIL: either this sees the consumer's last drain, or the
    // consumer's check of `pending` after that drain sees this write (both are seq-cst).
    return (tail + 1 - Atomics.load(this.words, HEAD)) | 0;
  }

  /** Consumer (the main thread): hands every posted write to `apply` in order; returns the count. */
  drain(apply: (space: number, address: number, data: Uint8Array) => void): number {
    let head = this.words[HEAD]!;
    const tail = Atomics.load(this.words, TAIL);
    let count = 0;
    while (head !== tail) {
      const o = HEADER_BYTES + (head % POSTED_RING_SLOTS) * SLOT_BYTES;
      const meta = this.view.getUint32(o, true);
      const address = this.view.getUint32(o + 4, true) + this.view.getUint32(o + 8, true) * 0x1_0000_0000;
      const data = this.bytes.slice(o + 16, o + 16 + (meta & 0xff));
      head = (head + 1) | 0;
      // Free the slot before applying: a handler that throws must not wedge the ring.
      Atomics.store(this.words, HEAD, head);
      count++;
      apply(meta >> 8, address, data);
    }
    return count;
  }

  get pending(): number {
    return Atomics.load(this.words, TAIL) - Atomics.load(this.words, HEAD);
  }
}

/** The worker-side test for "may this write be posted?", built once from the config. */
export class PostedWriteFilter {
  private readonly ports = new Uint8Array(0x1_0000);
  private readonly mmio: readonly { start: number; length: number }[];

  constructor(config: PostedWriteConfig | undefined) {
    for (const port of config?.pio ?? []) this.ports[port & 0xffff] = 1;
    this.mmio = config?.mmio ?? [];
  }

  get empty(): boolean {
    return this.mmio.length === 0 && !this.ports.includes(1);
  }

  port(port: number): boolean {
    return this.ports[port] === 1;
  }

  mmioAddress(address: number, length: number): boolean {
    for (const range of this.mmio) {
      if (address >= range.start && address + length <= range.start + range.length) return true;
    }
    return false;
  }
}
