// The VM library: one folder per VM under $XDG_DATA_HOME/vireo/vms/<id>/ holding spec.json (and
// later its disks, logs and snapshots). Every write is atomic. A spec.json that fails validation is
// reported with its fields and reasons and is never rewritten or dropped: the person may fix it.

import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  ApiError,
  type Disk,
  ErrorCode,
  type InvalidVm,
  SPEC_VERSION,
  type SpecIssue,
  VmChanges,
  VmCreateParams,
  VmId,
  VmSpec,
  zodIssues,
} from '../api/schema.js';
import { fsyncDirectory, writeFileAtomic } from './atomic-file.js';
import { copyImage, ImageCopyError, type ImageCopyProgress, imageSize } from './image-copy.js';

export type LoadedVm = { ok: true; spec: VmSpec } | { ok: false; invalid: InvalidVm };

interface CacheEntry {
  mtimeMs: number;
  size: number;
  loaded: LoadedVm;
}

export const SPEC_FILE = 'spec.json';
/** A VM folder while create() makes its disks; hidden (dot) so scans skip it. */
const STAGING_PREFIX = '.creating-';
/** A deleted VM's folder while its files are removed. */
const TRASH_PREFIX = '.deleted-';

export interface LibraryWriteOptions {
  now?: Date;
  /** Progress of the disk copies a create() or update() makes, in bytes. */
  onProgress?: (id: string, progress: ImageCopyProgress) => void;
}

/** One collator for every sort: String.localeCompare builds one per call. */
const nameOrder = new Intl.Collator(undefined, { numeric: true });

/** A folder-safe id from a name: "Debian 12 (test)" -> "debian-12-test". */
export function slugFromName(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
  return slug || 'vm';
}

export class VmLibrary {
  /** Parsed specs by id, reused while the file's mtime and size are unchanged. */
  private readonly cache = new Map<string, CacheEntry>();
  /** Names of VMs whose create() is still making their disks: taken, though not yet listed. */
  private readonly creatingNames = new Set<string>();

  constructor(readonly vmsDir: string) {
    mkdirSync(vmsDir, { recursive: true, mode: 0o700 });
  }

  specPath(id: string): string {
    return join(this.vmsDir, id, SPEC_FILE);
  }

  /** Every VM folder: the valid specs sorted by name, and the folders whose spec cannot be used. */
  scan(): { specs: VmSpec[]; invalid: InvalidVm[] } {
    const specs: VmSpec[] = [];
    const invalid: InvalidVm[] = [];
    const ids = new Set<string>();
    for (const entry of readdirSync(this.vmsDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      ids.add(entry.name);
      const loaded = this.load(entry.name);
      if (!loaded) continue;
      if (loaded.ok) specs.push(loaded.spec);
      else invalid.push(loaded.invalid);
    }
    for (const id of this.cache.keys()) if (!ids.has(id)) this.cache.delete(id);
    specs.sort((a, b) => nameOrder.compare(a.name, b.name) || nameOrder.compare(a.id, b.id));
    return { specs, invalid };
  }

  /** The VM in folder `id`, or undefined when there is no such folder. */
  load(id: string): LoadedVm | undefined {
    const file = this.specPath(id);
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.cache.delete(id);
      if (!VmId.safeParse(id).success) return undefined;
      try {
        if (!statSync(join(this.vmsDir, id)).isDirectory()) return undefined;
      } catch {
        return undefined;
      }
      return invalidVm(id, file, [{ path: SPEC_FILE, message: 'missing' }]);
    }
    const cached = this.cache.get(id);
    if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.loaded;
    const loaded = parseSpecFile(id, file);
    this.cache.set(id, { mtimeMs: stat.mtimeMs, size: stat.size, loaded });
    return loaded;
  }

  /** The valid spec of `id`; VM not found or invalid spec are ApiErrors. */
  get(id: string): VmSpec {
    const loaded = this.load(id);
    if (!loaded) throw new ApiError(ErrorCode.vmNotFound, `no VM with id '${id}'`);
    if (!loaded.ok) {
      throw new ApiError(
        ErrorCode.invalidSpec,
        `the spec of VM '${id}' is invalid (${loaded.invalid.file}): ${loaded.invalid.issues
          .map((issue) => `${issue.path}: ${issue.message}`)
          .join('; ')}`,
        loaded.invalid,
      );
    }
    return loaded.spec;
  }

  /** The id of the VM named `ref` by id or by name (ids win). */
  resolve(ref: string): string {
    if (VmId.safeParse(ref).success && this.load(ref)) return ref;
    const { specs } = this.scan();
    const byName = specs.find((spec) => spec.name === ref);
    if (byName) return byName.id;
    throw new ApiError(ErrorCode.vmNotFound, `no VM named '${ref}'`);
  }

  /**
   * Adds a VM. Disks asked for with `create` are made in its folder first: blank ones at once,
   * copies of existing images with progress (which can take minutes). Until the spec is written
   * the folder is a hidden staging folder, so a half-made VM never shows in the library.
   */
  async create(params: unknown, options: LibraryWriteOptions = {}): Promise<VmSpec> {
    const settings = VmCreateParams.safeParse(params);
    if (!settings.success) {
      throw new ApiError(ErrorCode.invalidParams, 'invalid VM settings', zodIssues(settings.error));
    }
    const { name } = settings.data;
    this.assertNameFree(name);
    const id = this.freeId(slugFromName(name));
    const dir = join(this.vmsDir, id);
    const staging = join(this.vmsDir, `${STAGING_PREFIX}${id}`);
    const now = (options.now ?? new Date()).toISOString();
    const { disks, images } = placeNewDisks(dir, settings.data.disks);
    const spec = VmSpec.parse({
      ...settings.data,
      disks,
      version: SPEC_VERSION,
      id,
      createdAt: now,
      updatedAt: now,
    });
    mkdirSync(staging, { mode: 0o700 });
    this.creatingNames.add(name);
    try {
      await createImages(staging, images, (progress) => options.onProgress?.(id, progress));
      writeFileAtomic(join(staging, SPEC_FILE), `${JSON.stringify(spec, null, 2)}\n`);
      renameSync(staging, dir);
      fsyncDirectory(this.vmsDir);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    } finally {
      this.creatingNames.delete(name);
    }
    return spec;
  }

  /** Changes a VM's settings; new disks are made in its folder first (see create()). */
  async update(id: string, changes: unknown, options: LibraryWriteOptions = {}): Promise<VmSpec> {
    const current = this.get(id);
    const parsed = VmChanges.safeParse(changes);
    if (!parsed.success) {
      throw new ApiError(ErrorCode.invalidParams, 'invalid changes', zodIssues(parsed.error));
    }
    if (parsed.data.name !== undefined && parsed.data.name !== current.name) {
      this.assertNameFree(parsed.data.name);
    }
    const dir = join(this.vmsDir, id);
    const placed = parsed.data.disks && placeNewDisks(dir, parsed.data.disks);
    const next = VmSpec.safeParse({
      ...current,
      ...parsed.data,
      ...(placed && { disks: placed.disks }),
      updatedAt: (options.now ?? new Date()).toISOString(),
    });
    if (!next.success) {
      throw new ApiError(ErrorCode.invalidParams, 'invalid changes', zodIssues(next.error));
    }
    if (placed) await createImages(dir, placed.images, (progress) => options.onProgress?.(id, progress));
    this.write(next.data);
    return next.data;
  }

  /**
   * Removes the VM's folder; works for an invalid spec too (an explicit choice of the person). The
   * VM leaves the library before this returns (errors are thrown at once); the promise resolves
   * when its files (big disks) are gone.
   */
  delete(id: string): Promise<void> {
    if (!this.load(id)) throw new ApiError(ErrorCode.vmNotFound, `no VM with id '${id}'`);
    // Rename first so a crash mid-delete never leaves a half-deleted folder that looks like a VM.
    const dir = join(this.vmsDir, id);
    const trash = join(this.vmsDir, `${TRASH_PREFIX}${id}-${Date.now()}`);
    rmSync(trash, { recursive: true, force: true });
    renameSync(dir, trash);
    fsyncDirectory(this.vmsDir);
    this.cache.delete(id);
    // Freeing gigabytes of disk blocks can take a while: on the thread pool, not the event loop.
    return rm(trash, { recursive: true, force: true });
  }

  /** Removes what a crash left half-done: folders of deletes and of creates that did not finish. */
  async removeLeftovers(): Promise<string[]> {
    const leftovers = readdirSync(this.vmsDir).filter(
      (name) => name.startsWith(TRASH_PREFIX) || name.startsWith(STAGING_PREFIX),
    );
    await Promise.all(leftovers.map((name) => rm(join(this.vmsDir, name), { recursive: true, force: true })));
    return leftovers;
  }

  private write(spec: VmSpec): void {
    writeFileAtomic(this.specPath(spec.id), `${JSON.stringify(spec, null, 2)}\n`);
  }

  private assertNameFree(name: string): void {
    const { specs } = this.scan();
    if (this.creatingNames.has(name) || specs.some((spec) => spec.name === name)) {
      throw new ApiError(ErrorCode.nameTaken, `a VM named '${name}' already exists`);
    }
  }

  private freeId(base: string): string {
    const taken = new Set(readdirSync(this.vmsDir).map((entry) => entry.replace(STAGING_PREFIX, '')));
    if (!taken.has(base)) return base;
    for (let n = 2; ; n++) {
      const candidate = `${base}-${n}`;
      if (!taken.has(candidate)) return candidate;
    }
  }
}

/** A disk image create() or update() makes: blank, or a copy of `from`. */
interface NewImage {
  /** Where the spec says it is (in the VM's folder). */
  path: string;
  sizeBytes?: number;
  from?: string;
}

/**
 * Names the images asked for (`{ create: { sizeBytes?, from? } }`) as disk-N.raw files in the VM's
 * folder, N not yet taken there, and returns the disk list as the spec keeps it.
 */
function placeNewDisks(
  dir: string,
  requested: (Disk | { create: { sizeBytes?: number; from?: string }; direct: boolean })[],
): { disks: Disk[]; images: NewImage[] } {
  const images: NewImage[] = [];
  let n = 0;
  const disks = requested.map((disk): Disk => {
    if (!('create' in disk)) return disk;
    let path: string;
    do path = join(dir, `disk-${n++}.raw`);
    while (existsSync(path) || requested.some((other) => 'path' in other && other.path === path));
    images.push({ path, ...disk.create });
    return { path, readonly: false, format: 'raw', direct: disk.direct };
  });
  return { disks, images };
}

/**
 * Makes the images in `writeDir` (the VM's folder or its staging folder), under the names their
 * paths give. Blank ones are sparse files: no blocks are written until the guest writes them.
 * Copies report their progress in bytes over all of them. On failure none is left.
 */
async function createImages(
  writeDir: string,
  images: NewImage[],
  onProgress: (progress: ImageCopyProgress) => void,
): Promise<void> {
  const made: string[] = [];
  try {
    const copies = images.filter((image) => image.from !== undefined);
    const sizes = await Promise.all(copies.map((image) => imageSize(image.from!)));
    const total = sizes.reduce((sum, size) => sum + size, 0);
    let copied = 0;
    for (const image of images) {
      const target = join(writeDir, basename(image.path));
      if (image.from === undefined) {
        made.push(target);
        createBlankImage(target, image.sizeBytes!);
        continue;
      }
      made.push(target);
      await copyImage(image.from, target, {
        sizeBytes: image.sizeBytes,
        onProgress: (progress) => onProgress({ done: copied + progress.done, total }),
      });
      copied += sizes[copies.indexOf(image)]!;
    }
    if (images.length > 0) fsyncDirectory(writeDir);
  } catch (error) {
    for (const path of made) rmSync(path, { force: true });
    if (error instanceof ImageCopyError) throw new ApiError(ErrorCode.invalidParams, error.message);
    throw error;
  }
}

function createBlankImage(path: string, sizeBytes: number): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    ftruncateSync(fd, sizeBytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function invalidVm(id: string, file: string, issues: SpecIssue[]): LoadedVm {
  return { ok: false, invalid: { id, file, issues } };
}

export function parseSpecFile(id: string, file: string): LoadedVm {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return invalidVm(id, file, [
      { path: SPEC_FILE, message: `unreadable: ${(error as NodeJS.ErrnoException).code}` },
    ]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return invalidVm(id, file, [{ path: SPEC_FILE, message: `not JSON: ${(error as Error).message}` }]);
  }
  const parsed = VmSpec.safeParse(json);
  if (!parsed.success) return invalidVm(id, file, zodIssues(parsed.error));
  if (parsed.data.id !== id) {
    return invalidVm(id, file, [
      { path: 'id', message: `'${parsed.data.id}' does not match its folder name '${id}'` },
    ]);
  }
  return { ok: true, spec: parsed.data };
}
