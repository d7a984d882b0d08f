// The form sections the creation wizard steps through and the settings tab shows at once. Each
// field carries its error right below it, tied to it with aria-describedby.

import type { ReactNode } from 'react';
import type { HostInfo } from '../../common/vm-store.js';
import {
  approximateSize,
  type DiskRow,
  type FieldErrors,
  IMAGE_CMDLINE,
  type WizardForm,
} from '../../common/wizard.js';

export interface SectionProps {
  form: WizardForm;
  /** Errors to show (those of fields touched, or all after a submit attempt). */
  errors: FieldErrors;
  change(patch: Partial<WizardForm>, fields: string[]): void;
  host?: HostInfo;
}

function Field({
  id,
  label,
  error,
  hint,
  children,
}: {
  id: string;
  label: string;
  error?: string;
  hint?: ReactNode;
  children: (props: { id: string; 'aria-invalid': boolean; 'aria-describedby'?: string }) => ReactNode;
}) {
  const described = [error ? `${id}-error` : '', hint ? `${id}-hint` : ''].filter(Boolean).join(' ');
  return (
    <div className={`field${error ? ' has-error' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children({ id, 'aria-invalid': Boolean(error), ...(described && { 'aria-describedby': described }) })}
      {hint && (
        <p className="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {error && (
        <p className="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}

function TextField({
  name,
  label,
  value,
  error,
  hint,
  placeholder,
  onChange,
}: {
  name: string;
  label: string;
  value: string;
  error?: string;
  hint?: ReactNode;
  placeholder?: string;
  onChange(value: string): void;
}) {
  return (
    <Field id={`field-${name.replaceAll('.', '-')}`} label={label} error={error} hint={hint}>
      {(props) => (
        <input
          {...props}
          name={name}
          type="text"
          spellCheck={false}
          autoComplete="off"
          value={value}
          placeholder={placeholder}
          onChange={(event) => onChange(event.target.value)}
        />
      )}
    </Field>
  );
}

function Choice<T extends string>({
  name,
  legend,
  value,
  options,
  error,
  onChange,
}: {
  name: string;
  legend: string;
  value: T;
  options: readonly { value: T; label: string; hint?: string }[];
  error?: string;
  onChange(value: T): void;
}) {
  return (
    <fieldset className="choice">
      <legend>{legend}</legend>
      {options.map((option) => (
        <label key={option.value} className="choice-option">
          <input
            type="radio"
            name={name}
            value={option.value}
            checked={value === option.value}
            onChange={() => onChange(option.value)}
          />
          <span>
            {option.label}
            {option.hint && <small>{option.hint}</small>}
          </span>
        </label>
      ))}
      {error && <p className="field-error">{error}</p>}
    </fieldset>
  );
}

const PLACEMENTS = [
  {
    value: 'copy',
    label: "Copy it into the VM's folder",
    hint: 'the original stays as it is; holes stay holes',
  },
  { value: 'in-place', label: 'Use it where it is', hint: 'the guest writes to this file' },
] as const;

/** Copy an existing image into the VM's folder, or attach the file itself. */
function Placement({ name, copy, onChange }: { name: string; copy: boolean; onChange(copy: boolean): void }) {
  return (
    <Choice
      name={name}
      legend="The image"
      value={copy ? 'copy' : 'in-place'}
      options={PLACEMENTS}
      onChange={(placement) => onChange(placement === 'copy')}
    />
  );
}

export function NameField({ form, errors, change }: SectionProps) {
  return (
    <TextField
      name="name"
      label="Name"
      value={form.name}
      error={errors.name}
      onChange={(name) => change({ name }, ['name'])}
    />
  );
}

export function SourceSection({ form, errors, change }: SectionProps) {
  return (
    <>
      <Choice
        name="source"
        legend="Boot from"
        value={form.source}
        error={errors.source}
        options={[
          {
            value: 'default',
            label: 'The built-in guest',
            hint: 'a small Linux kernel with a busybox shell',
          },
          {
            value: 'kernel',
            label: 'A Linux kernel',
            hint: 'bzImage or vmlinux, with an initrd and command line',
          },
          {
            value: 'image',
            label: 'A disk image',
            hint: 'a root filesystem image, booted by a kernel you choose',
          },
        ]}
        onChange={(source) =>
          change(
            {
              source,
              ...(source === 'image' && form.cmdline === 'console=ttyS0' && { cmdline: IMAGE_CMDLINE }),
              ...(source === 'kernel' && form.cmdline === IMAGE_CMDLINE && { cmdline: 'console=ttyS0' }),
            },
            ['source'],
          )
        }
      />
      {form.source === 'image' && (
        <TextField
          name="image"
          label="Disk image"
          value={form.image}
          error={errors.image}
          placeholder="/var/lib/images/debian.raw"
          hint="Attached first, as /dev/vda (raw images)."
          onChange={(image) => change({ image }, ['image'])}
        />
      )}
      {form.source === 'image' && (
        <Placement
          name="imageCopy"
          copy={form.imageCopy}
          onChange={(imageCopy) => change({ imageCopy }, ['image'])}
        />
      )}
      {form.source !== 'default' && (
        <>
          <TextField
            name="kernel"
            label="Kernel"
            value={form.kernel}
            error={errors.kernel}
            placeholder="/boot/vmlinuz"
            onChange={(kernel) => change({ kernel }, ['kernel'])}
          />
          {form.source === 'kernel' && (
            <TextField
              name="initrd"
              label="Initrd (optional)"
              value={form.initrd}
              error={errors.initrd}
              placeholder="/boot/initrd.img"
              onChange={(initrd) => change({ initrd }, ['initrd'])}
            />
          )}
          <TextField
            name="cmdline"
            label="Kernel command line"
            value={form.cmdline}
            error={errors.cmdline}
            onChange={(cmdline) => change({ cmdline }, ['cmdline'])}
          />
        </>
      )}
    </>
  );
}

export function ResourcesSection({ form, errors, change, host }: SectionProps) {
  return (
    <>
      <TextField
        name="cpus"
        label="CPUs"
        value={form.cpus}
        error={errors.cpus}
        hint={host && `The host has ${host.cpus}.`}
        onChange={(cpus) => change({ cpus }, ['cpus'])}
      />
      <TextField
        name="memory"
        label="Memory"
        value={form.memory}
        error={errors.memory}
        hint={`A size such as 512M or 2G${host ? `; the host has ${approximateSize(host.memoryBytes)}` : ''}.`}
        onChange={(memory) => change({ memory }, ['memory'])}
      />
    </>
  );
}

export function DisksSection({ form, errors, change }: SectionProps) {
  const setRow = (index: number, row: DiskRow, field: string) =>
    change({ disks: form.disks.map((old, i) => (i === index ? row : old)) }, [`disks.${index}.${field}`]);
  return (
    <div className="disks">
      {form.disks.length === 0 && (
        <p className="hint">No disks{form.source === 'image' && ' besides the image'}.</p>
      )}
      <ol>
        {form.disks.map((row, index) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions (vda, vdb, ...)
          <li key={index} className="disk-row">
            {row.kind === 'new' ? (
              <TextField
                name={`disks.${index}.size`}
                label={`New blank disk ${index + 1}: size`}
                value={row.size}
                error={errors[`disks.${index}.size`]}
                hint="A sparse raw image in the VM's folder."
                onChange={(size) => setRow(index, { ...row, size }, 'size')}
              />
            ) : (
              <>
                <TextField
                  name={`disks.${index}.path`}
                  label={`Existing image ${index + 1}: path`}
                  value={row.path}
                  error={errors[`disks.${index}.path`]}
                  onChange={(path) => setRow(index, { ...row, path }, 'path')}
                />
                <Placement
                  name={`disks.${index}.copy`}
                  copy={row.copy}
                  onChange={(copy) => setRow(index, { ...row, copy }, 'path')}
                />
                {!row.copy && (
                  <label className="check">
                    <input
                      type="checkbox"
                      checked={row.readonly}
                      onChange={(event) => setRow(index, { ...row, readonly: event.target.checked }, 'path')}
                    />
                    Read-only
                  </label>
                )}
              </>
            )}
            <label className="check">
              <input
                type="checkbox"
                name={`disks.${index}.direct`}
                checked={row.direct}
                onChange={(event) => setRow(index, { ...row, direct: event.target.checked }, 'path')}
              />
              Bypass the host's page cache (O_DIRECT)
            </label>
            <button
              type="button"
              className="link"
              onClick={() => change({ disks: form.disks.filter((_, i) => i !== index) }, [])}
            >
              Remove
            </button>
          </li>
        ))}
      </ol>
      <div className="actions">
        <button
          type="button"
          onClick={() => change({ disks: [...form.disks, { kind: 'new', size: '8G', direct: false }] }, [])}
        >
          Add a new disk
        </button>
        <button
          type="button"
          onClick={() =>
            change(
              {
                disks: [
                  ...form.disks,
                  { kind: 'existing', path: '', readonly: false, copy: true, direct: false },
                ],
              },
              [],
            )
          }
        >
          Add an existing image
        </button>
      </div>
    </div>
  );
}

export function NetworkSection({ form, errors, change }: SectionProps) {
  return (
    <>
      <Choice
        name="network"
        legend="How the VM reaches the network"
        value={form.network}
        error={errors.network}
        options={[
          { value: 'none', label: 'None' },
          { value: 'user', label: 'User-mode (passt)', hint: 'outgoing connections, no setup' },
          { value: 'tap', label: 'Bridged (tap)', hint: 'a tap interface you created' },
        ]}
        onChange={(network) => change({ network }, ['network'])}
      />
      {form.network === 'tap' && (
        <TextField
          name="tap"
          label="Tap interface"
          value={form.tap}
          error={errors.tap}
          placeholder="tap0"
          onChange={(tap) => change({ tap }, ['tap'])}
        />
      )}
      {form.network === 'user' && (
        <TextField
          name="forwards"
          label="Port forwards (optional)"
          value={form.forwards}
          error={errors.forwards}
          placeholder="tcp:8080:80, 8022:22"
          hint="[tcp|udp:][address:]host port:guest port, separated by commas; the address is 127.0.0.1 unless given."
          onChange={(forwards) => change({ forwards }, ['forwards'])}
        />
      )}
      {form.network !== 'none' && (
        <TextField
          name="mac"
          label="MAC address (optional)"
          value={form.mac}
          error={errors.mac}
          placeholder="52:54:00:12:34:56"
          onChange={(mac) => change({ mac }, ['mac'])}
        />
      )}
    </>
  );
}

export function ConsoleSection({ form, errors, change }: SectionProps) {
  return (
    <Choice
      name="console"
      legend="The console the terminal shows"
      value={form.console}
      error={errors.console}
      options={[
        { value: 'serial', label: 'Serial port', hint: 'ttyS0: kernel messages from the first instruction' },
        { value: 'virtio', label: 'Virtio console', hint: 'hvc0: faster, once the driver is up' },
      ]}
      onChange={(console) => change({ console }, ['console'])}
    />
  );
}
