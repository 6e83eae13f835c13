/** A sweep's results as the sweep view shows them (docs/sweeps.md): which columns are settings, metrics and the
 * rest, each variant's label, and the rows sorted by a metric, best first, as `cardloop sweep --sort` sorts. */
import type { SweepDetail, SweepRow } from './api';
import { lossValue } from './runs';

/** Columns every results table has that are neither a setting nor a metric (src/cardloop/sweep_results.py). */
const FIXED = new Set(['variant', 'status', 'run_id', 'best_epoch', 'best_metric', 'best_value', 'error']);
/** A metric whose name's last part contains one of these is better higher (sweep_results.HIGHER_IS_BETTER). */
const HIGHER_IS_BETTER = ['accuracy', 'f1', 'r2'];

export interface SweepColumns {
  settings: string[];
  /** Metric columns with a value in at least one row (a regression's accuracy is left out), in the table's order. */
  metrics: string[];
}

export function sweepColumns(sweep: Pick<SweepDetail, 'settings' | 'results'>): SweepColumns {
  const settings = Object.keys(sweep.settings);
  const seen: string[] = [];
  for (const row of sweep.results) for (const key of Object.keys(row)) if (!seen.includes(key)) seen.push(key);
  const metrics = seen.filter(
    (c) => !FIXED.has(c) && !settings.includes(c) && sweep.results.some((row) => cellNumber(row[c]) !== undefined && !Number.isNaN(cellNumber(row[c]))),
  );
  return { settings, metrics };
}

/** A cell as a number: a number, or NaN and the infinities, which come as strings; otherwise undefined. */
export function cellNumber(value: unknown): number | undefined {
  return lossValue(value);
}

export function higherIsBetter(column: string): boolean {
  const last = column.split('.').pop() ?? column;
  return HIGHER_IS_BETTER.some((word) => last.includes(word));
}

/** The rows sorted by `column`, best first (descending when higher is better; `reverse` flips it), NaN and missing
 * values last either way; rows with equal values keep their order. */
export function sortRows(rows: SweepRow[], column: string, reverse = false): SweepRow[] {
  const descending = higherIsBetter(column) !== reverse;
  const keyed = rows.map((row, i) => ({ row, i, v: cellNumber(row[column]) }));
  keyed.sort((a, b) => {
    const aBad = a.v === undefined || Number.isNaN(a.v);
    const bBad = b.v === undefined || Number.isNaN(b.v);
    if (aBad || bBad) return aBad === bBad ? a.i - b.i : aBad ? 1 : -1;
    const d = descending ? b.v! - a.v! : a.v! - b.v!;
    return d !== 0 ? d : a.i - b.i;
  });
  return keyed.map((k) => k.row);
}

/** `opt.learning_rate=0.003, model.layers=[128, 128]`: a variant named by its settings, as its run is. */
export function variantLabel(settings: Record<string, unknown>): string {
  return Object.entries(settings)
    .map(([path, value]) => `${path}=${pythonJson(value)}`)
    .join(', ');
}

/** JSON as Python's json.dumps writes it (a space after each comma and colon), as the runs' names have it. */
function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}: ${pythonJson(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

/** A setting's value exactly as given (and as the variant's run name writes it). */
export const settingText = (value: unknown): string => pythonJson(value);

/** A table cell's text: numbers to 4 significant digits, lists as JSON, nothing for a missing value. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return String(Number(value.toPrecision(4)));
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}
