// Creating a VM, step by step: source, resources, disks, network, console, review. Each step's
// fields are checked with the API's schema as they are typed; Next stops at a step with errors.

import { useEffect, useMemo, useRef, useState } from 'react';
import { ApiError, ErrorCode } from '../../../../core/src/api/schema.js';
import { describeError } from '../../common/client.js';
import {
  emptyForm,
  errorsOfStep,
  fieldNamedBy,
  STEPS,
  type StepId,
  stepOfField,
  type WizardForm,
} from '../../common/wizard.js';
import { useServices, useVms } from '../context.js';
import { href, navigate } from '../route.js';
import { CopyProgress } from './CopyProgress.js';
import {
  ConsoleSection,
  DisksSection,
  NameField,
  NetworkSection,
  ResourcesSection,
  type SectionProps,
  SourceSection,
} from './fields.js';
import { focusFirstError, useForm } from './use-form.js';

export function Wizard() {
  const { store } = useServices();
  const host = useVms((state) => state.host);
  const vms = useVms((state) => state.vms);
  const pending = useVms((state) => state.pending);
  const names = useMemo(() => vms.map((vm) => vm.spec.name), [vms]);
  // The VM being created is listed (its `created` event) just before the answer: its own name
  // must not turn the form invalid meanwhile, so the names stay as they were at the submit.
  const namesAtSubmit = useRef(names);
  if (!pending) namesAtSubmit.current = names;
  const state = useForm(emptyForm, host, namesAtSubmit.current);
  const [step, setStep] = useState<StepId>('source');
  const [submitError, setSubmitError] = useState<string>();
  /** A failed create's error on the image field it names, until that form changes. */
  const [fieldError, setFieldError] = useState<{ field: string; text: string }>();
  const index = STEPS.findIndex((s) => s.id === step);
  const formRef = useRef<HTMLFormElement>(null);
  // Each step starts with the keyboard on its first field.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs when the step changes
  useEffect(() => {
    formRef.current?.querySelector<HTMLElement>('input, button[type="submit"]')?.focus();
  }, [step]);
  const stepErrors = (id: StepId) => Object.keys(errorsOfStep(state.checked.errors, id));

  const goTo = (target: StepId) => {
    // Forward only past valid steps; back always.
    const targetIndex = STEPS.findIndex((s) => s.id === target);
    for (const s of STEPS.slice(0, targetIndex)) {
      const invalid = stepErrors(s.id);
      if (invalid.length > 0) {
        state.reveal(invalid);
        setStep(s.id);
        focusFirstError();
        return;
      }
    }
    setStep(target);
  };

  const submit = async () => {
    // The store refuses a second create while one runs; the button is disabled meanwhile too.
    if (store.getState().pending) return;
    const params = state.checked.params;
    if (!params) {
      goTo('review');
      return;
    }
    setSubmitError(undefined);
    setFieldError(undefined);
    try {
      const info = await store.getState().create(params);
      navigate({ view: 'vm', id: info.spec.id, tab: 'console' });
    } catch (error) {
      const text = describeError(error);
      const field = fieldNamedBy(state.form, text);
      if (field) {
        setFieldError({ field, text });
        setStep(stepOfField(field));
        focusFirstError();
        return;
      }
      if (error instanceof ApiError && error.code === ErrorCode.nameTaken) setStep('source');
      setSubmitError(text);
    }
  };

  const props: SectionProps = {
    form: state.form,
    errors: fieldError ? { ...state.visible, [fieldError.field]: fieldError.text } : state.visible,
    change(patch, fields) {
      setFieldError(undefined);
      state.change(patch, fields);
    },
    host,
  };
  return (
    <section aria-labelledby="wizard-title" className="wizard">
      <div className="page-head">
        <h1 id="wizard-title">New virtual machine</h1>
        <a href={href({ view: 'list' })}>Cancel</a>
      </div>
      <nav aria-label="Steps">
        <ol className="steps">
          {STEPS.map((s, i) => (
            <li key={s.id}>
              <button
                type="button"
                disabled={pending !== undefined}
                aria-current={s.id === step ? 'step' : undefined}
                className={stepErrors(s.id).length > 0 && i < index ? 'step-invalid' : undefined}
                onClick={() => goTo(s.id)}
              >
                <span className="step-number">{i + 1}</span> {s.title}
              </button>
            </li>
          ))}
        </ol>
      </nav>
      <form
        ref={formRef}
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          if (step === 'review') void submit();
          else goTo(STEPS[index + 1]!.id);
        }}
      >
        <h2>{STEPS[index]!.title}</h2>
        {step === 'source' && (
          <>
            <NameField {...props} />
            <SourceSection {...props} />
          </>
        )}
        {step === 'resources' && <ResourcesSection {...props} />}
        {step === 'disks' && <DisksSection {...props} />}
        {step === 'network' && <NetworkSection {...props} />}
        {step === 'console' && <ConsoleSection {...props} />}
        {step === 'review' && <Review form={state.form} />}
        {pending && <CopyProgress pending={pending} />}
        {submitError && (
          <p className="form-error" role="alert">
            {submitError}
          </p>
        )}
        <div className="wizard-buttons">
          <button
            type="button"
            disabled={index === 0 || pending !== undefined}
            onClick={() => setStep(STEPS[index - 1]!.id)}
          >
            Back
          </button>
          <button type="submit" className="primary" disabled={pending !== undefined}>
            {step === 'review' ? (pending ? 'Creating…' : 'Create') : 'Next'}
          </button>
        </div>
      </form>
    </section>
  );
}

export function Review({ form }: { form: WizardForm }) {
  const source =
    form.source === 'default'
      ? 'the built-in guest'
      : form.source === 'kernel'
        ? `kernel ${form.kernel}${form.initrd ? ` with initrd ${form.initrd}` : ''}`
        : `disk image ${form.image}${form.imageCopy ? ' (a copy)' : ' (in place)'} through kernel ${form.kernel}`;
  return (
    <dl className="review">
      <dt>Name</dt>
      <dd>{form.name}</dd>
      <dt>Boots</dt>
      <dd>{source}</dd>
      {form.source !== 'default' && (
        <>
          <dt>Command line</dt>
          <dd>
            <code>{form.cmdline || '(empty)'}</code>
          </dd>
        </>
      )}
      <dt>CPUs</dt>
      <dd>{form.cpus}</dd>
      <dt>Memory</dt>
      <dd>{form.memory}</dd>
      <dt>Disks</dt>
      <dd>
        {form.disks.length === 0
          ? 'none'
          : form.disks
              .map((disk) =>
                disk.kind === 'new'
                  ? `new blank ${disk.size}${disk.direct ? ' (O_DIRECT)' : ''}`
                  : `${disk.path}${disk.copy ? ' (a copy)' : disk.readonly ? ' (read-only)' : ''}${disk.direct ? ' (O_DIRECT)' : ''}`,
              )
              .join(', ')}
      </dd>
      <dt>Network</dt>
      <dd>
        {form.network === 'none' ? 'none' : form.network === 'user' ? 'user-mode' : `tap ${form.tap}`}
        {form.network !== 'none' && form.mac && ` (${form.mac})`}
        {form.network === 'user' && form.forwards.trim() && `, forwards ${form.forwards.trim()}`}
      </dd>
      <dt>Console</dt>
      <dd>{form.console === 'serial' ? 'serial port (ttyS0)' : 'virtio console (hvc0)'}</dd>
    </dl>
  );
}
