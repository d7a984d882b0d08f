// The creation wizard's form: what people type, turned into vm.create params and checked by the
// same zod schema the daemon checks them with, so the errors next to the fields are the API's own.
// The settings tab of a stopped VM edits the same form (vm.update takes the same fields).

import { type Disk, type NewDisk, VmCreateParams, type VmSpec } from '../../../core/src/api/schema.js';
import { formatSize, parseSize } from '../../../core/src/api/size.js';
import { formatPortForward, type PortForward, parsePortForward } from '../../../core/src/net/config.js';
import type { HostInfo } from './vm-store.js';

/** Where the guest comes from. A disk image boots through a kernel with the image as its root. */
export type SourceKind = 'default' | 'kernel' | 'image';

/**
 * An existing image is either attached where it is (the guest writes to that file) or copied into
 * the VM's folder first (`copy`: the source stays as it was; a copy is never read-only).
 */
export type DiskRow = { direct: boolean } & (
  | { kind: 'new'; size: string }
  | { kind: 'existing'; path: string; readonly: boolean; copy: boolean }
);

export interface WizardForm {
  name: string;
  source: SourceKind;
  kernel: string;
  initrd: string;
  cmdline: string;
  /** With source 'image': the root filesystem image, attached first (/dev/vda). */
  image: string;
  /** With source 'image': copy the image into the VM's folder rather than boot the original. */
  imageCopy: boolean;
  cpus: string;
  memory: string;
  disks: DiskRow[];
  network: 'none' | 'user' | 'tap';
  tap: string;
  mac: string;
  /** With user networking: host-to-guest port forwards as typed, e.g. `tcp:8080:80, 8022:22`. */
  forwards: string;
  console: 'serial' | 'virtio';
}

export const IMAGE_CMDLINE = 'console=ttyS0 root=/dev/vda rw panic=-1';

export function emptyForm(): WizardForm {
  return {
    name: '',
    source: 'default',
    kernel: '',
    initrd: '',
    cmdline: 'console=ttyS0',
    image: '',
    imageCopy: true,
    cpus: '1',
    memory: '512M',
    disks: [],
    network: 'none',
    tap: '',
    mac: '',
    forwards: '',
    console: 'serial',
  };
}

/** The form of an existing VM, for its settings tab. */
export function formFromSpec(spec: VmSpec): WizardForm {
  const form = emptyForm();
  form.name = spec.name;
  form.cpus = String(spec.cpus);
  form.memory = formatSize(spec.memoryBytes);
  if (spec.boot.kind === 'kernel') {
    form.source = 'kernel';
    form.kernel = spec.boot.kernel;
    form.initrd = spec.boot.initrd ?? '';
    form.cmdline = spec.boot.cmdline;
  }
  form.disks = spec.disks.map((disk) => ({
    kind: 'existing',
    path: disk.path,
    readonly: disk.readonly,
    copy: false,
    direct: disk.direct,
  }));
  form.network = spec.network.mode;
  if (spec.network.mode !== 'none') form.mac = spec.network.mac ?? '';
  if (spec.network.mode === 'tap') form.tap = spec.network.tap;
  if (spec.network.mode === 'user') form.forwards = spec.network.forwards.map(formatPortForward).join(', ');
  form.console = spec.console.kind;
  return form;
}

/** A size to read rather than to type back: host memory is rarely a whole number of any unit. */
export function approximateSize(bytes: number): string {
  const exact = formatSize(bytes);
  if (/^\d+[GM]$/.test(exact) || bytes < 1024 ** 2) return exact;
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)}G` : `${(bytes / 1024 ** 2).toFixed(1)}M`;
}

/** Field name (a key of WizardForm, or `disks.N.size` / `disks.N.path`) -> what is wrong with it. */
export type FieldErrors = Record<string, string>;

export const STEPS = [
  { id: 'source', title: 'Source', fields: ['name', 'source', 'kernel', 'initrd', 'cmdline', 'image'] },
  { id: 'resources', title: 'Resources', fields: ['cpus', 'memory'] },
  { id: 'disks', title: 'Disks', fields: ['disks'] },
  { id: 'network', title: 'Network', fields: ['network', 'tap', 'mac', 'forwards'] },
  { id: 'console', title: 'Console', fields: ['console'] },
  { id: 'review', title: 'Review', fields: [] },
] as const;
export type StepId = (typeof STEPS)[number]['id'];

/** Which step a field is on (`disks.3.size` is on the disks step). */
export function stepOfField(field: string): StepId {
  const root = field.split('.')[0] ?? field;
  return STEPS.find((step) => (step.fields as readonly string[]).includes(root))?.id ?? 'review';
}

function parseCount(text: string): number {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
}

export interface Checked {
  /** The params when every field is valid. */
  params: VmCreateParams | undefined;
  errors: FieldErrors;
}

interface Context {
  host?: HostInfo;
  /** Names already taken by other VMs. */
  takenNames?: readonly string[];
}

/**
 * Builds vm.create params from the form and validates them with VmCreateParams. Text that is not a
 * number or size yet is reported here; everything else is the schema's verdict, mapped back from
 * its paths (boot.kernel, disks.1.create.sizeBytes, ...) to the form's fields.
 */
export function checkForm(form: WizardForm, context: Context = {}): Checked {
  const errors: FieldErrors = {};
  const cpus = parseCount(form.cpus);
  if (Number.isNaN(cpus)) errors.cpus = 'CPUs is a whole number';
  let memoryBytes = Number.NaN;
  try {
    memoryBytes = parseSize(form.memory);
  } catch (error) {
    errors.memory = (error as Error).message;
  }

  // Form rows -> disks as the API takes them; diskField maps each back to its row's field.
  const disks: (Disk | NewDisk)[] = [];
  const diskField: string[] = [];
  if (form.source === 'image') {
    disks.push(existingDisk(form.image, { readonly: false, copy: form.imageCopy, direct: false }));
    diskField.push('image');
  }
  form.disks.forEach((row, index) => {
    if (row.kind === 'new') {
      let sizeBytes = Number.NaN;
      try {
        sizeBytes = parseSize(row.size);
      } catch (error) {
        errors[`disks.${index}.size`] = (error as Error).message;
      }
      disks.push({ create: { sizeBytes }, direct: row.direct });
      diskField.push(`disks.${index}.size`);
    } else {
      disks.push(existingDisk(row.path, row));
      diskField.push(`disks.${index}.path`);
    }
  });

  const forwards: PortForward[] = [];
  if (form.network === 'user') {
    for (const text of form.forwards.split(/[\s,]+/).filter(Boolean)) {
      try {
        forwards.push(parsePortForward(text));
      } catch (error) {
        errors.forwards ??= (error as Error).message;
      }
    }
  }

  const params: VmCreateParams = {
    name: form.name,
    cpus,
    memoryBytes,
    boot:
      form.source === 'default'
        ? { kind: 'default' }
        : {
            kind: 'kernel',
            kernel: form.kernel.trim(),
            ...(form.initrd.trim() && form.source === 'kernel' && { initrd: form.initrd.trim() }),
            cmdline: form.cmdline,
          },
    disks,
    network:
      form.network === 'none'
        ? { mode: 'none' }
        : ({
            mode: form.network,
            ...(form.network === 'tap' && { tap: form.tap }),
            ...(form.network === 'user' && { forwards }),
            ...(form.mac.trim() && { mac: form.mac.trim() }),
          } as VmCreateParams['network']),
    console: { kind: form.console },
  };

  const parsed = VmCreateParams.safeParse(params);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const field = formField(issue.path, diskField);
      errors[field] ??= issue.message;
    }
  }
  if (context.host && !errors.memory && memoryBytes > context.host.memoryBytes) {
    errors.memory = `the host has ${approximateSize(context.host.memoryBytes)} of memory`;
  }
  if (context.host && !errors.cpus && cpus > context.host.cpus) {
    errors.cpus = `the host has ${context.host.cpus} CPUs`;
  }
  if (!errors.name && context.takenNames?.includes(form.name)) {
    errors.name = `a VM named '${form.name}' already exists`;
  }
  return { params: Object.keys(errors).length === 0 ? params : undefined, errors };
}

/** An image people named: a copy into the VM's folder, or the file itself. */
function existingDisk(
  path: string,
  { readonly, copy, direct }: { readonly: boolean; copy: boolean; direct: boolean },
): Disk | NewDisk {
  return copy
    ? { create: { from: path.trim() }, direct }
    : { path: path.trim(), readonly, format: 'raw', direct };
}

/** Whether the params copy any image, which takes a while and reports progress. */
export function copiesImages(params: Pick<VmCreateParams, 'disks'>): boolean {
  return params.disks?.some((disk) => 'create' in disk && disk.create.from !== undefined) ?? false;
}

/**
 * The field of the image a failed create or update names (`cannot read '/x.raw': EACCES`,
 * `copying '/x.raw' failed: ENOSPC ...`), so its error can stand next to it.
 */
export function fieldNamedBy(form: WizardForm, message: string): string | undefined {
  const named = (path: string) => path.trim() !== '' && message.includes(`'${path.trim()}'`);
  if (form.source === 'image' && named(form.image)) return 'image';
  const index = form.disks.findIndex((row) => row.kind === 'existing' && named(row.path));
  return index >= 0 ? `disks.${index}.path` : undefined;
}

function formField(path: PropertyKey[], diskField: string[]): string {
  const [head, next] = path;
  switch (head) {
    case 'memoryBytes':
      return 'memory';
    case 'boot':
      return typeof next === 'string' && next !== 'kind' ? next : 'source';
    case 'disks':
      return typeof next === 'number' ? (diskField[next] ?? 'disks') : 'disks';
    case 'network':
      return next === 'mac' || next === 'tap' || next === 'forwards' ? next : 'network';
    case 'console':
      return 'console';
    default:
      return String(head ?? 'name');
  }
}

/** The errors that belong to one step. */
export function errorsOfStep(errors: FieldErrors, step: StepId): FieldErrors {
  return Object.fromEntries(Object.entries(errors).filter(([field]) => stepOfField(field) === step));
}
