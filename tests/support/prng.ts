// A small deterministic PRNG (mulberry32) for fuzz tests: a failure replays from its seed.

export interface Prng {
  /** A number in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  chance(p: number): boolean;
  u16(): number;
  u32(): number;
  pick<T>(items: readonly T[]): T;
}

export function prng(seed: number): Prng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    chance: (p) => next() < p,
    u16: () => int(0x10000),
    u32: () => int(0x1_0000_0000),
    pick: (items) => items[int(items.length)]!,
  };
}

/** The seed and case count a fuzz test runs with: VIREO_FUZZ_SEED / VIREO_FUZZ_CASES, or fresh ones. */
export function fuzzSettings(defaultCases: number): { seed: number; cases: number } {
  return {
    seed: Number(process.env.VIREO_FUZZ_SEED ?? (Date.now() ^ (process.pid << 16)) >>> 0),
    cases: Number(process.env.VIREO_FUZZ_CASES ?? defaultCases),
  };
}
