import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { config } from 'zod';
import { App } from './App.js';
import './styles.css';

// The page's CSP forbids eval; without this zod probes for it and Chromium logs the refusal.
config({ jitless: true });

const container = document.getElementById('root');
if (!container) throw new Error('renderer: #root element missing from index.html');
createRoot(container).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
