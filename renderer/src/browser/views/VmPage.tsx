// One VM: its buttons, and tabs for the console, the details, the settings (editable while it is
// stopped) and what this window saw happen to it.

import { type KeyboardEvent, lazy, Suspense, useMemo, useState } from 'react';
import type { VmInfo } from '../../../../core/src/api/schema.js';
import { formatSize } from '../../../../core/src/api/size.js';
import { formatPortForward } from '../../../../core/src/net/config.js';
import { describeError } from '../../common/client.js';
import { actionAllowed } from '../../common/vm-actions.js';
import { formFromSpec } from '../../common/wizard.js';
import { useServices, useVms } from '../context.js';
import { href, navigate, VM_TABS, type VmTab } from '../route.js';
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
import { StateBadge, VmActions } from './VmActions.js';

// xterm.js loads with the first console shown, so the list is up sooner.
const ConsoleView = lazy(() =>
  import('./ConsoleView.js').then((module) => ({ default: module.ConsoleView })),
);

const TAB_TITLES: Record<VmTab, string> = {
  console: 'Console',
  details: 'Details',
  settings: 'Settings',
  log: 'Log',
};

export function VmPage({ id, tab }: { id: string; tab: VmTab }) {
  const phase = useVms((state) => state.phase);
  const vm = useVms((state) => state.vms.find((info) => info.spec.id === id));
  const error = useVms((state) => state.actionErrors[id]);

  if (phase === 'loading') {
    return (
      <p className="state-note" aria-busy="true">
        Loading…
      </p>
    );
  }
  if (!vm) {
    return (
      <div className="state-note empty">
        <p>There is no VM '{id}' (any more).</p>
        <a href={href({ view: 'list' })}>Back to the list</a>
      </div>
    );
  }

  const onTabKey = (event: KeyboardEvent<HTMLDivElement>) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (step === 0) return;
    // From the focused tab, which moves at once: the route (and `tab`) follows a hashchange later,
    // so a second key pressed before it would count from the old tab.
    const from = VM_TABS.find((name) => (event.target as HTMLElement).id === `tab-${name}`) ?? tab;
    const next = VM_TABS[(VM_TABS.indexOf(from) + step + VM_TABS.length) % VM_TABS.length]!;
    document.getElementById(`tab-${next}`)?.focus();
    navigate({ view: 'vm', id, tab: next });
  };

  return (
    <section aria-labelledby="vm-title" className="vm-page">
      <div className="page-head">
        <h1 id="vm-title">
          {vm.spec.name} <StateBadge state={vm.status.state} />
        </h1>
        <VmActions
          vm={vm}
          actions={['start', 'stop', 'pause', 'resume', 'reset', 'forceStop', 'delete']}
          onDeleted={() => navigate({ view: 'list' })}
        />
      </div>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      <div role="tablist" aria-label="VM views" className="tabs" onKeyDown={onTabKey} tabIndex={-1}>
        {VM_TABS.map((name) => (
          <a
            key={name}
            id={`tab-${name}`}
            role="tab"
            href={href({ view: 'vm', id, tab: name })}
            aria-selected={name === tab}
            aria-controls={`panel-${name}`}
            tabIndex={name === tab ? 0 : -1}
          >
            {TAB_TITLES[name]}
          </a>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} className="tab-panel">
        {tab === 'console' && (
          <Suspense fallback={<p className="state-note">Loading the console…</p>}>
            <ConsoleView vm={id} serial={vm.spec.console.kind === 'serial'} />
          </Suspense>
        )}
        {tab === 'details' && <Details vm={vm} />}
        {tab === 'settings' && <Settings vm={vm} />}
        {tab === 'log' && <Log vm={vm} />}
      </div>
    </section>
  );
}

function Details({ vm }: { vm: VmInfo }) {
  const { spec, status } = vm;
  const boot =
    spec.boot.kind === 'default'
      ? 'the built-in guest'
      : `${spec.boot.kernel}${spec.boot.initrd ? ` + ${spec.boot.initrd}` : ''}`;
  return (
    <dl className="review">
      <dt>Id</dt>
      <dd>
        <code>{spec.id}</code>
      </dd>
      <dt>State</dt>
      <dd>
        {status.state} since {new Date(status.since).toLocaleString()}
        {status.pid !== undefined && ` (VM host process ${status.pid})`}
      </dd>
      {status.lastExit && (
        <>
          <dt>Last exit</dt>
          <dd>
            {status.lastExit.reason}
            {status.lastExit.message && `: ${status.lastExit.message}`} at{' '}
            {new Date(status.lastExit.at).toLocaleString()}
          </dd>
        </>
      )}
      <dt>Boots</dt>
      <dd>{boot}</dd>
      {spec.boot.kind === 'kernel' && (
        <>
          <dt>Command line</dt>
          <dd>
            <code>{spec.boot.cmdline || '(empty)'}</code>
          </dd>
        </>
      )}
      <dt>CPUs</dt>
      <dd>
        {spec.cpus} ({spec.cpuProfile} CPU profile)
      </dd>
      <dt>Memory</dt>
      <dd>{formatSize(spec.memoryBytes)}</dd>
      <dt>Disks</dt>
      <dd>
        {spec.disks.length === 0 ? (
          'none'
        ) : (
          <ol className="plain">
            {spec.disks.map((disk, index) => (
              <li key={disk.path}>
                /dev/vd{String.fromCharCode(97 + index)}: <code>{disk.path}</code> ({disk.format}
                {disk.readonly && ', read-only'}
                {disk.direct && ', O_DIRECT'})
              </li>
            ))}
          </ol>
        )}
      </dd>
      <dt>Network</dt>
      <dd>
        {spec.network.mode}
        {spec.network.mode === 'tap' && ` ${spec.network.tap}`}
        {spec.network.mode !== 'none' && spec.network.mac && `, MAC ${spec.network.mac}`}
        {spec.network.mode === 'user' &&
          spec.network.forwards.length > 0 &&
          `, forwards ${spec.network.forwards.map(formatPortForward).join(', ')}`}
      </dd>
      <dt>Console</dt>
      <dd>{spec.console.kind}</dd>
      <dt>Created</dt>
      <dd>{new Date(spec.createdAt).toLocaleString()}</dd>
    </dl>
  );
}

function Settings({ vm }: { vm: VmInfo }) {
  const { store } = useServices();
  const host = useVms((state) => state.host);
  const vms = useVms((state) => state.vms);
  const takenNames = useMemo(
    () => vms.filter((info) => info.spec.id !== vm.spec.id).map((info) => info.spec.name),
    [vms, vm.spec.id],
  );
  const state = useForm(() => formFromSpec(vm.spec), host, takenNames);
  const [saving, setSaving] = useState(false);
  const pending = useVms((state) => state.pending);
  const [result, setResult] = useState<{ ok: boolean; text: string }>();
  const editable = actionAllowed(vm.status.state, 'edit');

  const save = async () => {
    const params = state.checked.params;
    if (!params) {
      state.reveal(Object.keys(state.checked.errors));
      focusFirstError();
      return;
    }
    setSaving(true);
    try {
      // The console's history size is not on the form: kept as it is.
      const saved = await store
        .getState()
        .update(vm.spec.id, { ...params, console: { ...vm.spec.console, ...params.console } });
      state.reset(formFromSpec(saved.spec));
      setResult({ ok: true, text: 'Saved; the changes apply at the next start.' });
    } catch (error) {
      setResult({ ok: false, text: describeError(error) });
    } finally {
      setSaving(false);
    }
  };

  const props: SectionProps = { form: state.form, errors: state.visible, change: state.change, host };
  return (
    <form
      className="settings"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        void save();
      }}
    >
      {!editable && (
        <p className="hint" role="note">
          Settings can be changed while the VM is stopped.
        </p>
      )}
      <fieldset disabled={!editable || saving}>
        <NameField {...props} />
        <h2>Source</h2>
        <SourceSection {...props} />
        <h2>Resources</h2>
        <ResourcesSection {...props} />
        <h2>Disks</h2>
        <DisksSection {...props} />
        <NetworkSection {...props} />
        <ConsoleSection {...props} />
        <div className="wizard-buttons">
          <button type="submit" className="primary">
            {saving ? 'Saving…' : 'Save'}
          </button>
        </div>
      </fieldset>
      {pending && <CopyProgress pending={pending} />}
      {result && (
        <p className={result.ok ? 'form-ok' : 'form-error'} role={result.ok ? 'status' : 'alert'}>
          {result.text}
        </p>
      )}
    </form>
  );
}

function Log({ vm }: { vm: VmInfo }) {
  const entries = useVms((state) => state.log[vm.spec.id]);
  const exit = vm.status.lastExit;
  return (
    <div className="log">
      {(!entries || entries.length === 0) && (
        <p className="hint">Nothing has happened to this VM since this window opened.</p>
      )}
      {entries && entries.length > 0 && (
        <ol className="plain log-entries">
          {entries.map((entry, index) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: the log only grows at its end
            <li key={index}>
              <time dateTime={entry.at}>{new Date(entry.at).toLocaleTimeString()}</time> {entry.text}
            </li>
          ))}
        </ol>
      )}
      {exit?.consoleTail && (
        <>
          <h2>The guest's last console lines ({exit.reason})</h2>
          <pre className="console-tail">{exit.consoleTail}</pre>
        </>
      )}
    </div>
  );
}
