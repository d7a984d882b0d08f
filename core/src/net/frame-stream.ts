// QEMU's "stream" netdev framing, which passt speaks on its Unix socket: each Ethernet frame is
// sent as a 4-byte big-endian length and then the frame, with nothing else in between.

/** The largest frame either side sends (passt's 65520-byte MTU plus headers, rounded up). */
export const MAX_STREAM_FRAME = 65_600;

/** One frame, given as pieces (e.g. guest buffers), as one length-prefixed Buffer. */
export function encodeStreamFrame(pieces: readonly Uint8Array[]): Buffer {
  let length = 0;
  for (const piece of pieces) length += piece.length;
  const out = Buffer.allocUnsafe(4 + length);
  out.writeUInt32BE(length, 0);
  let at = 4;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/**
 * Cuts a byte stream into frames. Feed it chunks as they arrive; it calls `onFrame` with each
 * complete frame (a view that stays valid). A length above `maxFrame` means the stream is out of
 * step or the peer is broken: `push` throws and the stream must be dropped.
 */
export class StreamFrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly onFrame: (frame: Uint8Array) => void,
    private readonly maxFrame = MAX_STREAM_FRAME,
  ) {}

  push(chunk: Buffer): void {
    let data = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      data = Buffer.concat(this.pending, this.pendingBytes + chunk.length);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let at = 0;
    while (data.length - at >= 4) {
      const length = data.readUInt32BE(at);
      if (length > this.maxFrame) {
        throw new Error(`stream frame of ${length} bytes is over the ${this.maxFrame}-byte limit`);
      }
      if (data.length - at - 4 < length) break;
      this.onFrame(data.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    if (at < data.length) {
      this.pending.push(data.subarray(at));
      this.pendingBytes = data.length - at;
    }
  }

  /** Bytes of an incomplete frame held back. */
  get buffered(): number {
    return this.pendingBytes;
  }
}
