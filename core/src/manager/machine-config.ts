// From a VM's spec to the MachineConfig its host process runs. Checked in the supervisor so a VM
// whose kernel is missing fails `vm.start` with a clear reason before a process is started.

import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { ApiError, ErrorCode, type VmSpec } from '../api/schema.js';
import { type GuestMaterial, loadGuestMaterial } from '../guest-material/index.js';
import { describeIssues, MachineConfig } from '../machine/config.js';
import { defaultMac } from '../net/mac.js';

/** The command line the built-in default guest boots with (as `vireo run` does). */
export const DEFAULT_GUEST_CMDLINE = 'console=ttyS0 panic=-1';
/** With the virtio console: kernel messages on both, /dev/console (the last one) on hvc0. */
export const DEFAULT_GUEST_CMDLINE_VIRTIO_CONSOLE = 'console=ttyS0 console=hvc0 panic=-1';

function checkReadable(what: string, path: string, mode = constants.R_OK): void {
  try {
    accessSync(path, mode);
  } catch (error) {
    throw new ApiError(
      ErrorCode.startFailed,
      `cannot read ${what} '${path}': ${(error as NodeJS.ErrnoException).code}`,
    );
  }
}

export function machineConfigFromSpec(
  spec: VmSpec,
  material: () => GuestMaterial | undefined = loadGuestMaterial,
): MachineConfig {
  let kernel: string;
  let initrd: string | undefined;
  let cmdline: string;
  if (spec.boot.kind === 'default') {
    const found = material();
    if (!found) {
      throw new ApiError(
        ErrorCode.startFailed,
        'the built-in default guest is not built yet: run scripts/setup first',
      );
    }
    kernel = found.defaultGuest.kernel;
    initrd = found.defaultGuest.initrd;
    cmdline = spec.console.kind === 'virtio' ? DEFAULT_GUEST_CMDLINE_VIRTIO_CONSOLE : DEFAULT_GUEST_CMDLINE;
    if (spec.boot.append) cmdline += ` ${spec.boot.append}`;
  } else {
    ({ kernel, initrd, cmdline } = spec.boot);
  }
  checkReadable('kernel', kernel);
  if (initrd !== undefined) checkReadable('initrd', initrd);
  for (const disk of spec.disks) {
    if (disk.format !== 'raw') {
      throw new ApiError(
        ErrorCode.notSupported,
        `disk '${disk.path}': ${disk.format} images are not supported by the VMM yet (raw only)`,
      );
    }
    checkReadable('disk', disk.path, disk.readonly ? constants.R_OK : constants.R_OK | constants.W_OK);
  }
  const parsed = MachineConfig.safeParse({
    disks: spec.disks.map((disk) => ({ path: disk.path, readOnly: disk.readonly, direct: disk.direct })),
    console: spec.console.kind,
    // A VM keeps its MAC address from one start to the next (DHCP leases, udev names follow it).
    network:
      spec.network.mode === 'none' || spec.network.mac
        ? spec.network
        : { ...spec.network, mac: defaultMac(createHash('sha256').update(spec.id).digest()) },
    kernel,
    initrd,
    cmdline,
    memoryBytes: spec.memoryBytes,
    cpus: spec.cpus,
    cpuProfile: spec.cpuProfile,
  });
  if (!parsed.success) throw new ApiError(ErrorCode.startFailed, describeIssues(parsed.error));
  return parsed.data;
}
