// The library: every VM with its state, CPUs and memory, and the buttons its state allows.

import { formatSize } from '../../../../core/src/api/size.js';
import { useServices, useVms } from '../context.js';
import { href } from '../route.js';
import { StateBadge, VmActions } from './VmActions.js';

export function VmList() {
  const { store } = useServices();
  const phase = useVms((state) => state.phase);
  const error = useVms((state) => state.error);
  const vms = useVms((state) => state.vms);
  const invalid = useVms((state) => state.invalid);
  const actionErrors = useVms((state) => state.actionErrors);

  return (
    <section aria-labelledby="vm-list-title">
      <div className="page-head">
        <h1 id="vm-list-title">Virtual machines</h1>
        <a className="button primary" href={href({ view: 'new' })}>
          New VM
        </a>
      </div>
      {phase === 'loading' && (
        <p className="state-note" aria-busy="true">
          Loading the VM library…
        </p>
      )}
      {phase === 'error' && (
        <div className="state-note error" role="alert">
          <p>{error}</p>
          <button type="button" onClick={() => void store.getState().load()}>
            Try again
          </button>
        </div>
      )}
      {phase === 'ready' && vms.length === 0 && (
        <div className="state-note empty">
          <p>No virtual machines yet.</p>
          <p>
            <a href={href({ view: 'new' })}>Create one</a> from a Linux kernel, the built-in guest or a disk
            image.
          </p>
        </div>
      )}
      {phase === 'ready' && vms.length > 0 && (
        <table className="vm-table" aria-label="Virtual machines">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col">CPUs</th>
              <th scope="col">Memory</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {vms.map((vm) => (
              <tr key={vm.spec.id} data-vm={vm.spec.id} data-state={vm.status.state}>
                <th scope="row">
                  <a href={href({ view: 'vm', id: vm.spec.id, tab: 'console' })}>{vm.spec.name}</a>
                  {actionErrors[vm.spec.id] && (
                    <p className="field-error" role="alert">
                      {actionErrors[vm.spec.id]}
                    </p>
                  )}
                </th>
                <td>
                  <StateBadge state={vm.status.state} />
                </td>
                <td>{vm.spec.cpus}</td>
                <td>{formatSize(vm.spec.memoryBytes)}</td>
                <td>
                  <VmActions vm={vm} actions={['start', 'stop', 'pause', 'resume']} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {phase === 'ready' && invalid.length > 0 && (
        <section className="invalid" aria-labelledby="invalid-title">
          <h2 id="invalid-title">VMs whose settings cannot be read</h2>
          <ul>
            {invalid.map((entry) => (
              <li key={entry.id}>
                <code>{entry.file}</code>:{' '}
                {entry.issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}
              </li>
            ))}
          </ul>
        </section>
      )}
    </section>
  );
}
