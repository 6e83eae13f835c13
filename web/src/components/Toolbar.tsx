/** The top bar: the pipeline's name and unsaved marker, file actions, undo/redo, view, run. */
import { useEffect, useRef, useState } from 'react';
import { cancel, exportFile, fitSoon, groupSelection, importFile, relayout, run, save, ungroupSelection } from '../actions';
import { api, type ExecutorInfo } from '../api';
import { editor } from '../editor';
import { isActive, runs, type RunState } from '../runs';
import { useStore } from '../store';
import { ui } from '../ui';

function statusText(s: Pick<RunState, 'status' | 'finished' | 'total' | 'current' | 'mode'>): string {
  switch (s.status) {
    case 'idle':
      return 'not run yet';
    case 'starting':
      return 'starting…';
    case 'running':
      return `running ${s.finished}/${s.total}${s.current ? ` · ${s.current}` : ''}`;
    case 'cancelling':
      return 'cancelling…';
    default:
      return `${s.status}${s.mode !== 'all' ? ` (${s.mode})` : ''}`;
  }
}

function RunStatus() {
  const status = useStore(runs, (s) => s.status);
  const finished = useStore(runs, (s) => s.finished);
  const total = useStore(runs, (s) => s.total);
  const current = useStore(runs, (s) => s.current);
  const mode = useStore(runs, (s) => s.mode);
  const error = useStore(runs, (s) => s.error);
  return (
    <span className={`run-status status-${status}`} data-testid="run-status" data-status={status} title={error ?? undefined}>
      {statusText({ status, finished, total, current, mode })}
    </span>
  );
}

function NameField() {
  const name = useStore(editor.doc, (s) => s.name);
  const [text, setText] = useState(name);
  useEffect(() => setText(name), [name]);
  return (
    <input
      className="name-input"
      value={text}
      onChange={(e) => {
        setText(e.target.value);
        editor.setName(e.target.value);
      }}
      data-testid="pipeline-name"
      aria-label="pipeline name"
      spellCheck={false}
    />
  );
}

/** Before the server's list arrives (or when it cannot be had): the executors every server has. */
const BUILT_IN: ExecutorInfo[] = [
  { name: 'local', summary: 'this process' },
  { name: 'process', summary: 'a warm worker process per card' },
];

/** The executor (the server's registered ones) and, for ray, the address of the cluster to join. */
function RunOptions() {
  const executor = useStore(ui, (s) => s.executor);
  const rayAddress = useStore(ui, (s) => s.rayAddress);
  const [executors, setExecutors] = useState<ExecutorInfo[]>(BUILT_IN);
  useEffect(() => {
    api
      .executors()
      .then((found) => found.length && setExecutors(found))
      .catch(() => undefined);
  }, []);
  const chosen = executors.find((e) => e.name === executor);
  return (
    <div className="executor-option">
      <label className="small muted" title={chosen?.summary}>
        executor{' '}
        <select value={executor} onChange={(e) => ui.set({ executor: e.target.value })} data-testid="executor-select">
          {executors.map((e) => (
            <option key={e.name} value={e.name} title={e.summary}>
              {e.name}
            </option>
          ))}
        </select>
      </label>
      {executor === 'ray' && (
        <input
          className="ray-address"
          value={rayAddress}
          onChange={(e) => ui.set({ rayAddress: e.target.value })}
          placeholder="Ray address"
          title="the Ray cluster to join (HOST:PORT or ray://HOST:PORT); empty: a Ray started on this machine"
          spellCheck={false}
          data-testid="ray-address-input"
          aria-label="Ray address"
        />
      )}
    </div>
  );
}

export function Toolbar() {
  const unsaved = useStore(ui, (s) => s.unsaved);
  const persist = useStore(ui, (s) => s.persist);
  const cache = useStore(ui, (s) => s.cache);
  const canUndo = useStore(editor.history, (s) => s.canUndo);
  const canRedo = useStore(editor.history, (s) => s.canRedo);
  const active = useStore(runs, (s) => isActive(s.status));
  const fileInput = useRef<HTMLInputElement>(null);
  return (
    <header className="toolbar">
      <span className="brand">cardloop</span>
      <NameField />
      <span
        className={`unsaved-marker${unsaved ? ' on' : ''}`}
        data-testid="unsaved-marker"
        data-unsaved={unsaved ? 'true' : 'false'}
        title={unsaved ? 'edits not yet saved' : 'saved'}
      >
        {unsaved ? '● unsaved' : 'saved'}
      </span>
      <div className="group">
        <button onClick={() => void save()} data-testid="save-button" title="save to the server (Ctrl+S)">
          Save
        </button>
        <button onClick={() => fileInput.current?.click()} data-testid="import-button" title="import a pipeline file (JSON or YAML)">
          Import
        </button>
        <input
          ref={fileInput}
          type="file"
          accept=".json,.yaml,.yml,application/json"
          hidden
          data-testid="import-input"
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) void importFile(file);
            e.target.value = '';
          }}
        />
        <button onClick={exportFile} data-testid="export-button" title="download the pipeline file (version-1 JSON)">
          Export
        </button>
      </div>
      <div className="group">
        <button onClick={() => editor.undo()} disabled={!canUndo} data-testid="undo-button" title="undo (Ctrl+Z)">
          ↶ Undo
        </button>
        <button onClick={() => editor.redo()} disabled={!canRedo} data-testid="redo-button" title="redo (Ctrl+Shift+Z)">
          ↷ Redo
        </button>
      </div>
      <div className="group">
        <button onClick={fitSoon} data-testid="fit-button" title="fit the pipeline to the view (F)">
          Fit
        </button>
        <button onClick={relayout} data-testid="layout-button" title="lay the cards out again, a column per layer">
          Arrange
        </button>
        <button onClick={groupSelection} data-testid="group-button" title="wrap the selected cards in a loop block (Ctrl+G)">
          Group into loop
        </button>
        <button
          onClick={ungroupSelection}
          data-testid="ungroup-button"
          title="put the selected block's body back in its place (Ctrl+Shift+G)"
        >
          Ungroup
        </button>
        <button onClick={() => ui.set({ help: true })} data-testid="help-button" title="keyboard shortcuts (?)">
          ?
        </button>
      </div>
      <span className="spacer" />
      <RunOptions />
      <label className="small muted" title="'all' keeps every output so that every card's outputs can be previewed">
        persist{' '}
        <select value={persist} onChange={(e) => ui.set({ persist: e.target.value as 'checkpoint' | 'all' })} data-testid="persist-select">
          <option value="checkpoint">checkpoint</option>
          <option value="all">all</option>
        </select>
      </label>
      <label className="small muted" title="serve unchanged cards from the store; off runs every card again">
        <input type="checkbox" checked={cache} onChange={(e) => ui.set({ cache: e.target.checked })} data-testid="cache-checkbox" /> cache
      </label>
      <RunStatus />
      <button className="primary" onClick={() => run()} disabled={active} data-testid="run-button" title="run the pipeline (Ctrl+Enter)">
        ▶ Run
      </button>
      <button className="danger" onClick={cancel} disabled={!active} data-testid="cancel-button" title="stop the run between two cards">
        ■ Cancel
      </button>
    </header>
  );
}
