/** The sweep view (toolbar: Sweeps): the store's recorded sweeps, and for the one chosen its results table (one
 * row per variant: settings, status, best epoch, final metrics; a metric's header sorts by it, best first) and its
 * variants' curves overlaid (GET /api/sweeps, /api/sweeps/{id}). */
import { useEffect, useMemo, useState } from 'react';
import { api, type SweepDetail, type SweepSummary } from '../api';
import { lossValue } from '../runs';
import { useStore } from '../store';
import { cellText, higherIsBetter, settingText, sortRows, sweepColumns, variantLabel } from '../sweeps';
import { ui } from '../ui';
import { CurvesPlot, seriesColour, type Series } from './CurvesPlot';

function when(seconds: number | null): string {
  return seconds ? new Date(seconds * 1000).toLocaleString() : '';
}

function SweepList({ sweeps, chosen, choose }: { sweeps: SweepSummary[]; chosen: string | null; choose: (id: string) => void }) {
  return (
    <ul className="open-list sweep-list" data-testid="sweep-list">
      {sweeps.map((s) => (
        <li key={s.sweep_id}>
          <button
            className={`list-button${s.sweep_id === chosen ? ' chosen' : ''}`}
            onClick={() => choose(s.sweep_id)}
            title={`${s.sweep_id}, started ${when(s.started_at)}`}
            data-testid={`sweep-item-${s.sweep_id}`}
          >
            <b>{s.name}</b>
            <span className="small muted">
              {' '}
              {s.succeeded}/{s.variants} variants · {s.status}
            </span>
            <div className="small muted">{Object.keys(s.settings).join(', ')}</div>
            <div className="small muted">{when(s.started_at)}</div>
          </button>
        </li>
      ))}
    </ul>
  );
}

interface Sort {
  column: string;
  reverse: boolean;
}

function ResultsTable({ sweep }: { sweep: SweepDetail }) {
  const [sort, setSort] = useState<Sort | null>(null);
  const { settings, metrics } = useMemo(() => sweepColumns(sweep), [sweep]);
  const rows = useMemo(() => (sort ? sortRows(sweep.results, sort.column, sort.reverse) : sweep.results), [sweep, sort]);
  const header = (column: string) => {
    const on = sort?.column === column;
    const descending = on && higherIsBetter(column) !== sort.reverse;
    return (
      <th key={column} aria-sort={on ? (descending ? 'descending' : 'ascending') : 'none'} className="metric">
        <button
          className="link-button"
          onClick={() => setSort(on ? { column, reverse: !sort.reverse } : { column, reverse: false })}
          title={`sort by ${column}, best first (${higherIsBetter(column) ? 'higher' : 'lower'} is better); again to reverse`}
          data-testid={`sort-${column}`}
        >
          {column}
          {on ? (descending ? ' ▼' : ' ▲') : ''}
        </button>
      </th>
    );
  };
  return (
    <div className="sweep-table-box">
      <table className="sweep-table" data-testid="sweep-table">
        <thead>
          <tr>
            <th>variant</th>
            {settings.map((c) => (
              <th key={c} className="setting">
                {c}
              </th>
            ))}
            <th>status</th>
            <th title="the epoch (from 0) in which its per-epoch metric was best">best epoch</th>
            {metrics.map(header)}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => {
            const index = Number(row.variant);
            return (
              <tr key={index} data-testid="sweep-row" data-variant={index}>
                <td>
                  <span className="swatch" style={{ background: seriesColour(index) }} /> {index}
                </td>
                {settings.map((c) => (
                  <td key={c} className="setting">
                    {settingText(row[c])}
                  </td>
                ))}
                <td className={`status-${String(row.status)}`} title={row.error ? String(row.error) : String(row.run_id ?? '')}>
                  {cellText(row.status)}
                </td>
                <td title={row.best_metric ? `${String(row.best_metric)}: ${cellText(row.best_value)}` : undefined}>{cellText(row.best_epoch)}</td>
                {metrics.map((c) => (
                  <td key={c} className="metric" data-column={c}>
                    {cellText(row[c])}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function SweepDetails({ id, version }: { id: string; version: number }) {
  const [metric, setMetric] = useState('loss_value');
  const [sweep, setSweep] = useState<SweepDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    setError(null);
    api
      .sweep(id, metric)
      .then((found) => live && setSweep(found))
      .catch((e) => live && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      live = false;
    };
  }, [id, metric, version]);
  const series: Series[] = useMemo(
    () =>
      (sweep?.variants ?? []).map((v) => ({
        key: String(v.index),
        label: variantLabel(v.settings),
        colour: seriesColour(v.index),
        values: v.curve.map((value) => lossValue(value) ?? NaN),
      })),
    [sweep],
  );
  const curveMetrics = useMemo(() => {
    const names = new Set(['loss_value']);
    if (sweep) for (const c of sweepColumns(sweep).metrics) if (!c.endsWith('.iterations')) names.add(c.split('.').pop()!);
    return [...names];
  }, [sweep]);
  if (error) return <p className="error">{error}</p>;
  if (!sweep) return <p className="muted">loading the sweep…</p>;
  return (
    <div className="sweep-detail" data-testid="sweep-detail" data-sweep={sweep.sweep_id}>
      <h3>
        {sweep.name} <span className="small muted">{sweep.sweep_id}</span>
      </h3>
      <p className="small muted">
        {sweep.status} · {sweep.succeeded} of {sweep.variants.length} variants succeeded · started {when(sweep.started_at)}
        {sweep.ended_at ? `, ended ${when(sweep.ended_at)}` : ''}
      </p>
      <ResultsTable sweep={sweep} />
      <label className="small muted">
        curves of{' '}
        <select value={metric} onChange={(e) => setMetric(e.target.value)} data-testid="sweep-metric">
          {curveMetrics.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
      </label>
      <CurvesPlot series={series} what={sweep.metric} />
    </div>
  );
}

export function SweepView() {
  const open = useStore(ui, (s) => s.sweeps);
  const [sweeps, setSweeps] = useState<SweepSummary[] | null>(null);
  const [chosen, setChosen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    if (!open) return;
    setError(null);
    api
      .sweeps()
      .then((found) => {
        setSweeps(found);
        setChosen((c) => (c && found.some((s) => s.sweep_id === c) ? c : (found[0]?.sweep_id ?? null)));
      })
      .catch((e) => setError(e instanceof Error ? e.message : String(e)));
  }, [open, version]);
  if (!open) return null;
  const close = () => ui.set({ sweeps: false });
  return (
    <div className="modal-backdrop" onClick={close}>
      <div className="modal sweep-view" role="dialog" aria-label="sweeps" data-testid="sweep-view" onClick={(e) => e.stopPropagation()}>
        <header>
          <h2>Sweeps</h2>
          <span className="spacer" />
          <button className="link-button" onClick={() => setVersion((v) => v + 1)} title="read the store's sweeps again" data-testid="sweeps-refresh">
            ↻ refresh
          </button>
          <button className="icon" onClick={close} aria-label="close" data-testid="sweeps-close">
            ✕
          </button>
        </header>
        {error && <p className="error">{error}</p>}
        {sweeps === null && !error && <p className="muted">loading the store's sweeps…</p>}
        {sweeps?.length === 0 && (
          <div className="sweeps-empty" data-testid="sweeps-empty">
            <p>
              <b>No sweeps in this store yet.</b> A sweep runs a pipeline once per combination of settings, for instance
            </p>
            <pre>cardloop sweep examples/basic_training_loop.yaml --set opt.learning_rate=1e-3,3e-3,1e-2</pre>
            <p className="muted small">or cardloop.sweep(...) in Python; its variants' results and loss curves then appear here.</p>
          </div>
        )}
        {sweeps && sweeps.length > 0 && (
          <div className="sweep-body">
            <SweepList sweeps={sweeps} chosen={chosen} choose={setChosen} />
            {chosen && <SweepDetails key={chosen} id={chosen} version={version} />}
          </div>
        )}
      </div>
    </div>
  );
}
