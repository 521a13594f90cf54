/** The studio window. For now: the compute backend the engine chose (the full UI arrives with the desktop issue). */
import { useEffect, useState } from 'react';

interface InfoReply {
  ok: boolean;
  value?: { backend: { name: string; device: string } };
  error?: { message: string };
}

declare global {
  interface Window {
    studio?: { info(): Promise<InfoReply> };
  }
}

export function App() {
  const [status, setStatus] = useState('starting the engine…');
  useEffect(() => {
    if (!window.studio) {
      setStatus('no engine connection');
      return;
    }
    void window.studio.info().then((r) =>
      setStatus(r.ok && r.value ? `${r.value.backend.name} — ${r.value.backend.device}` : `engine error: ${r.error?.message}`));
  }, []);
  return (
    <main style={{ fontFamily: 'system-ui, sans-serif', padding: 24 }}>
      <h1>Style Studio</h1>
      <footer role="status">{status}</footer>
    </main>
  );
}
