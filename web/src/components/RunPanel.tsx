/** The run panel: progress, the event log and the live loss curve. */
import { useEffect, useRef } from 'react';
import { editor } from '../editor';
import { clearLog, isActive, runs } from '../runs';
import { useStore } from '../store';
import { ui } from '../ui';
import { LossPlot } from './LossPlot';

const SHOWN = 400;

function Log() {
  const log = useStore(runs, (s) => s.log);
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [log]);
  const shown = log.length > SHOWN ? log.slice(-SHOWN) : log;
  return (
    <div
      className="run-log"
      ref={box}
      data-testid="run-log"
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      }}
    >
      {log.length > SHOWN && <div className="muted small">… {log.length - SHOWN} earlier lines</div>}
      {shown.map((entry) => (
        <div
          key={entry.id}
          className={`log-line tone-${entry.tone}${entry.card ? ' clickable' : ''}`}
          onClick={() => entry.card && editor.selectOnly([entry.card])}
        >
          {entry.text}
        </div>
      ))}
      {log.length === 0 && <div className="muted small">Run the pipeline (Ctrl+Enter) to see its events here.</div>}
    </div>
  );
}

export function RunPanel() {
  const open = useStore(ui, (s) => s.runPanel);
  const loss = useStore(runs, (s) => s.loss);
  const status = useStore(runs, (s) => s.status);
  const finished = useStore(runs, (s) => s.finished);
  const total = useStore(runs, (s) => s.total);
  const runId = useStore(runs, (s) => s.runId);
  const error = useStore(runs, (s) => s.error);
  const active = isActive(status);
  return (
    <section className={`run-panel${open ? '' : ' closed'}`} aria-label="run">
      <header>
        <button className="icon" onClick={() => ui.set({ runPanel: !open })} title={open ? 'hide the run panel' : 'show the run panel'} data-testid="run-panel-toggle">
          {open ? '▾' : '▸'}
        </button>
        <b>Run</b>
        {runId && <span className="muted small">{runId}</span>}
        {(active || finished > 0) && total > 0 && (
          <span className="progress" title={`${finished} of ${total} cards`}>
            <span className="progress-bar" style={{ width: `${Math.min(100, (finished / total) * 100)}%` }} />
            <span className="progress-text">{finished}/{total}</span>
          </span>
        )}
        {error && !active && <span className="error small run-error" title={error}>{error}</span>}
        <span className="spacer" />
        <button className="link-button" onClick={clearLog}>
          clear log
        </button>
      </header>
      {open && (
        <div className="run-body">
          <LossPlot points={loss} />
          <Log />
        </div>
      )}
    </section>
  );
}
