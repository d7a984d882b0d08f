// Where the guest material built by scripts/guest/build-all.sh lives: the stock Debian kernel,
// Vireo's small kernel and the test initramfs, described by $VIREO_CACHE/guest/manifest.json.
// The small kernel with the initramfs is also the built-in default guest of `vireo run`.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';

export const MANIFEST_VERSION = 2;

const AbsolutePath = z.string().refine(isAbsolute, 'must be an absolute path');

const Manifest = z.object({
  version: z.literal(MANIFEST_VERSION),
  builtAt: z.string(),
  /** Debian's stock kernel, unpacked from the image package linux-image-amd64 depends on. */
  debianKernel: z.object({
    package: z.string(),
    version: z.string(),
    release: z.string(),
    bzImage: AbsolutePath,
    /** The ELF extracted from the bzImage, with the Xen PVH entry note. */
    vmlinux: AbsolutePath,
    /** lib/modules/<release> with modules.dep. */
    modules: AbsolutePath,
  }),
  /** Built from Debian's linux-source package with scripts/guest/small-kernel.config. */
  smallKernel: z.object({
    sourcePackage: z.string(),
    version: z.string(),
    configHash: z.string(),
    release: z.string(),
    bzImage: AbsolutePath,
    vmlinux: AbsolutePath,
    config: AbsolutePath,
  }),
  /** newc cpio, uncompressed: the kernel unpacks it without running a decompressor. */
  initramfs: AbsolutePath,
  /** The same archive, gzip-compressed. */
  initramfsGzip: AbsolutePath,
  busybox: z.object({ version: z.string() }),
});
export type GuestManifest = z.infer<typeof Manifest>;

export interface GuestMaterial extends GuestManifest {
  /** What `vireo run` boots without arguments: the small kernel's bzImage with the initramfs. */
  defaultGuest: { kernel: string; initrd: string };
}

export type GuestMaterialResult = { material: GuestMaterial } | { reason: string };

export function vireoCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.VIREO_CACHE || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vireo');
}

export function manifestPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(vireoCacheDir(env), 'guest', 'manifest.json');
}

/** Every file the manifest promises, for checking that none has gone since it was written. */
export function manifestFiles(manifest: GuestManifest): string[] {
  return [
    manifest.debianKernel.bzImage,
    manifest.debianKernel.vmlinux,
    join(manifest.debianKernel.modules, 'modules.dep'),
    manifest.smallKernel.bzImage,
    manifest.smallKernel.vmlinux,
    manifest.smallKernel.config,
    manifest.initramfs,
    manifest.initramfsGzip,
  ];
}

/** Reads and checks the manifest; says why when the material cannot be used. */
export function readGuestMaterial(path = manifestPath()): GuestMaterialResult {
  if (!existsSync(path)) return { reason: `no manifest at ${path}` };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    return { reason: `${path} is not readable JSON (${(e as Error).message})` };
  }
  const parsed = Manifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      reason: `${path} is not a version ${MANIFEST_VERSION} manifest (${issue?.path.join('.')}: ${issue?.message})`,
    };
  }
  const manifest = parsed.data;
  const missing = manifestFiles(manifest).find((file) => !isNonEmptyFile(file));
  if (missing) return { reason: `${missing}, named by ${path}, is missing or empty` };
  return {
    material: {
      ...manifest,
      defaultGuest: { kernel: manifest.smallKernel.bzImage, initrd: manifest.initramfs },
    },
  };
}

/** The material, or undefined when it has not been built or a file it names is gone. */
export function loadGuestMaterial(path = manifestPath()): GuestMaterial | undefined {
  const result = readGuestMaterial(path);
  return 'material' in result ? result.material : undefined;
}

function isNonEmptyFile(path: string): boolean {
  try {
    const stat = statSync(path);
    return stat.isFile() && stat.size > 0;
  } catch {
    return false;
  }
}
