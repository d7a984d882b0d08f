// How far the disk copy of a create or update has got, from the daemon's progress events.

import type { PendingSave } from '../../common/vm-store.js';
import { approximateSize } from '../../common/wizard.js';

export function CopyProgress({ pending }: { pending: PendingSave }) {
  // Until the first event the total is not known: an indeterminate bar (no aria-valuenow).
  const copied = pending.copied;
  const percent = copied && copied.total > 0 ? Math.floor((copied.done / copied.total) * 100) : 0;
  const text = copied
    ? `${approximateSize(copied.done)} of ${approximateSize(copied.total)} copied (${percent}%)`
    : 'Starting the copy…';
  return (
    <div className="copy-progress">
      <span id="copy-progress-label">Copying the disk images</span>
      <div
        role="progressbar"
        aria-labelledby="copy-progress-label"
        aria-valuemin={0}
        {...(copied && {
          'aria-valuemax': copied.total,
          'aria-valuenow': copied.done,
          'aria-valuetext': text,
        })}
        className="progress-track"
      >
        <div className="progress-fill" style={{ width: `${percent}%` }} />
      </div>
      <span className="hint">{text}</span>
    </div>
  );
}
