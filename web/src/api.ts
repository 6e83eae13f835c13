/** The cardloop server's HTTP API (see /docs on the server). A token given in the page's URL is sent along. */
import type { Catalogue, PipelineFile, Problem } from './types';

const token = typeof window === 'undefined' ? null : new URLSearchParams(window.location.search).get('token');

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

function detailMessage(detail: unknown): { message: string; problems: Problem[] } {
  if (typeof detail === 'string') return { message: detail, problems: [] };
  if (detail && typeof detail === 'object' && Array.isArray((detail as { problems?: unknown }).problems)) {
    const problems = (detail as { problems: Problem[] }).problems;
    return { message: problems.map((p) => p.message).join('; '), problems };
  }
  if (Array.isArray(detail)) {
    return {
      message: detail.map((d) => `${(d.loc ?? []).join('.')}: ${d.msg ?? JSON.stringify(d)}`).join('; '),
      problems: [],
    };
  }
  return { message: JSON.stringify(detail), problems: [] };
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(`the cardloop server does not answer (${method} ${path})`, 0);
  }
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    const { message, problems } = detailMessage((data as { detail?: unknown })?.detail ?? data);
    throw new ApiError(message || `${method} ${path} answered ${response.status}`, response.status, problems);
  }
  return data as T;
}

const enc = encodeURIComponent;

export interface ExampleInfo {
  name: string;
  description: string;
}

export interface SavedInfo {
  name: string;
  modified: number;
}

export interface ExecutorInfo {
  name: string;
  summary: string;
}

export interface RunRequest {
  pipeline: PipelineFile;
  /** A registered executor's name (GET /api/executors). */
  executor: string;
  /** For the ray executor: the cluster to join; left out, a Ray started on the server's machine. */
  ray_address?: string;
  persist?: 'checkpoint' | 'all';
  cache?: boolean;
  until?: string;
  only?: string;
}

export interface RunCardRecord {
  card_id: string;
  position?: number;
  card_type?: string;
  status: string;
  seconds?: number | null;
  error?: string | null;
  cache_hit?: boolean;
}

export interface RunDetail {
  run_id: string;
  name: string;
  status: string;
  error?: string | null;
  cards: RunCardRecord[];
  pipeline?: PipelineFile;
}

export interface OutputPreview {
  kind: string;
  stored: boolean;
  state?: string | null;
  preview: unknown;
}

export interface CardOutputs {
  run_id: string;
  card_id: string;
  outputs: Record<string, OutputPreview>;
}

/** One iteration of a body card in a run: its status, and its outputs when the run stored them (else null). */
export interface IterationDetail {
  path: string;
  status: string;
  seconds?: number;
  outputs: Record<string, OutputPreview> | null;
}

/** A recorded sweep as GET /api/sweeps lists it. */
export interface SweepSummary {
  sweep_id: string;
  name: string;
  settings: Record<string, unknown[]>;
  status: string;
  /** Seconds since the epoch. */
  started_at: number;
  ended_at: number | null;
  variants: number;
  succeeded: number;
}

/** A row of a sweep's results table: variant, one column per setting, status, run_id, error, best_epoch,
 * best_metric, best_value and one column per metric (NaN and infinities as strings). */
export type SweepRow = Record<string, unknown>;

export interface SweepVariantDetail {
  index: number;
  settings: Record<string, unknown>;
  run_id: string | null;
  status: string;
  error: string | null;
  /** The values of the sweep's metric in the order the variant's run made them (NaN and infinities as strings). */
  curve: (number | string)[];
}

export interface SweepDetail extends Omit<SweepSummary, 'variants'> {
  options: Record<string, unknown>;
  metric: string;
  results: SweepRow[];
  variants: SweepVariantDetail[];
}

export const api = {
  cards: () => request<Catalogue>('GET', '/api/cards'),
  examples: () => request<ExampleInfo[]>('GET', '/api/examples'),
  example: (name: string) => request<PipelineFile>('GET', `/api/examples/${enc(name)}`),
  pipelines: () => request<SavedInfo[]>('GET', '/api/pipelines'),
  pipeline: (name: string) => request<PipelineFile>('GET', `/api/pipelines/${enc(name)}`),
  save: (name: string, file: PipelineFile) => request<{ name: string; problems: Problem[] }>('PUT', `/api/pipelines/${enc(name)}`, file),
  validate: (file: PipelineFile) => request<{ problems: Problem[] }>('POST', '/api/validate', file),
  executors: () => request<ExecutorInfo[]>('GET', '/api/executors'),
  sweeps: () => request<SweepSummary[]>('GET', '/api/sweeps'),
  sweep: (sweepId: string, metric = 'loss_value') =>
    request<SweepDetail>('GET', `/api/sweeps/${enc(sweepId)}?metric=${enc(metric)}`),
  startRun: (body: RunRequest) => request<{ run_id: string; status: string }>('POST', '/api/runs', body),
  cancelRun: (runId: string) => request<{ cancelling: boolean }>('POST', `/api/runs/${enc(runId)}/cancel`),
  run: (runId: string) => request<RunDetail>('GET', `/api/runs/${enc(runId)}`),
  metrics: (runId: string, name = 'loss_value') =>
    request<{ name: string; points: { step: number; value: number | string; card_id: string }[] }>(
      'GET',
      `/api/runs/${enc(runId)}/metrics?name=${enc(name)}`,
    ),
  outputs: (runId: string, path: string) => request<CardOutputs>('GET', outputsPath(runId, path)),
  iteration: (runId: string, path: string) => request<IterationDetail>('GET', cardPath(runId, path)),
};

/** A card of a run: a body card's iteration by its full path (`epochs[3].batches[7].fwd`). */
export function cardPath(runId: string, path: string): string {
  return `/api/runs/${enc(runId)}/cards/${enc(path)}`;
}

/** Where a card's output previews are. */
export function outputsPath(runId: string, path: string): string {
  return `${cardPath(runId, path)}/outputs`;
}

export function eventsUrl(runId: string): string {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  const query = token ? `?token=${enc(token)}` : '';
  return `${scheme}://${window.location.host}/api/runs/${enc(runId)}/events${query}`;
}
