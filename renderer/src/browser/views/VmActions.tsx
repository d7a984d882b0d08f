// The lifecycle buttons of one VM; which are enabled follows its state as events update it.

import type { VmInfo } from '../../../../core/src/api/schema.js';
import { ACTION_LABELS, actionAllowed } from '../../common/vm-actions.js';
import type { LifecycleAction } from '../../common/vm-store.js';
import { useServices, useVms } from '../context.js';

export function VmActions({
  vm,
  actions,
  onDeleted,
}: {
  vm: VmInfo;
  actions: readonly LifecycleAction[];
  onDeleted?: () => void;
}) {
  const { store } = useServices();
  const busy = useVms((state) => state.busy[vm.spec.id]);
  const run = async (action: LifecycleAction) => {
    if (action === 'delete' && !window.confirm(`Delete the VM '${vm.spec.name}' and its folder?`)) return;
    await store.getState().run(vm.spec.id, action);
    if (action === 'delete' && !store.getState().vms.some((info) => info.spec.id === vm.spec.id)) {
      onDeleted?.();
    }
  };
  return (
    <div className="actions">
      {actions.map((action) => (
        <button
          key={action}
          type="button"
          className={action === 'delete' || action === 'forceStop' ? 'danger' : undefined}
          disabled={busy !== undefined || !actionAllowed(vm.status.state, action)}
          onClick={() => void run(action)}
        >
          {busy === action ? ACTION_LABELS[action].busy : ACTION_LABELS[action].label}
        </button>
      ))}
    </div>
  );
}

export function StateBadge({ state }: { state: VmInfo['status']['state'] }) {
  return <span className={`state state-${state}`}>{state}</span>;
}
