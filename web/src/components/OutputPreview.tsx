/** Previews of a card's outputs after a run: a table's head and shape, tensor statistics, scalars and infos. */
import { useEffect, useState } from 'react';
import { api, type CardOutputs, type OutputPreview as Preview } from '../api';
import { kindColour } from '../catalogue';
import { iterationNote } from '../blocks';
import { isActive, runs } from '../runs';
import { useStore } from '../store';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

function num(value: unknown): string {
  if (typeof value !== 'number') return value === null || value === undefined ? '—' : String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e5) ? value.toExponential(3) : value.toPrecision(4);
}

function TensorStats({ t, label }: { t: Obj; label?: string }) {
  return (
    <table className="kv">
      <tbody>
        {label && (
          <tr>
            <th colSpan={2}>{label}</th>
          </tr>
        )}
        <tr>
          <td>shape</td>
          <td>[{(t.shape as number[] | undefined)?.join(' × ') ?? ''}]</td>
        </tr>
        {t.dtype !== undefined && (
          <tr>
            <td>dtype</td>
            <td>
              {String(t.dtype)}
              {t.device ? ` on ${String(t.device)}` : ''}
            </td>
          </tr>
        )}
        {(['min', 'max', 'mean', 'std'] as const)
          .filter((k) => k in t)
          .map((k) => (
            <tr key={k}>
              <td>{k}</td>
              <td>{num(t[k])}</td>
            </tr>
          ))}
      </tbody>
    </table>
  );
}

function KeyValues({ value }: { value: Obj }) {
  return (
    <table className="kv">
      <tbody>
        {Object.entries(value).map(([k, v]) => (
          <tr key={k}>
            <td>{k}</td>
            <td>{isObj(v) || Array.isArray(v) ? <code className="json">{JSON.stringify(v)}</code> : num(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function TablePreview({ p }: { p: Obj }) {
  const columns = (p.columns as string[] | undefined) ?? [];
  const head = (p.head as Obj[] | undefined) ?? [];
  return (
    <div>
      <div className="shape" data-testid="table-shape">
        {num(p.rows)} rows × {columns.length} columns
      </div>
      {head.length > 0 ? (
        <div className="table-scroll">
          <table className="head">
            <thead>
              <tr>
                {columns.map((c) => (
                  <th key={c}>
                    {c}
                    {isObj(p.dtypes) && <div className="dtype">{String(p.dtypes[c] ?? '')}</div>}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {head.map((row, i) => (
                <tr key={i}>
                  {columns.map((c) => (
                    <td key={c}>{num(row[c])}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <div className="muted small">columns: {columns.join(', ')}</div>
      )}
    </div>
  );
}

function ModelPreview({ p }: { p: Obj }) {
  const tensors = isObj(p.tensors) ? (p.tensors as Record<string, Obj>) : {};
  return (
    <div>
      <div className="shape">
        {num(p.parameters)} parameters{p.has_gradients ? ', with gradients' : ''}
        {p.training === false ? ', eval mode' : ''}
      </div>
      <table className="head">
        <thead>
          <tr>
            <th>tensor</th>
            <th>shape</th>
            <th>norm</th>
            <th>grad norm</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(tensors).map(([name, t]) => (
            <tr key={name}>
              <td>{name}</td>
              <td>{(t.shape as number[] | undefined)?.join('×')}</td>
              <td>{num(t.norm)}</td>
              <td>{num(t.grad_norm)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function PreviewBody({ output }: { output: Preview }) {
  const p = output.preview;
  if (p === null || p === undefined) {
    return (
      <div className="muted small">
        not kept by this run{output.state ? ` (training state ${output.state})` : ''}: run with persist “all” to keep every output
      </div>
    );
  }
  if (typeof p === 'number' || typeof p === 'boolean' || typeof p === 'string') return <div className="scalar">{num(p)}</div>;
  if (!isObj(p)) return <code className="json">{JSON.stringify(p)}</code>;
  if (output.kind === 'scalar' && 'value' in p) return <div className="scalar">{num(p.value)}</div>;
  if (output.kind === 'dataframe' || ('rows' in p && 'columns' in p)) return <TablePreview p={p} />;
  if (output.kind === 'model' && 'tensors' in p) return <ModelPreview p={p} />;
  if ('shape' in p) return <TensorStats t={p} />;
  if (output.kind === 'batch' && isObj(p.X)) {
    return (
      <div>
        <div className="shape">{num(p.rows)} rows</div>
        <TensorStats t={p.X} label="X" />
        {isObj(p.y) && <TensorStats t={p.y} label="y" />}
      </div>
    );
  }
  if (output.kind === 'optimizer' && Array.isArray(p.groups)) {
    return (
      <div>
        <div className="shape">
          {String(p.type)}, {num(p.parameters_with_state)} parameters with state
        </div>
        {(p.groups as Obj[]).map((g, i) => (
          <KeyValues key={i} value={Object.fromEntries(Object.entries(g).filter(([, v]) => v !== null && v !== false))} />
        ))}
      </div>
    );
  }
  return <KeyValues value={p} />;
}

/** A card's previews; a body card's for one iteration, named by its full path (`epochs[3].batches[7].fwd`). */
export function OutputPreviews({ cardId, path = cardId }: { cardId: string; path?: string }) {
  const runId = useStore(runs, (s) => s.runId);
  const active = useStore(runs, (s) => isActive(s.status));
  const cardStatus = useStore(runs, (s) => s.cards[cardId]?.status);
  const [data, setData] = useState<CardOutputs | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);
  const ready =
    !!runId && (cardStatus === 'done' || cardStatus === 'cached' || (!active && cardStatus !== 'failed' && cardStatus !== undefined));
  useEffect(() => {
    setData(null);
    setError(null);
    if (!runId || !ready) return;
    let live = true;
    let timer = 0;
    // a body card's iteration: its status first (skipped, or not stored under the persist policy), then its outputs
    const lookup = async (): Promise<CardOutputs | string> => {
      if (path === cardId) return api.outputs(runId, path);
      const view = await api.iteration(runId, path);
      return iterationNote(view) ?? { run_id: runId, card_id: path, outputs: view.outputs ?? {} };
    };
    const load = (tries: number) =>
      lookup()
        .then((d) => live && (typeof d === 'string' ? setError(d) : setData(d)))
        .catch((e) => {
          if (!live) return;
          // a running run records its cards a little after their events: ask again shortly
          if (active && tries < 5) timer = window.setTimeout(() => void load(tries + 1), 1000);
          else setError(e instanceof Error ? e.message : String(e));
        });
    void load(0);
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [runId, cardId, path, ready, reload, active]);
  if (!runId) return <p className="muted small">Run the pipeline to see this card's outputs.</p>;
  if (!ready)
    return (
      <p className="muted small">
        {cardStatus === 'failed' ? 'The card failed: it has no outputs.' : 'This card has not run in the last run.'}
      </p>
    );
  if (error) {
    return (
      <p className={`${path === cardId ? 'error' : 'muted'} small`} data-testid="preview-problem">
        {error}
      </p>
    );
  }
  if (!data) return <p className="muted small">loading…</p>;
  return (
    <div className="outputs" data-testid="output-previews">
      {Object.entries(data.outputs).map(([port, output]) => (
        <div className="output" key={port} data-testid={`output-${port}`}>
          <div className="output-head">
            <i className="dot" style={{ background: kindColour(output.kind) }} />
            <b>{port}</b> <span className="muted">{output.kind}</span>
            {output.stored && <span className="tag">stored</span>}
          </div>
          <PreviewBody output={output} />
        </div>
      ))}
      <button className="link-button" onClick={() => setReload((r) => r + 1)}>
        refresh
      </button>
    </div>
  );
}
