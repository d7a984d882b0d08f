// Form state shared by the wizard and the settings tab: the form, which fields were touched, and the
// schema's verdict on every change, so errors appear as people type.

import { useMemo, useState } from 'react';
import type { HostInfo } from '../../common/vm-store.js';
import { type Checked, checkForm, type FieldErrors, type WizardForm } from '../../common/wizard.js';

export interface FormState {
  form: WizardForm;
  checked: Checked;
  /** The errors of touched or revealed fields. */
  visible: FieldErrors;
  change(patch: Partial<WizardForm>, fields: string[]): void;
  /** Shows these fields' errors though untouched (after a Next or Save attempt). */
  reveal(fields: string[]): void;
  /** Starts over from this form (a saved VM's, whose copies are now its own disks). */
  reset(form: WizardForm): void;
}

export function useForm(
  initial: () => WizardForm,
  host: HostInfo | undefined,
  takenNames: string[],
): FormState {
  const [form, setForm] = useState(initial);
  const [touched, setTouched] = useState<ReadonlySet<string>>(new Set());
  const checked = useMemo(() => checkForm(form, { host, takenNames }), [form, host, takenNames]);
  const visible = Object.fromEntries(Object.entries(checked.errors).filter(([field]) => touched.has(field)));
  return {
    form,
    checked,
    visible,
    change(patch, fields) {
      setForm((old) => ({ ...old, ...patch }));
      if (fields.length > 0) setTouched((old) => new Set([...old, ...fields]));
    },
    reveal(fields) {
      setTouched((old) => new Set([...old, ...fields]));
    },
    reset(form) {
      setForm(form);
      setTouched(new Set());
    },
  };
}

/** Moves focus to the first field shown with an error, so keyboard users land on it. */
export function focusFirstError(): void {
  requestAnimationFrame(() => {
    const invalid = document.querySelector<HTMLElement>('[aria-invalid="true"]');
    invalid?.focus();
  });
}
