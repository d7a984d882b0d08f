// The last N bytes of a stream (a VM's console), for history on attach and for crash reports.

export class ByteRing {
  private readonly buffer: Buffer;
  private start = 0;
  private length = 0;

  constructor(readonly capacity: number) {
    this.buffer = Buffer.alloc(capacity);
  }

  push(bytes: Uint8Array): void {
    if (this.capacity === 0) return;
    let input = bytes;
    if (input.length >= this.capacity) {
      input = input.subarray(input.length - this.capacity);
      this.buffer.set(input, 0);
      this.start = 0;
      this.length = this.capacity;
      return;
    }
    let end = (this.start + this.length) % this.capacity;
    const firstPart = Math.min(input.length, this.capacity - end);
    this.buffer.set(input.subarray(0, firstPart), end);
    this.buffer.set(input.subarray(firstPart), 0);
    end = (end + input.length) % this.capacity;
    const overflow = this.length + input.length - this.capacity;
    if (overflow > 0) {
      this.start = (this.start + overflow) % this.capacity;
      this.length = this.capacity;
    } else {
      this.length += input.length;
    }
  }

  contents(): Buffer {
    const firstPart = Math.min(this.length, this.capacity - this.start);
    return Buffer.concat([
      this.buffer.subarray(this.start, this.start + firstPart),
      this.buffer.subarray(0, this.length - firstPart),
    ]);
  }

  /** The last `count` lines as text (control characters other than newline and tab removed). */
  lastLines(count: number): string {
    const text = this.contents()
      .toString('utf8')
      .replace(/\r\n?/g, '\n')
      .replace(new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;?]*[A-Za-z]`, 'g'), '');
    const clean = [...text].filter((char) => char >= ' ' || char === '\n' || char === '\t').join('');
    const lines = clean.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-count).join('\n');
  }
}
