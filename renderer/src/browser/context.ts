// The connected client and the VM store, handed to every view.

import { createContext, useContext } from 'react';
import { useStore } from 'zustand';
import type { VireoClient } from '../common/client.js';
import type { VmStore, VmStoreState } from '../common/vm-store.js';

export interface Services {
  client: VireoClient;
  store: VmStore;
}

export const ServicesContext = createContext<Services | undefined>(undefined);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error('renderer: a view was rendered outside the connected app');
  return services;
}

export function useVms<T>(selector: (state: VmStoreState) => T): T {
  return useStore(useServices().store, selector);
}
