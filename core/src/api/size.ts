// Parsing of human sizes such as "512M", "2G", "1048576" (bytes), as QEMU and Firecracker accept.

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  KB: 1000,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1000 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1000 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1000 ** 4,
  TIB: 1024 ** 4,
};

/** Bytes for a size like "512M"; a bare number is bytes. Throws with the reason on bad input. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) throw new Error(`'${text}' is not a size (examples: 512M, 2G, 1073741824)`);
  const unit = UNITS[match[2]!.toUpperCase()];
  if (unit === undefined) throw new Error(`'${text}' has an unknown unit '${match[2]}' (use K, M, G or T)`);
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(Math.round(bytes))) throw new Error(`'${text}' is too large`);
  return Math.round(bytes);
}

export function formatSize(bytes: number): string {
  for (const [unit, scale] of [
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const) {
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale}${unit}`;
  }
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)}G`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)}M`;
  return `${bytes}B`;
}
