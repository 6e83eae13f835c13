/** Several curves on one chart (a sweep's variants' losses): one line per series in its colour, a legend naming
 * each, and on hover the value of every series at the step under the pointer. Drawn as LossPlot draws one curve
 * (its scale, its breaks at NaN and infinities), over the finite values of every series together. */
import { memo, useState, type MouseEvent } from 'react';
import { PlotFrame, fmt, lossShape } from './LossPlot';

export interface Series {
  key: string;
  label: string;
  colour: string;
  values: number[];
}

const W = 720;
const H = 260;
const PAD = { left: 52, right: 12, top: 10, bottom: 22 };

/** Distinct colours (Tableau 10), one per variant by its index. */
export const SERIES_COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export function seriesColour(index: number): string {
  return SERIES_COLOURS[index % SERIES_COLOURS.length];
}

export const CurvesPlot = memo(function CurvesPlot({ series, what }: { series: Series[]; what: string }) {
  const [hover, setHover] = useState<number | null>(null);
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const { min, max } = lossShape(series.flatMap((s) => s.values.map((value) => ({ value }))));
  const x = (i: number) => PAD.left + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD.left - PAD.right));
  const y = (v: number) => PAD.top + (1 - (v - min) / (max - min)) * (H - PAD.top - PAD.bottom);
  const onMove = (e: MouseEvent<SVGSVGElement>) => {
    const box = e.currentTarget.getBoundingClientRect();
    const at = ((e.clientX - box.left) / box.width) * W;
    const i = n <= 1 ? 0 : Math.round(((at - PAD.left) / (W - PAD.left - PAD.right)) * (n - 1));
    setHover(n === 0 ? null : Math.min(n - 1, Math.max(0, i)));
  };
  return (
    <figure className="loss-plot curves-plot" data-testid="sweep-plot" data-series={series.length}>
      <figcaption>
        {what} per step, one line per variant{n > 0 ? ` (${n} steps)` : ''}
      </figcaption>
      <div className="curves-area">
        <svg
          viewBox={`0 0 ${W} ${H}`}
          width="100%"
          role="img"
          aria-label={`${what} curves of ${series.length} variants`}
          onMouseMove={onMove}
          onMouseLeave={() => setHover(null)}
        >
          <PlotFrame size={{ W, H, PAD }} min={min} max={max} steps={n} />
          {series.map((s) => (
            <g key={s.key} data-testid="sweep-line" data-variant={s.key} data-points={s.values.length} stroke={s.colour} fill={s.colour}>
              {lossShape(s.values.map((value) => ({ value }))).lines.map((line) =>
                line.length === 1 ? (
                  <circle key={line[0]} cx={x(line[0])} cy={y(s.values[line[0]])} r={3} stroke="none" />
                ) : (
                  <polyline
                    key={line[0]}
                    points={line.map((i) => `${x(i).toFixed(1)},${y(s.values[i]).toFixed(1)}`).join(' ')}
                    fill="none"
                    strokeWidth={1.6}
                  />
                ),
              )}
            </g>
          ))}
          {hover !== null && (
            <line x1={x(hover)} x2={x(hover)} y1={PAD.top} y2={H - PAD.bottom} className="plot-cursor" />
          )}
          {n === 0 && (
            <text x={W / 2} y={H / 2} textAnchor="middle" className="axis">
              no {what} recorded by these variants
            </text>
          )}
        </svg>
        {hover !== null && (
          <div
            className={`curves-tooltip${x(hover) > W / 2 ? ' left' : ''}`}
            data-testid="sweep-plot-tooltip"
            style={{ left: `${(x(hover) / W) * 100}%` }}
          >
            <div className="muted">step {hover}</div>
            {series.map((s) => (
              <div key={s.key}>
                <span className="swatch" style={{ background: s.colour }} /> {s.label}:{' '}
                <b>{hover < s.values.length ? fmt(s.values[hover]) : '—'}</b>
              </div>
            ))}
          </div>
        )}
      </div>
      <ul className="curves-legend" data-testid="sweep-legend">
        {series.map((s) => (
          <li key={s.key} data-testid="sweep-legend-item" data-variant={s.key}>
            <span className="swatch" style={{ background: s.colour }} /> {s.label}
          </li>
        ))}
      </ul>
    </figure>
  );
});
