// Progress of a long operation on stderr (stdout stays the command's result): a bar redrawn in
// place on a terminal, a line per tenth otherwise, or one JSON object per update with --json.

import { formatSize } from '../api/size.js';

const BAR_WIDTH = 30;

export interface ProgressDisplay {
  update(done: number, total: number): void;
  /** Ends the bar's line (if one was drawn). */
  finish(): void;
}

export type ProgressStyle = 'bar' | 'lines' | 'json';

export function progressStyle(json: boolean | undefined, stream: NodeJS.WriteStream): ProgressStyle {
  if (json) return 'json';
  return stream.isTTY ? 'bar' : 'lines';
}

/** "[#########.....................]  31%  1.5G of 4G" */
export function formatProgressBar(done: number, total: number, width = BAR_WIDTH): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.floor(fraction * width);
  const percent = String(Math.floor(fraction * 100)).padStart(3);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent}%  ${formatSize(done)} of ${formatSize(total)}`;
}

export function createProgressDisplay(
  label: string,
  style: ProgressStyle,
  write: (text: string) => void = (text) => process.stderr.write(text),
): ProgressDisplay {
  let drawn = false;
  let lastTenth = -1;
  return {
    update(done, total) {
      if (style === 'json') {
        write(`${JSON.stringify({ progress: { operation: label, done, total } })}\n`);
      } else if (style === 'bar') {
        write(`\r${label} ${formatProgressBar(done, total)}\u001b[K`);
        drawn = true;
      } else {
        const tenth = total > 0 ? Math.floor((10 * done) / total) : 10;
        if (tenth === lastTenth) return;
        lastTenth = tenth;
        write(`${label}: ${tenth * 10}% (${formatSize(done)} of ${formatSize(total)})\n`);
      }
    },
    finish() {
      if (drawn) write('\n');
      drawn = false;
    },
  };
}
