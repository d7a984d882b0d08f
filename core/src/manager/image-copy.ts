// Copies a raw disk image into the library, the way `cp --sparse=always --reflink=auto` does: a
// reflink where the filesystem has them (btrfs, XFS: instant, no blocks written), else a copy
// that leaves all-zero chunks as holes. The reads and writes run on libuv's thread pool, so the
// daemon's event loop keeps serving while gigabytes move; progress is reported as bytes.

import { constants } from 'node:fs';
import { copyFile, type FileHandle, open, rm, stat } from 'node:fs/promises';

/** Bytes read and written per step: large enough for sequential speed, small enough for progress. */
const CHUNK_BYTES = 1024 * 1024;
const ZERO_CHUNK = new Uint8Array(CHUNK_BYTES);

export interface ImageCopyProgress {
  done: number;
  total: number;
}

/** The source cannot be copied (missing, not a regular file, larger than the wanted size). */
export class ImageCopyError extends Error {
  override name = 'ImageCopyError';
}

/** Size in bytes of the image at `path`, which must be a regular file. */
export async function imageSize(path: string): Promise<number> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    throw new ImageCopyError(`cannot read '${path}': ${(error as NodeJS.ErrnoException).code}`);
  }
  if (!info.isFile()) throw new ImageCopyError(`'${path}' is not a regular file`);
  return info.size;
}

export function isAllZero(bytes: Uint8Array): boolean {
  return Buffer.compare(bytes, ZERO_CHUNK.subarray(0, bytes.length)) === 0;
}

/**
 * Creates `target` (which must not exist) as a copy of `source`, grown to `sizeBytes` when that is
 * larger. On failure nothing is left at `target`.
 */
export async function copyImage(
  source: string,
  target: string,
  options: { sizeBytes?: number; onProgress?: (progress: ImageCopyProgress) => void } = {},
): Promise<void> {
  const total = await imageSize(source);
  if (options.sizeBytes !== undefined && options.sizeBytes < total) {
    throw new ImageCopyError(
      `'${source}' holds ${total} bytes: more than the ${options.sizeBytes} bytes asked for`,
    );
  }
  const finalSize = Math.max(total, options.sizeBytes ?? 0);
  try {
    if (!(await reflink(source, target))) await sparseCopy(source, target, total, options.onProgress);
    const handle = await open(target, 'r+');
    try {
      if (finalSize > total) await handle.truncate(finalSize);
      await handle.sync();
    } finally {
      await handle.close();
    }
    options.onProgress?.({ done: total, total });
  } catch (error) {
    await rm(target, { force: true });
    if (error instanceof ImageCopyError) throw error;
    throw new ImageCopyError(`copying '${source}' failed: ${(error as Error).message}`);
  }
}

/** A copy-on-write clone, or false where the filesystem cannot make one. */
async function reflink(source: string, target: string): Promise<boolean> {
  try {
    await copyFile(source, target, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ImageCopyError(`'${target}' already exists`);
    return false;
  }
}

async function sparseCopy(
  source: string,
  target: string,
  total: number,
  onProgress: ((progress: ImageCopyProgress) => void) | undefined,
): Promise<void> {
  let input: FileHandle | undefined;
  let output: FileHandle | undefined;
  try {
    input = await open(source, 'r');
    output = await open(target, 'wx', 0o600);
    const chunk = new Uint8Array(CHUNK_BYTES);
    let position = 0;
    while (position < total) {
      const { bytesRead } = await input.read(chunk, 0, Math.min(CHUNK_BYTES, total - position), position);
      if (bytesRead === 0) throw new ImageCopyError(`'${source}' became shorter while it was copied`);
      const data = chunk.subarray(0, bytesRead);
      // A zero chunk stays a hole: the file's size (set at the end) makes it read as zeros.
      if (!isAllZero(data)) {
        let written = 0;
        while (written < bytesRead) {
          const result = await output.write(data, written, bytesRead - written, position + written);
          written += result.bytesWritten;
        }
      }
      position += bytesRead;
      onProgress?.({ done: position, total });
    }
    await output.truncate(total);
  } finally {
    await input?.close();
    await output?.close();
  }
}
