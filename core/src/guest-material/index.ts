// Where the guest material built by scripts/guest/build-all.sh lives: the stock Debian kernel,
// Vireo's small kernel and the test initramfs. The small kernel with the initramfs is also the
// built-in default guest of `vireo run`.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

const KernelFiles = z.object({ bzImage: z.string(), vmlinux: z.string() });

const Manifest = z.object({
  version: z.literal(1),
  debianKernel: KernelFiles.extend({ release: z.string() }),
  smallKernel: KernelFiles,
  initramfs: z.string(),
});
export type GuestManifest = z.infer<typeof Manifest>;

export interface GuestMaterial extends GuestManifest {
  defaultGuest: { kernel: string; initrd: string };
}

export function vireoCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.VIREO_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'vireo');
}

export function manifestPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(vireoCacheDir(env), 'guest', 'manifest.json');
}

/** The material, or undefined when it has not been built or a file it names is gone. */
export function loadGuestMaterial(path = manifestPath()): GuestMaterial | undefined {
  if (!existsSync(path)) return undefined;
  const parsed = Manifest.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) return undefined;
  const manifest = parsed.data;
  const files = [
    manifest.debianKernel.bzImage,
    manifest.debianKernel.vmlinux,
    manifest.smallKernel.bzImage,
    manifest.smallKernel.vmlinux,
    manifest.initramfs,
  ];
  if (!files.every((file) => existsSync(file))) return undefined;
  return {
    ...manifest,
    defaultGuest: { kernel: manifest.smallKernel.bzImage, initrd: manifest.initramfs },
  };
}
