/** The loss per step as an SVG polyline, redrawn as the run's events arrive. */
import { memo } from 'react';
import type { LossPoint } from '../runs';

const W = 420;
const H = 150;
const PAD = { left: 44, right: 10, top: 10, bottom: 22 };

function fmt(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toPrecision(3);
}

export const LossPlot = memo(function LossPlot({ points }: { points: LossPoint[] }) {
  const n = points.length;
  let min = Infinity;
  let max = -Infinity;
  for (const p of points) {
    if (p.value < min) min = p.value;
    if (p.value > max) max = p.value;
  }
  if (min === max) {
    min -= 0.5;
    max += 0.5;
  }
  const x = (i: number) => PAD.left + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD.left - PAD.right));
  const y = (v: number) => PAD.top + (1 - (v - min) / (max - min)) * (H - PAD.top - PAD.bottom);
  const line = points.map((p, i) => `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  const last = points[n - 1];
  return (
    <figure className="loss-plot" data-testid="loss-plot" data-points={n} data-last={last ? last.value : ''}>
      <figcaption>
        loss per step{last ? <>: <b>{fmt(last.value)}</b> at step {n - 1} ({last.card})</> : ''}
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" height={H} role="img" aria-label={`loss curve, ${n} points`}>
        <rect x={PAD.left} y={PAD.top} width={W - PAD.left - PAD.right} height={H - PAD.top - PAD.bottom} className="plot-bg" />
        {n > 0 && (
          <>
            <text x={PAD.left - 4} y={PAD.top + 8} textAnchor="end" className="axis">
              {fmt(max)}
            </text>
            <text x={PAD.left - 4} y={H - PAD.bottom} textAnchor="end" className="axis">
              {fmt(min)}
            </text>
            <text x={PAD.left} y={H - 6} className="axis">
              0
            </text>
            <text x={W - PAD.right} y={H - 6} textAnchor="end" className="axis">
              step {n - 1}
            </text>
            {n === 1 ? (
              <circle cx={x(0)} cy={y(points[0].value)} r={3} className="plot-line-dot" />
            ) : (
              <polyline points={line} className="plot-line" fill="none" />
            )}
          </>
        )}
        {n === 0 && (
          <text x={W / 2} y={H / 2} textAnchor="middle" className="axis">
            no loss yet: run a pipeline with Calculate Loss cards
          </text>
        )}
      </svg>
    </figure>
  );
});
