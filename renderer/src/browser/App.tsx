// The window: connects to the daemon, then shows the view the URL names.

import { useCallback, useEffect, useState } from 'react';
import { VireoClient } from '../common/client.js';
import { createVmStore } from '../common/vm-store.js';
import { connectTransport } from './connect.js';
import { type Services, ServicesContext } from './context.js';
import { href, useRoute } from './route.js';
import { VmList } from './views/VmList.js';
import { VmPage } from './views/VmPage.js';
import { Wizard } from './views/Wizard.js';

type Connection =
  | { phase: 'connecting' }
  | { phase: 'failed'; error: string }
  | { phase: 'up'; services: Services };

export function App() {
  const [connection, setConnection] = useState<Connection>({ phase: 'connecting' });

  const connect = useCallback(() => {
    setConnection({ phase: 'connecting' });
    connectTransport().then(
      (transport) => {
        const client = new VireoClient(transport);
        client.onClose((reason) =>
          setConnection({
            phase: 'failed',
            error: `The connection to the daemon ended (${reason}). If the daemon restarted, open the new address \`vireo ui\` prints.`,
          }),
        );
        const store = createVmStore(client);
        void store.getState().load();
        setConnection({ phase: 'up', services: { client, store } });
      },
      (error: Error) => setConnection({ phase: 'failed', error: error.message }),
    );
  }, []);
  useEffect(connect, [connect]);

  return (
    <div className="app">
      <header className="app-header">
        <a className="brand" href={href({ view: 'list' })}>
          Vireo
        </a>
      </header>
      <main className="app-main">
        {connection.phase === 'connecting' && (
          <p className="state-note" aria-busy="true">
            Connecting to the Vireo daemon…
          </p>
        )}
        {connection.phase === 'failed' && (
          <div className="state-note error" role="alert">
            <p>{connection.error}</p>
            <button type="button" onClick={connect}>
              Try again
            </button>
          </div>
        )}
        {connection.phase === 'up' && (
          <ServicesContext.Provider value={connection.services}>
            <Routes />
          </ServicesContext.Provider>
        )}
      </main>
    </div>
  );
}

function Routes() {
  const route = useRoute();
  switch (route.view) {
    case 'list':
      return <VmList />;
    case 'new':
      return <Wizard />;
    case 'vm':
      return <VmPage id={route.id} tab={route.tab} />;
  }
}
