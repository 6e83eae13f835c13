import { describe, expect, it } from 'vitest';
import { lossShape } from './components/LossPlot';
import { createBatcher, reduceEvents, refusedStart, runs, type RunEvent, type RunState } from './runs';

const base: RunState = { ...runs.get(), runId: 'r1', status: 'running', cards: { a: { status: 'queued' }, b: { status: 'queued' } } };

describe('reduceEvents', () => {
  it('follows a run: statuses, loss points, the end', () => {
    const s = reduceEvents(base, [
      { kind: 'run_started', run_id: 'r1', total: 2 },
      { kind: 'started', card_id: 'a' },
      { kind: 'done', card_id: 'a', seconds: 0.01, metrics: { loss_value: 0.5 } },
      { kind: 'started', card_id: 'b' },
    ]);
    expect(s.cards.a.status).toBe('done');
    expect(s.cards.b.status).toBe('running');
    expect(s.loss).toEqual([{ step: 0, value: 0.5, card: 'a' }]);
    expect(s.finished).toBe(1);
    const end = reduceEvents(s, [
      { kind: 'failed', card_id: 'b', error: "card 'b' failed: no" },
      { kind: 'run_finished', status: 'failed', error: "card 'b' failed: no" },
      { kind: 'closed', status: 'failed', error: "card 'b' failed: no" },
    ]);
    expect(end.cards.b).toMatchObject({ status: 'failed', error: "card 'b' failed: no" });
    expect(end.status).toBe('failed');
    expect(end.log.filter((l) => l.text.startsWith('run failed')).length).toBe(1);
  });

  it("draws a long card's progress reports on the loss curve", () => {
    const s = reduceEvents(base, [
      { kind: 'started', card_id: 'a' },
      { kind: 'progress', card_id: 'a', step: 1, steps: 90, metrics: { loss_value: 0.9 } },
      { kind: 'progress', card_id: 'a', step: 40, steps: 90, metrics: { loss_value: 0.4 } },
    ]);
    expect(s.current).toBe('a');
    expect(s.cards.a).toEqual({ status: 'running', progress: 'step 40 of 90, loss 0.4000' });
    expect(s.loss).toEqual([
      { step: 0, value: 0.9, card: 'a' },
      { step: 1, value: 0.4, card: 'a' },
    ]);
    expect(s.finished).toBe(0);
  });

  it('takes statuses from a snapshot, and marks the cards a cancelled run never came to "not run"', () => {
    const s = reduceEvents(base, [
      { kind: 'snapshot', run: { run_id: 'r1', name: 'p', status: 'running', cards: [{ card_id: 'a', status: 'cached' }] } },
      { kind: 'closed', status: 'cancelled' },
    ]);
    expect(s.cards).toEqual({ a: { status: 'cached', error: undefined, seconds: undefined }, b: { status: 'not-run' } });
    expect(s.status).toBe('cancelled');
  });

  it('marks the cards below a failure "not run" when the first thing heard is a snapshot of the failed run', () => {
    const queued = {
      ...base,
      cards: { a: { status: 'queued' as const }, b: { status: 'queued' as const }, c: { status: 'queued' as const } },
    };
    const s = reduceEvents(queued, [
      {
        kind: 'snapshot',
        run: { run_id: 'r1', name: 'p', status: 'failed', error: 'no', cards: [{ card_id: 'a', status: 'failed', error: 'no' }] },
      },
      { kind: 'run_started', run_id: 'r1', total: 3 },
      { kind: 'started', card_id: 'a' },
      { kind: 'failed', card_id: 'a', error: 'no' },
      { kind: 'run_finished', status: 'failed', error: 'no' },
      { kind: 'closed', status: 'failed', error: 'no' },
    ]);
    expect(s.status).toBe('failed');
    expect(s.cards.a.status).toBe('failed');
    expect(s.cards.b).toEqual({ status: 'not-run' });
    expect(s.cards.c).toEqual({ status: 'not-run' });
  });
});

describe('refusedStart', () => {
  it("gives back the previous run's lights and status when the server refuses a start", () => {
    const previous: RunState = { ...base, status: 'succeeded', cards: { a: { status: 'done' }, b: { status: 'cached' } } };
    const starting: RunState = { ...previous, status: 'starting', runId: null, cards: { b: { status: 'queued' } } };
    const s = refusedStart(previous, starting, "card 'b' cannot run alone", []);
    expect(s.cards).toEqual(previous.cards);
    expect(s.status).toBe('succeeded');
    expect(s.runId).toBe('r1');
    expect(s.log.at(-1)?.text).toBe("the run did not start: card 'b' cannot run alone");
  });
});

describe('createBatcher', () => {
  it('applies the events of a 276-card run that arrive before the scheduled flush as one update', () => {
    const scheduled: (() => void)[] = [];
    const applied: RunEvent[][] = [];
    const batcher = createBatcher<RunEvent>(
      (events) => applied.push(events),
      (run) => scheduled.push(run),
    );
    for (let i = 0; i < 276; i++) {
      batcher.push({ kind: 'started', card_id: `c${i}` });
      batcher.push({ kind: 'done', card_id: `c${i}` });
    }
    expect(scheduled).toHaveLength(1);
    expect(applied).toHaveLength(0);
    scheduled[0]();
    expect(applied).toHaveLength(1);
    expect(applied[0]).toHaveLength(552);
  });

  it('starts a new batch after a flush, and a flush with nothing waiting applies nothing', () => {
    const scheduled: (() => void)[] = [];
    const applied: number[][] = [];
    const batcher = createBatcher<number>(
      (items) => applied.push(items),
      (run) => scheduled.push(run),
    );
    batcher.push(1);
    batcher.flush();
    batcher.push(2);
    batcher.push(3);
    scheduled[0](); // the first batch's timer, late: it applies what waits now
    batcher.flush();
    expect(applied).toEqual([[1], [2, 3]]);
  });
});

describe('a diverged loss', () => {
  it('comes as "NaN" or "Infinity" and is kept as that number, in its step', () => {
    const s = reduceEvents(base, [
      { kind: 'done', card_id: 'a', metrics: { loss_value: 0.5 } },
      { kind: 'done', card_id: 'b', metrics: { loss_value: 'Infinity' } },
      { kind: 'progress', card_id: 'b', step: 2, steps: 3, metrics: { loss_value: 'NaN' } },
    ]);
    expect(s.loss.map((p) => p.value)).toEqual([0.5, Infinity, NaN]);
    expect(s.cards.b.progress).toBe('step 2 of 3, loss NaN');
  });

  it('breaks the plotted line and is marked apart, off the scale of the finite losses', () => {
    const points = [0.5, 0.4, Infinity, NaN, 0.3].map((value, step) => ({ step, value, card: `loss${step}` }));
    expect(lossShape(points)).toEqual({ min: 0.3, max: 0.5, lines: [[0, 1], [4]], notFinite: [2, 3] });
  });
});

describe('reduceEvents with loop blocks (recorded events of the block contract)', () => {
  const looping: RunState = {
    ...runs.get(),
    runId: 'r2',
    status: 'running',
    cards: { epochs: { status: 'queued' }, evaluate: { status: 'queued' } },
  };
  const events: RunEvent[] = [
    { kind: 'run_started', run_id: 'r2', total: 2 },
    { kind: 'started', card_id: 'epochs' },
    { kind: 'started', card_id: 'epochs[2].it' },
    { kind: 'done', card_id: 'epochs[2].it', seconds: 0.001 },
    { kind: 'started', card_id: 'epochs[2].batches[16].fwd' },
    { kind: 'done', card_id: 'epochs[2].batches[16].fwd', seconds: 0.001 },
    { kind: 'done', card_id: 'epochs[2].batches[16].loss', seconds: 0.001, metrics: { loss_value: 0.41 } },
    { kind: 'skipped', card_id: 'epochs[2].batches[16].step' },
    {
      kind: 'progress',
      card_id: 'epochs',
      step: 2,
      steps: 10,
      metrics: { loss_value: 0.4123 },
      iterations: [
        { block: 'epochs', index: 2, total: 10 },
        { block: 'batches', index: 16, total: 45 },
      ],
    },
  ];

  it('shows on the running block where each loop stands, counted from 1, and its latest metrics', () => {
    const s = reduceEvents(looping, events);
    expect(s.cards.epochs).toMatchObject({ status: 'running', progress: 'epoch 3/10 · batch 17/45 · loss 0.412' });
    expect(s.loops).toEqual({ epochs: { reached: 3, total: 10 }, batches: { reached: 17, total: 45 } });
  });

  it('lights body cards by their static path and counts only top-level cards as finished', () => {
    const s = reduceEvents(looping, events);
    expect(s.cards.it.status).toBe('done');
    expect(s.cards.fwd.status).toBe('done');
    expect(s.cards.loss.status).toBe('done');
    expect(s.cards['epochs[2].it']).toBeUndefined();
    expect(s.finished).toBe(0);
    expect(s.loss).toEqual([{ step: 0, value: 0.41, card: 'epochs[2].batches[16].loss' }]);
    const end = reduceEvents(s, [{ kind: 'done', card_id: 'epochs', seconds: 1 }]);
    expect(end.finished).toBe(1);
  });

  it('shows a skipped card as skipped, never as a success, from events and from a snapshot', () => {
    const s = reduceEvents(looping, events);
    expect(s.cards.step.status).toBe('skipped');
    expect(s.log.at(-1)?.text).toBe('epochs[2].batches[16].step skipped');
    const snap = reduceEvents(looping, [
      { kind: 'snapshot', run: { run_id: 'r2', name: 'p', status: 'running', cards: [{ card_id: 'epochs[0].eval', status: 'skipped' }] } },
    ]);
    expect(snap.cards.eval.status).toBe('skipped');
  });

  it("keeps the inner loops' places and the latest loss when an outer loop's iteration ends (the server's shape)", () => {
    // after the last batch of epoch 1: the batches level and the loss; after epoch 1 itself: its level and the
    // epoch body's metrics only
    const s = reduceEvents(looping, [
      { kind: 'progress', card_id: 'epochs', metrics: { loss_value: 0.4123 }, iterations: [
        { block: 'epochs', index: 0, total: 10 }, { block: 'batches', index: 44, total: 45 }] },
      { kind: 'progress', card_id: 'epochs', metrics: { mse: 0.5, best_value: 0.5 }, iterations: [
        { block: 'epochs', index: 0, total: 10 }] },
    ]);
    expect(s.cards.epochs.progress).toBe('epoch 1/10 · batch 45/45 · loss 0.412 · mse 0.5 · best_value 0.5');
    const next = reduceEvents(s, [{ kind: 'progress', card_id: 'epochs', metrics: { loss_value: 0.3 }, iterations: [
      { block: 'epochs', index: 1, total: 10 }, { block: 'batches', index: 0, total: 45 }] }]);
    expect(next.cards.epochs.progress).toBe('epoch 2/10 · batch 1/45 · loss 0.3 · mse 0.5 · best_value 0.5');
  });

  it("lights a block's body cards cached when the block's result comes from the cache, not 'not run'", () => {
    const queued: RunState = {
      ...looping,
      cards: { epochs: { status: 'queued' }, evaluate: { status: 'queued' }, fwd: { status: 'queued' }, eval: { status: 'queued' } },
      topBlock: { fwd: 'epochs', eval: 'epochs' },
    };
    const s = reduceEvents(queued, [
      { kind: 'cached', card_id: 'epochs' },
      { kind: 'done', card_id: 'evaluate' },
      { kind: 'run_finished', status: 'succeeded' },
    ]);
    expect([s.cards.fwd.status, s.cards.eval.status, s.cards.epochs.status]).toEqual(['cached', 'cached', 'cached']);
  });

  it('keeps where a block got to once it is done: the iterations it ran and its last loss', () => {
    const s = reduceEvents(looping, [...events, { kind: 'done', card_id: 'epochs', seconds: 1 }]);
    expect(s.cards.epochs).toEqual({ status: 'done', seconds: 1, progress: 'epoch 3/10 · batch 17/45 · loss 0.412' });
  });

  it('keeps a loop whose number of iterations is unknown as "?"', () => {
    const s = reduceEvents(looping, [{ kind: 'progress', card_id: 'epochs', iterations: [{ block: 'epochs', index: 0, total: null }] }]);
    expect(s.cards.epochs.progress).toBe('epoch 1/?');
    expect(s.loops.epochs).toEqual({ reached: 1, total: null });
  });
});
