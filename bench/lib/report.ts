// Benchmark output: one table per figure, every row beside the baseline as a ratio.

export interface Measurement {
  name: string;
  /** The figure, or a reason it could not be measured on this host. */
  value: number | string;
}

export interface FigureOptions {
  title: string;
  unit: string;
  /** Name of the row the ratios are against. */
  baseline: string;
  /** Lower is better (times, bytes) or higher (rates). */
  better: 'lower' | 'higher';
  digits?: number;
}

/** Prints a table and returns its rows' ratios against the baseline (undefined where absent). */
export function printFigure(options: FigureOptions, rows: Measurement[]): Map<string, number | undefined> {
  const base = rows.find((row) => row.name === options.baseline)?.value;
  const digits = options.digits ?? 1;
  const ratios = new Map<string, number | undefined>();
  const width = Math.max(...rows.map((row) => row.name.length), 8);
  console.log(
    `\n${options.title} (${options.unit}, ${options.better} is better; ratio against ${options.baseline})`,
  );
  for (const row of rows) {
    let valueText: string;
    let ratioText = '';
    if (typeof row.value === 'number') {
      valueText = row.value.toFixed(digits);
      if (typeof base === 'number' && base > 0) {
        const ratio = row.value / base;
        ratios.set(row.name, ratio);
        ratioText = `${ratio.toFixed(2)}x`;
      }
    } else {
      valueText = `n/a: ${row.value}`;
      ratios.set(row.name, undefined);
    }
    console.log(`  ${row.name.padEnd(width)}  ${valueText.padStart(12)}  ${ratioText}`);
  }
  return ratios;
}

/**
 * A row from repeated runs: the median of `pick` over them, or the first reason a run gave
 * instead of a figure; `absent` when the contender did not run at all.
 */
export function medianRow<T>(
  name: string,
  runs: readonly T[] | undefined,
  pick: (run: T) => number | string,
  absent = 'not run',
): Measurement {
  if (!runs) return { name, value: absent };
  const values = runs.map(pick);
  const numbers = values.filter((v): v is number => typeof v === 'number');
  return {
    name,
    value:
      numbers.length === values.length ? median(numbers) : String(values.find((v) => typeof v === 'string')),
  };
}

export function median(values: number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
