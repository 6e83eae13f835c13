import { describe, expect, it } from 'vitest';
import { cardPath, outputsPath } from './api';
import {
  blockProblems,
  iterationPath,
  iterationsText,
  loopSummary,
  loopWord,
  nodeIdOfPath,
  iterationNote,
  staticPath,
  whenProblems,
  whenSummary,
  type BlockScope,
} from './blocks';
import type { AnyNode } from './types';

const scope: BlockScope = {
  inputs: ['train', 'model'],
  bodyOutput: (ref) => ['stop.stop', 'stop.state', 'eval.mse'].includes(ref),
};

describe('loopSummary', () => {
  it('says how many times the body runs in a few words', () => {
    expect(loopSummary({ times: 10 })).toBe('× 10');
    expect(loopSummary({}, 'it.batches')).toBe('over it.batches');
    expect(loopSummary({ until: 'stop.stop', max: 100 })).toBe('until stop.stop ≤ 100');
    expect(loopSummary({ times: 10, until: 'stop.stop' })).toBe('× 10 · until stop.stop');
    expect(loopSummary({})).toBe('once');
  });
});

describe('blockProblems', () => {
  it('accepts the example block', () => {
    expect(
      blockProblems({ times: 10, until: 'stop.stop', carry: { es: { init: null, next: 'stop.state' } } }, scope),
    ).toEqual([]);
  });

  it('names each field that is wrong and says what would be valid', () => {
    expect(
      blockProblems(
        {
          times: 0,
          max: 'x',
          until: 'nowhere.stop',
          carry: { model: { init: null, next: 'eval.mse' }, es: { init: 1 } },
          epochs: 3,
        },
        scope,
      ),
    ).toEqual([
      "config 'epochs': a loop block has no such setting; its settings are times, max, until, carry",
      "config 'times' is 0: it must be a whole number of at least 1",
      'config \'max\' is "x": it must be a whole number of at least 1',
      "config 'until' uses 'nowhere.stop', which is not an output of a card in the block's body",
      "config 'carry': 'model' is already a port of the block",
      "config 'carry.es' must be {init, next}: next names the body output it takes in the next iteration",
    ]);
  });

  it('wants a bound for until, and not both times and over', () => {
    expect(blockProblems({ until: 'stop.stop' }, scope)).toEqual([
      "config 'until' needs a bound: set 'times' or 'max', or give the block an input 'over'",
    ]);
    expect(blockProblems({ until: 'stop.stop' }, { ...scope, inputs: ['over'] })).toEqual([]);
    expect(blockProblems({ times: 2 }, { ...scope, inputs: ['over'] })).toEqual([
      "config 'times': a block runs 'times' times or once per item of its input 'over', not both",
    ]);
  });
});

describe('whenProblems', () => {
  const exists = (id: string) => ['loss', 'eval'].includes(id);

  it('accepts each kind of condition', () => {
    expect(whenProblems({ every: 5, of: 'epochs', global: true }, ['epochs', 'batches'], exists)).toEqual([]);
    expect(whenProblems({ finite: 'loss.loss_value' }, [], exists)).toEqual([]);
    expect(whenProblems({ value: 'eval.mse', below: 0.5 }, [], exists)).toEqual([]);
    expect(
      whenProblems({ all: [{ finite: 'loss.loss_value' }, { every: 2, of: 'epochs' }] }, ['epochs'], exists),
    ).toEqual([]);
    expect(
      whenProblems({ any: [{ every: 4, of: 'batches' }, { value: 'batches.is_last', equals: true }] }, ['batches'],
        (id) => id === 'batches'),
    ).toEqual([]);
    expect(whenProblems({ any: [] }, [], exists)).toEqual(["when 'any' must be a non-empty list of conditions"]);
  });

  it('names a loop that does not enclose the card, and lists those that do', () => {
    expect(whenProblems({ every: 0, of: 'batches' }, ['epochs'], exists)).toEqual([
      "when 'every' is 0: it must be a whole number of at least 1",
      'when \'of\' is "batches": it must name a loop block around the card; the loops around this card are: epochs',
    ]);
    expect(whenProblems({ every: 2, of: 'epochs' }, [], exists)[0]).toMatch(/no loop block encloses this card$/);
  });

  it('checks the references and the comparison', () => {
    expect(whenProblems({ finite: 'ghost.x' }, [], exists)).toEqual([
      "when 'finite' uses 'ghost.x', but there is no card 'ghost'",
    ]);
    expect(whenProblems({ value: 'eval.mse', above: 'high' }, [], exists)).toEqual([
      'when \'above\' is "high": it must be a number',
    ]);
    expect(whenProblems({ value: 'eval.mse' }, [], exists)).toEqual([
      "when with 'value' needs exactly one of equals, not_equals, above, below, at_least, at_most",
    ]);
    expect(whenProblems({ sometimes: true }, [], exists)).toEqual([
      'when must have one of: every (with of), finite, value, all, any',
    ]);
  });

  it('reads in a few words on the card', () => {
    expect(whenSummary({ every: 5, of: 'epochs' })).toBe('every 5 of epochs');
    expect(whenSummary({ value: 'eval.mse', at_most: 1 })).toBe('eval.mse ≤ 1');
    expect(whenSummary({ any: [{ every: 4, of: 'batches' }, { value: 'batches.is_last', equals: true }] })).toBe(
      'every 4 of batches or batches.is_last = true',
    );
  });
});

describe('paths and progress', () => {
  const nodes = [
    {
      id: 'epochs',
      type: 'group',
      position: { x: 0, y: 0 },
      data: { cardType: 'loop', config: {}, bodyOrder: ['batches'] },
    },
    {
      id: 'batches',
      parentId: 'epochs',
      type: 'group',
      position: { x: 0, y: 0 },
      data: { cardType: 'loop', config: {}, bodyOrder: ['fwd'] },
    },
    {
      id: 'fwd',
      parentId: 'batches',
      type: 'card',
      position: { x: 0, y: 0 },
      data: { cardType: 'training_forward', config: {} },
    },
  ] as AnyNode[];

  it('strips the iterations to the static path and finds the node', () => {
    expect(staticPath('epochs[3].batches[7].fwd')).toBe('epochs.batches.fwd');
    expect(nodeIdOfPath('epochs[3].batches[7].fwd')).toBe('fwd');
    expect(nodeIdOfPath('data')).toBe('data');
  });

  it("builds a body card's full path from the chosen iterations, 0 where none is chosen", () => {
    expect(iterationPath('fwd', nodes, { epochs: 3, batches: 7 })).toBe('epochs[3].batches[7].fwd');
    expect(iterationPath('fwd', nodes, { epochs: 2 })).toBe('epochs[2].batches[0].fwd');
    expect(iterationPath('epochs', nodes, {})).toBe('epochs');
  });

  it("asks for a body card's previews with its full path, URL-encoded", () => {
    expect(outputsPath('r 1', 'epochs[3].batches[7].fwd')).toBe(
      '/api/runs/r%201/cards/epochs%5B3%5D.batches%5B7%5D.fwd/outputs',
    );
  });

  it("asks for one iteration of a body card (its status and outputs) by its full path, URL-encoded", () => {
    expect(cardPath('r 1', 'epochs[3].batches[7].fwd')).toBe('/api/runs/r%201/cards/epochs%5B3%5D.batches%5B7%5D.fwd');
  });

  it('says an iteration in which the card was skipped was skipped, not that it was not stored', () => {
    expect(iterationNote({ path: 'epochs[0].eval', status: 'skipped', outputs: null })).toBe(
      'epochs[0].eval: skipped in this iteration (its when did not hold, or it used a skipped value): no outputs',
    );
  });

  it('says an iteration not kept under the persist policy is not stored, and nothing of one it kept', () => {
    expect(iterationNote({ path: 'epochs[3].fwd', status: 'done', outputs: null })).toBe(
      'epochs[3].fwd: not stored for this iteration under the persist policy (run with persist "all" to keep every iteration\'s outputs)',
    );
    expect(iterationNote({ path: 'epochs[3].fwd', status: 'done', outputs: {} })).toBeNull();
  });

  it('names each loop level by its block id in the singular', () => {
    expect(['epochs', 'batches', 'steps', 'outer', 'passes'].map(loopWord)).toEqual([
      'epoch',
      'batch',
      'step',
      'outer',
      'pass',
    ]);
    expect(iterationsText([{ block: 'outer', index: 0, total: null }], { mse: 0.25, loss_value: 'NaN' })).toBe(
      'outer 1/? · mse 0.25 · loss NaN',
    );
  });
});
