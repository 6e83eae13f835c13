/** Open a pipeline: the server's examples, the saved pipelines, or a new empty one. */
import { memo, useEffect, useState } from 'react';
import { openExample, openFile, openSaved } from '../actions';
import { api, type ExampleInfo, type SavedInfo } from '../api';
import { useStore } from '../store';
import { ui } from '../ui';

export const OpenPanel = memo(function OpenPanel() {
  const [examples, setExamples] = useState<ExampleInfo[]>([]);
  const [saved, setSaved] = useState<SavedInfo[]>([]);
  const savedVersion = useStore(ui, (s) => s.savedVersion);
  useEffect(() => {
    api.examples().then(setExamples).catch(() => setExamples([]));
  }, []);
  useEffect(() => {
    api.pipelines().then(setSaved).catch(() => setSaved([]));
  }, [savedVersion]);
  return (
    <section className="open-panel">
      <details open>
        <summary>Examples</summary>
        <ul className="open-list">
          {examples.map((e) => (
            <li key={e.name}>
              <button className="list-button" onClick={() => void openExample(e.name)} title={e.description} data-testid={`example-${e.name}`}>
                {e.name}
              </button>
            </li>
          ))}
        </ul>
      </details>
      <details open={saved.length > 0}>
        <summary>Saved ({saved.length})</summary>
        <ul className="open-list">
          {saved.map((p) => (
            <li key={p.name}>
              <button
                className="list-button"
                onClick={() => void openSaved(p.name)}
                title={`saved ${new Date(p.modified * 1000).toLocaleString()}`}
                data-testid={`saved-${p.name}`}
              >
                {p.name}
              </button>
            </li>
          ))}
          {saved.length === 0 && <li className="muted small">nothing saved yet</li>}
        </ul>
      </details>
      <button className="list-button new" onClick={() => openFile({ version: 1, name: 'untitled', cards: [] }, 'a new pipeline')} data-testid="new-button">
        + New pipeline
      </button>
      <button
        className="list-button sweeps"
        onClick={() => ui.set({ sweeps: true })}
        title="the store's sweeps: each one's results table and its variants' loss curves overlaid"
        data-testid="sweeps-button"
      >
        ▤ Sweeps
      </button>
    </section>
  );
});
