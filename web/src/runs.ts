/**
 * Runs: start one on the server, follow its events over the WebSocket, and keep what the editor shows — each
 * card's status, the log, the loss curve. Events are collected and applied together, at most every
 * FLUSH_MS (the server sends them in batches too), so that a run of hundreds of cards leaves the page free.
 */
import { api, ApiError, eventsUrl, type RunDetail } from './api';
import { isTopLevelPath, iterationsText, nodeIdOfPath, type IterationLevel } from './blocks';
import { createStore } from './store';
import type { CardRunStatus, PipelineFile, Problem } from './types';

export type RunStatus = 'idle' | 'starting' | 'running' | 'cancelling' | 'succeeded' | 'failed' | 'cancelled' | 'interrupted';

export interface CardRun {
  status: CardRunStatus;
  error?: string;
  seconds?: number;
  /** How far a long running card has come: "step 40 of 90", from its progress reports. */
  progress?: string;
  /** A block's loop levels and metrics so far: an outer loop's event names neither the inner loops nor their loss. */
  levels?: IterationLevel[];
  metrics?: Record<string, number | string>;
}

export interface LogEntry {
  id: number;
  text: string;
  tone: 'info' | 'error' | 'success' | 'muted';
  card?: string;
}

export interface LossPoint {
  step: number;
  value: number;
  card: string;
}

export interface RunState {
  runId: string | null;
  status: RunStatus;
  error: string | null;
  /** What was asked: "all", "until fwd3", "only loss3". */
  mode: string;
  total: number;
  finished: number;
  current: string | null;
  cards: Record<string, CardRun>;
  log: LogEntry[];
  loss: LossPoint[];
  /** The cards' signatures when the run started (to mark cards changed since). */
  sigs: Record<string, string> | null;
  problems: Problem[];
  /** Each loop block's iterations seen in this run (from its progress events): how many, of how many. */
  loops: Record<string, LoopSeen>;
  /** Each body card's top-level block (a block served from the cache sends no events of its body cards). */
  topBlock: Record<string, string>;
}

export interface LoopSeen {
  /** Iterations reached (the highest 0-based index seen, plus one). */
  reached: number;
  /** The number of iterations, null when not known (a block `over` an iterator, or `until`). */
  total: number | null;
}

export const runs = createStore<RunState>({
  runId: null,
  status: 'idle',
  error: null,
  mode: 'all',
  total: 0,
  finished: 0,
  current: null,
  cards: {},
  log: [],
  loss: [],
  sigs: null,
  problems: [],
  loops: {},
  topBlock: {},
});

export const LOG_LIMIT = 5000;
let logId = 1;
let socket: WebSocket | null = null;

export interface RunEvent {
  kind: 'snapshot' | 'run_started' | 'started' | 'progress' | 'done' | 'cached' | 'failed' | 'skipped' | 'run_finished' | 'closed';
  run_id?: string;
  total?: number;
  /** A top-level card's id, or a body card's iteration path (`epochs[3].batches[7].fwd`). */
  card_id?: string;
  card_type?: string;
  position?: number;
  seconds?: number;
  /** A metric's NaN or infinity comes as the string Number() reads: "NaN", "Infinity", "-Infinity". */
  metrics?: Record<string, number | string>;
  error?: string | null;
  status?: string;
  /** A progress event's step of how many (a long card's own steps, such as a training loop's). */
  step?: number;
  steps?: number;
  /** A block's progress: where each loop level around and including it stands (index 0-based). */
  iterations?: IterationLevel[];
  run?: RunDetail;
}

/** A loss as the server sends it: a number, or for NaN and infinities (JSON has none) their string. */
export function lossValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  return value === 'NaN' || value === 'Infinity' || value === '-Infinity' ? Number(value) : undefined;
}

export function isActive(status: RunStatus): boolean {
  return status === 'starting' || status === 'running' || status === 'cancelling';
}

function entry(text: string, tone: LogEntry['tone'] = 'info', card?: string): LogEntry {
  return { id: logId++, text, tone, card };
}

function finalStatus(status: string | undefined): RunStatus {
  if (status === 'succeeded' || status === 'failed' || status === 'cancelled' || status === 'interrupted') return status;
  return 'failed';
}

const CARD_STATUSES: Record<string, CardRunStatus> = {
  done: 'done',
  cached: 'cached',
  failed: 'failed',
  skipped: 'skipped',
  running: 'running',
  started: 'running',
};

/** Apply a batch of events to the run state (pure: used by the live socket and by tests). */
export function reduceEvents(state: RunState, events: RunEvent[]): RunState {
  let { status, error, total, finished, current } = state;
  let cards = state.cards;
  let log = state.log;
  let loss = state.loss;
  let loops = state.loops;
  const newLog: LogEntry[] = [];
  const newLoss: LossPoint[] = [];
  // a body card's events name its iteration path: its light on the canvas is its node's, by the static path
  const setCard = (path: string, run: CardRun) => {
    if (cards === state.cards) cards = { ...cards };
    cards[nodeIdOfPath(path)] = run;
  };
  const seeLoops = (levels: IterationLevel[]) => {
    for (const level of levels) {
      const seen = loops[level.block];
      const reached = Math.max(seen?.reached ?? 0, level.index + 1);
      if (seen && seen.reached === reached && seen.total === level.total) continue;
      if (loops === state.loops) loops = { ...loops };
      loops[level.block] = { reached, total: level.total ?? null };
    }
  };
  for (const event of events) {
    switch (event.kind) {
      case 'snapshot': {
        const run = event.run;
        if (!run) break;
        for (const c of run.cards ?? []) {
          const s = CARD_STATUSES[c.status];
          if (s) setCard(c.card_id, { status: s, error: c.error ?? undefined, seconds: c.seconds ?? undefined });
        }
        if (run.status && run.status !== 'running') {
          status = finalStatus(run.status);
          error = run.error ?? null;
        }
        break;
      }
      case 'run_started':
        total = event.total ?? total;
        if (status === 'starting') status = 'running';
        newLog.push(entry(`run ${event.run_id ?? state.runId} started: ${event.total ?? '?'} cards (${state.mode})`));
        break;
      case 'started':
        if (!event.card_id) break;
        current = event.card_id;
        setCard(event.card_id, { status: 'running' });
        break;
      case 'progress': {
        // a long card (a training loop) reports its latest loss while it runs: a point of the live curve
        if (!event.card_id) break;
        current = event.card_id;
        const value = lossValue(event.metrics?.loss_value);
        let progress: string;
        let levels: IterationLevel[] | undefined;
        let metrics: Record<string, number | string> | undefined;
        if (event.iterations?.length) {
          // a loop block: "epoch 3/10 · batch 17/45 · loss 0.41"; after an epoch, its batches' last place stays
          seeLoops(event.iterations);
          const before = cards[nodeIdOfPath(event.card_id)];
          levels = [...event.iterations, ...(before?.levels ?? []).slice(event.iterations.length)];
          metrics = { ...before?.metrics, ...event.metrics };
          progress = iterationsText(levels, metrics);
        } else {
          const step = event.step !== undefined ? `step ${event.step} of ${event.steps ?? '?'}` : undefined;
          progress = [step, typeof value === 'number' ? `loss ${value.toPrecision(4)}` : undefined].filter(Boolean).join(', ');
        }
        setCard(event.card_id, { status: 'running', progress, ...(levels && { levels, metrics }) });
        // a block's latest loss is its body card's, already on the curve from that card's event
        if (typeof value === 'number' && !event.iterations?.length)
          newLoss.push({ step: loss.length + newLoss.length, value, card: event.card_id });
        break;
      }
      case 'done':
      case 'cached':
      case 'failed':
      case 'skipped': {
        const id = event.card_id;
        if (!id) break;
        // the run's count is of its top-level cards: a body card runs once per iteration
        if (isTopLevelPath(id)) finished += 1;
        // a block keeps where it got to ("epoch 4/10 · batch 45/45 · loss 0.3"): early stopping reads there
        const progress = cards[nodeIdOfPath(id)]?.progress;
        setCard(id, { status: event.kind, error: event.error ?? undefined, seconds: event.seconds, ...(progress && { progress }) });
        if (event.kind === 'cached') {
          for (const [body, block] of Object.entries(state.topBlock))
            if (block === id && cards[body]?.status === 'queued') setCard(body, { status: 'cached' });
        }
        const metrics = event.metrics ?? {};
        const value = lossValue(metrics.loss_value);
        if (value !== undefined) newLoss.push({ step: loss.length + newLoss.length, value, card: id });
        const shown = Object.entries(metrics)
          .map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`)
          .join(', ');
        const time = event.seconds !== undefined ? ` in ${(event.seconds * 1000).toFixed(event.seconds < 0.01 ? 2 : 0)} ms` : '';
        if (event.kind === 'failed') newLog.push(entry(`${id} failed: ${event.error ?? 'no reason given'}`, 'error', id));
        else if (event.kind === 'skipped') newLog.push(entry(`${id} skipped${event.error ? `: ${event.error}` : ''}`, 'muted', id));
        else newLog.push(entry(`${id} ${event.kind}${time}${shown ? ` — ${shown}` : ''}`, event.kind === 'cached' ? 'muted' : 'info', id));
        break;
      }
      case 'run_finished':
      case 'closed': {
        const before = status;
        status = event.status ? finalStatus(event.status) : isActive(status) ? 'failed' : status;
        if (event.error) error = event.error;
        current = null;
        // cards that never ran (a cancelled or failed run) read "not run", whatever told us the run had ended
        for (const [id, c] of Object.entries(cards)) {
          if (c.status === 'queued' || c.status === 'running') setCard(id, { status: 'not-run' });
        }
        if (!isActive(before) && before === status) break;
        newLog.push(
          entry(`run ${status}${error ? `: ${error}` : ''}`, status === 'succeeded' ? 'success' : status === 'failed' ? 'error' : 'info'),
        );
        break;
      }
    }
  }
  if (newLog.length) log = [...log, ...newLog].slice(-LOG_LIMIT);
  if (newLoss.length) loss = [...loss, ...newLoss];
  return { ...state, status, error, total, finished, current, cards, log, loss, loops };
}

/** How long events wait to be applied together (the page draws a frame after each update). */
export const FLUSH_MS = 100;

export interface Batcher<T> {
  push(item: T): void;
  /** Apply what waits now (before something that must see every event so far). */
  flush(): void;
}

/**
 * Collect items and hand them to `apply` all at once: the first item asks `schedule` for a later call, and
 * every item pushed until then joins the same batch (one state update, one render, however many events).
 */
export function createBatcher<T>(apply: (items: T[]) => void, schedule: (run: () => void) => void): Batcher<T> {
  let pending: T[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const items = pending;
    pending = [];
    if (items.length) apply(items);
  };
  return {
    push(item) {
      pending.push(item);
      if (scheduled) return;
      scheduled = true;
      schedule(flush);
    },
    flush,
  };
}

const batcher = createBatcher<RunEvent>(
  (events) => runs.set((s) => reduceEvents(s, events)),
  (run) => window.setTimeout(() => (document.hidden ? run() : requestAnimationFrame(run)), FLUSH_MS),
);
const enqueue = (event: RunEvent) => batcher.push(event);
const flush = () => batcher.flush();

export interface StartOptions {
  file: PipelineFile;
  executor: string;
  /** The ray executor's cluster address; empty or absent: a Ray started on the server's machine. */
  rayAddress?: string;
  persist: 'checkpoint' | 'all';
  cache: boolean;
  until?: string;
  only?: string;
  /** The cards to mark queued (body cards included). */
  queued: string[];
  /** Each body card's top-level block. */
  topBlock: Record<string, string>;
  /** How many top-level cards the run will run (what its progress counts). */
  total: number;
  sigs: Record<string, string>;
}

/** The run state after a start the server refused: the previous run's lights and status back, the reason logged. */
export function refusedStart(previous: RunState, now: RunState, message: string, problems: Problem[]): RunState {
  return { ...previous, problems, log: [...now.log, entry(`the run did not start: ${message}`, 'error')].slice(-LOG_LIMIT) };
}

export async function startRun(options: StartOptions): Promise<string | null> {
  if (isActive(runs.get().status)) return null;
  socket?.close();
  const previous = runs.get();
  const mode = options.only ? `only ${options.only}` : options.until ? `until ${options.until}` : 'all';
  const cards: Record<string, CardRun> = {};
  for (const id of options.queued) cards[id] = { status: 'queued' };
  runs.set({
    runId: null,
    status: 'starting',
    error: null,
    mode,
    total: options.total,
    finished: 0,
    current: null,
    cards,
    loss: [],
    sigs: options.sigs,
    problems: [],
    loops: {},
    topBlock: options.topBlock,
    log: [
      ...runs.get().log,
      entry(
        `starting a run (${mode}, ${options.executor} executor${options.rayAddress ? ` at ${options.rayAddress}` : ''}, persist ${options.persist}${options.cache ? '' : ', no cache'})`,
        'muted',
      ),
    ].slice(-LOG_LIMIT),
  });
  let runId: string;
  try {
    const started = await api.startRun({
      pipeline: options.file,
      executor: options.executor,
      ray_address: options.rayAddress || undefined,
      persist: options.persist,
      cache: options.cache,
      until: options.until,
      only: options.only,
    });
    runId = started.run_id;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const problems = error instanceof ApiError ? error.problems : [];
    runs.set((s) => refusedStart(previous, s, message, problems));
    throw error;
  }
  runs.set({ runId, status: 'running' });
  follow(runId);
  return runId;
}

function follow(runId: string): void {
  const ws = new WebSocket(eventsUrl(runId));
  socket = ws;
  let closedSeen = false;
  ws.onmessage = (message) => {
    let data: RunEvent | RunEvent[];
    try {
      data = JSON.parse(message.data as string);
    } catch {
      return;
    }
    // the server sends the events that piled up since its last message as one list
    const events = Array.isArray(data) ? data : [data];
    const closed = events.some((event) => event.kind === 'closed');
    if (closed) closedSeen = true;
    if (runs.get().runId === runId) for (const event of events) enqueue(event);
    if (closed) void completeLoss(runId);
  };
  ws.onclose = () => {
    if (socket === ws) socket = null;
    if (closedSeen || runs.get().runId !== runId) return;
    // the socket ended early: take the run's state from its records
    api
      .run(runId)
      .then((run) => {
        enqueue({ kind: 'snapshot', run });
        if (run.status !== 'running') enqueue({ kind: 'closed', status: run.status, error: run.error });
      })
      .catch(() => enqueue({ kind: 'closed', status: 'interrupted', error: 'lost contact with the server' }));
  };
}

/** After a run, take the recorded loss series when it has points the events did not carry. */
async function completeLoss(runId: string): Promise<void> {
  try {
    const { points } = await api.metrics(runId);
    flush(); // the events still waiting for a frame first, so that nothing is counted twice
    const state = runs.get();
    if (state.runId !== runId || points.length <= state.loss.length) return;
    runs.set({ loss: points.map((p, i) => ({ step: i, value: lossValue(p.value) ?? NaN, card: p.card_id })) });
  } catch {
    /* the live series stays */
  }
}

export async function cancelRun(): Promise<void> {
  const { runId, status } = runs.get();
  if (!runId || !isActive(status)) return;
  runs.set({ status: 'cancelling' });
  try {
    await api.cancelRun(runId);
  } catch (error) {
    runs.set((s) => ({ log: [...s.log, entry(`cancel: ${error instanceof Error ? error.message : error}`, 'error')] }));
  }
}

export function clearLog(): void {
  runs.set({ log: [] });
}
