/** The loss per step as an SVG polyline, redrawn as the run's events arrive. A NaN or infinite loss (a run that
 * diverged) has no place on the scale: it breaks the line and is marked on the top edge, and the caption says
 * from which step the loss is not finite. */
import { memo } from 'react';
import type { LossPoint } from '../runs';

const W = 420;
const H = 150;
const PAD = { left: 44, right: 10, top: 10, bottom: 22 };

export function fmt(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toPrecision(3);
}

/** The range of the finite losses, the runs of consecutive finite steps (each drawn as a line) and the steps
 * whose loss is NaN or infinite. */
export function lossShape(points: { value: number }[]): { min: number; max: number; lines: number[][]; notFinite: number[] } {
  let min = Infinity;
  let max = -Infinity;
  const lines: number[][] = [];
  const notFinite: number[] = [];
  let line: number[] | null = null;
  points.forEach((p, i) => {
    if (!Number.isFinite(p.value)) {
      notFinite.push(i);
      line = null;
      return;
    }
    if (p.value < min) min = p.value;
    if (p.value > max) max = p.value;
    if (line === null) lines.push((line = []));
    line.push(i);
  });
  if (min === Infinity) {
    min = 0;
    max = 1;
  } else if (min === max) {
    min -= 0.5;
    max += 0.5;
  }
  return { min, max, lines, notFinite };
}

export interface PlotSize {
  W: number;
  H: number;
  PAD: { left: number; right: number; top: number; bottom: number };
}

/** A plot's background and axis labels (the value range on the left, the steps below), shared by the loss chart
 * and the sweep view's curves. */
export function PlotFrame({ size, min, max, steps }: { size: PlotSize; min: number; max: number; steps: number }) {
  const { W, H, PAD } = size;
  return (
    <>
      <rect x={PAD.left} y={PAD.top} width={W - PAD.left - PAD.right} height={H - PAD.top - PAD.bottom} className="plot-bg" />
      {steps > 0 && (
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
            step {steps - 1}
          </text>
        </>
      )}
    </>
  );
}

export const LossPlot = memo(function LossPlot({ points }: { points: LossPoint[] }) {
  const n = points.length;
  const { min, max, lines, notFinite } = lossShape(points);
  const x = (i: number) => PAD.left + (n <= 1 ? 0 : (i / (n - 1)) * (W - PAD.left - PAD.right));
  const y = (v: number) => PAD.top + (1 - (v - min) / (max - min)) * (H - PAD.top - PAD.bottom);
  const last = points[n - 1];
  const firstBad = notFinite.length ? points[notFinite[0]] : undefined;
  return (
    <figure className="loss-plot" data-testid="loss-plot" data-points={n} data-last={last ? last.value : ''}>
      <figcaption>
        loss per step{last ? <>: <b>{fmt(last.value)}</b> at step {n - 1} ({last.card})</> : ''}
        {firstBad && (
          <span className="plot-not-finite-note">
            {' '}— not finite from step {notFinite[0]} ({fmt(firstBad.value)}, {firstBad.card}): {notFinite.length} of {n} steps
          </span>
        )}
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" height={H} role="img" aria-label={`loss curve, ${n} points`}>
        <PlotFrame size={{ W, H, PAD }} min={min} max={max} steps={n} />
        {n > 0 && (
          <>
            {lines.map((line) =>
              line.length === 1 ? (
                <circle key={line[0]} cx={x(line[0])} cy={y(points[line[0]].value)} r={3} className="plot-line-dot" />
              ) : (
                <polyline
                  key={line[0]}
                  points={line.map((i) => `${x(i).toFixed(1)},${y(points[i].value).toFixed(1)}`).join(' ')}
                  className="plot-line"
                  fill="none"
                />
              ),
            )}
            {notFinite.map((i) => (
              <line key={`nf${i}`} x1={x(i)} x2={x(i)} y1={PAD.top} y2={PAD.top + 6} className="plot-not-finite" />
            ))}
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
