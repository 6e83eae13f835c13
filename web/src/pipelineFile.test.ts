import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import fixtureText from './fixtures/training_loop_blocks.yaml?raw';
import { CatalogueIndex } from './catalogue';
import { CARD_WIDTH, autoLayout, fromPipelineFile, layersOf, parseRef, toPipelineFile, withoutUi } from './pipelineFile';
import type { Catalogue, GroupData, PipelineFile } from './types';

const port = (name: string, kind: string, required = true) => ({ name, kind, required });
const catalogue = new CatalogueIndex({
  kinds: { dataframe: '', model: '', optimizer: '', batch: '', tensor: '', loss: '', scalar: '', info: '', any: '' },
  cards: [
    {
      id: 'data_load',
      title: 'Load data',
      category: 'data',
      description: '',
      inputs: [],
      outputs: [port('dataset', 'dataframe')],
      config_schema: {},
    },
    {
      id: 'model_define',
      title: 'Model',
      category: 'model',
      description: '',
      inputs: [],
      outputs: [port('model', 'model')],
      config_schema: {},
    },
    {
      id: 'training_init_optimizer',
      title: 'Opt',
      category: 'training',
      description: '',
      inputs: [port('model', 'model')],
      outputs: [port('optimizer', 'optimizer')],
      config_schema: {},
    },
    {
      id: 'training_prepare_batch',
      title: 'Batch',
      category: 'training',
      description: '',
      inputs: [port('train_dataset', 'dataframe')],
      outputs: [port('batch_data', 'batch'), port('batch_info', 'info')],
      config_schema: {},
    },
    {
      id: 'training_forward',
      title: 'Forward',
      category: 'training',
      description: '',
      inputs: [port('model', 'model'), port('batch_data', 'batch')],
      outputs: [port('predictions', 'tensor'), port('model', 'model')],
      config_schema: {},
    },
    {
      id: 'data_normalize',
      title: 'Normalize',
      category: 'data',
      description: '',
      inputs: [port('train_dataset', 'dataframe'), port('test_dataset', 'dataframe')],
      outputs: [port('train_dataset', 'dataframe'), port('test_dataset', 'dataframe')],
      config_schema: {},
    },
  ],
} satisfies Catalogue);

const file: PipelineFile = {
  version: 1,
  name: 'tiny',
  description: 'a small loop',
  cards: [
    { id: 'data', type: 'data_load', config: { path: 'cardloop:diabetes.csv', target_columns: ['target'] } },
    { id: 'model', type: 'model_define', config: { input_dim: 10, layers: [64, 64], seed: 0 } },
    { id: 'opt', type: 'training_init_optimizer', inputs: { model: 'model.model' }, config: { learning_rate: 0.001 } },
    { id: 'batch0', type: 'training_prepare_batch', inputs: { train_dataset: 'data.dataset' }, config: { batch_index: 0 } },
    { id: 'fwd0', type: 'training_forward', inputs: { model: 'model.model', batch_data: 'batch0.batch_data' } },
  ],
};

describe('fromPipelineFile', () => {
  it('maps inputs to edges whose handles are the port names', () => {
    const doc = fromPipelineFile(file, catalogue);
    expect(doc.order).toEqual(['data', 'model', 'opt', 'batch0', 'fwd0']);
    expect(doc.name).toBe('tiny');
    expect(doc.description).toBe('a small loop');
    const links = doc.edges.map((e) => [e.source, e.sourceHandle, e.target, e.targetHandle, e.data?.kind]);
    expect(links).toEqual([
      ['model', 'model', 'opt', 'model', 'model'],
      ['data', 'dataset', 'batch0', 'train_dataset', 'dataframe'],
      ['model', 'model', 'fwd0', 'model', 'model'],
      ['batch0', 'batch_data', 'fwd0', 'batch_data', 'batch'],
    ]);
    const fwd = doc.nodes.find((n) => n.id === 'fwd0')!;
    expect(fwd.type).toBe('card');
    expect(fwd.data.cardType).toBe('training_forward');
  });

  it('lays out a file without positions: a column per layer, in script order', () => {
    const doc = fromPipelineFile(file, catalogue);
    const at = Object.fromEntries(doc.nodes.map((n) => [n.id, n.position]));
    expect(at.data.x).toBe(0);
    expect(at.model.x).toBe(0);
    expect(at.model.y).toBeGreaterThan(at.data.y);
    expect(at.opt.x).toBeGreaterThan(at.model.x);
    expect(at.batch0.x).toBe(at.opt.x);
    expect(at.fwd0.x).toBeGreaterThan(at.batch0.x);
    const keys = new Set(doc.nodes.map((n) => `${n.position.x},${n.position.y}`));
    expect(keys.size).toBe(doc.nodes.length);
  });

  it('wraps a long script onto bands, about as wide as a screen', () => {
    const chain = Array.from({ length: 30 }, (_, i) => ({
      id: `c${i}`,
      type: 'model_define',
      inputs: i ? { model: `c${i - 1}.model` } : undefined,
    }));
    const positions = autoLayout(chain, catalogue);
    const xs = [...positions.values()].map((p) => p.x);
    const ys = [...positions.values()].map((p) => p.y);
    const width = Math.max(...xs) + 240;
    const height = Math.max(...ys) + 80;
    expect(positions.get('c0')).toEqual({ x: 0, y: 0 });
    expect(new Set(ys).size).toBeGreaterThan(1);
    expect(width / height).toBeGreaterThan(0.9);
    expect(width / height).toBeLessThan(3.6);
    // each band reads left to right, and the next band starts below at the left
    const firstOfBand2 = chain.find((c) => positions.get(c.id)!.y > 0)!;
    expect(positions.get(firstOfBand2.id)!.x).toBe(0);
  });

  it('puts a card beside the cards that use it: each batch next to its forward pass', () => {
    const items: { id: string; inputs: Record<string, string> }[] = [
      { id: 'data', inputs: {} },
      { id: 'model', inputs: {} },
      { id: 'batch0', inputs: { d: 'data.dataset' } },
      { id: 'fwd0', inputs: { m: 'model.model', b: 'batch0.batch_data' } },
      { id: 'batch1', inputs: { d: 'data.dataset' } },
      { id: 'fwd1', inputs: { m: 'fwd0.model', b: 'batch1.batch_data' } },
      { id: 'batch2', inputs: { d: 'data.dataset' } },
      { id: 'fwd2', inputs: { m: 'fwd1.model', b: 'batch2.batch_data' } },
    ];
    const layers = Object.fromEntries(layersOf(items));
    expect(layers).toEqual({ data: 0, model: 1, batch0: 1, fwd0: 2, batch1: 2, fwd1: 3, batch2: 3, fwd2: 4 });
  });

  it('keeps inputs it cannot draw, so that the file round-trips', () => {
    const broken: PipelineFile = {
      version: 1,
      cards: [{ id: 'opt', type: 'training_init_optimizer', inputs: { model: 'nowhere.model' } }],
    };
    const doc = fromPipelineFile(broken, catalogue);
    expect(doc.edges).toEqual([]);
    expect(toPipelineFile(doc.nodes, doc.edges, doc.order).cards[0].inputs).toEqual({ model: 'nowhere.model' });
  });

  it('draws the ports a card of an unknown type is seen to use', () => {
    const custom: PipelineFile = {
      version: 1,
      cards: [
        { id: 'model', type: 'model_define' },
        { id: 'l1', type: 'l1_regularization', inputs: { model: 'model.model' } },
        { id: 'opt', type: 'training_init_optimizer', inputs: { model: 'l1.model' } },
      ],
    };
    const doc = fromPipelineFile(custom, catalogue);
    const l1 = doc.nodes.find((n) => n.id === 'l1')!;
    expect(l1.data.ports).toEqual({
      inputs: [{ name: 'model', kind: 'any', required: true }],
      outputs: [{ name: 'model', kind: 'any', required: true }],
    });
    expect(doc.edges.map((e) => e.data?.kind)).toEqual(['model', 'model']);
    expect(withoutUi(toPipelineFile(doc.nodes, doc.edges, doc.order))).toEqual({ ...custom, name: 'pipeline' });
  });

  it('refuses what is not a version-1 pipeline', () => {
    expect(() => fromPipelineFile({ version: 2, cards: [] } as unknown as PipelineFile)).toThrow(/version/);
    expect(() => fromPipelineFile({ version: 1, cards: [{ id: 'x' }] } as unknown as PipelineFile)).toThrow(/type/);
  });
});

describe('toPipelineFile', () => {
  it('round-trips ids, types, config, inputs, order and positions', () => {
    const doc = fromPipelineFile(file, catalogue);
    const out = toPipelineFile(doc.nodes, doc.edges, doc.order, { name: doc.name, description: doc.description });
    expect(out.version).toBe(1);
    expect(out.name).toBe('tiny');
    expect(withoutUi(out)).toEqual(file);
    for (const card of out.cards) {
      expect(card.ui?.position).toEqual(doc.nodes.find((n) => n.id === card.id)!.position);
    }
    // and back again: the same graph, now from the saved positions
    const again = fromPipelineFile(out, catalogue);
    expect(again.order).toEqual(doc.order);
    expect(again.nodes.map((n) => [n.id, n.type, n.data, n.position])).toEqual(doc.nodes.map((n) => [n.id, n.type, n.data, n.position]));
    expect(again.edges).toEqual(doc.edges);
    expect(toPipelineFile(again.nodes, again.edges, again.order, { name: 'tiny', description: 'a small loop' })).toEqual(out);
  });

  it('writes cards in the given order and inputs as "card.port"', () => {
    const doc = fromPipelineFile(file, catalogue);
    const moved = doc.nodes.map((n) => (n.id === 'fwd0' ? { ...n, position: { x: 12.5, y: -40 } } : n));
    const out = toPipelineFile(moved, doc.edges, ['model', 'data', 'opt', 'batch0', 'fwd0']);
    expect(out.cards.map((c) => c.id)).toEqual(['model', 'data', 'opt', 'batch0', 'fwd0']);
    const fwd = out.cards[4];
    expect(fwd.inputs).toEqual({ model: 'model.model', batch_data: 'batch0.batch_data' });
    expect(fwd.ui).toEqual({ position: { x: 12.5, y: -40 } });
    expect(fwd.config).toBeUndefined();
  });

  it('keeps other ui keys and leaves out empty inputs and config', () => {
    const coloured: PipelineFile = {
      version: 1,
      name: 'c',
      cards: [{ id: 'm', type: 'model_define', ui: { position: { x: 1, y: 2 }, colour: '#f00' } }],
    };
    const doc = fromPipelineFile(coloured, catalogue);
    expect(doc.nodes[0].position).toEqual({ x: 1, y: 2 });
    expect(toPipelineFile(doc.nodes, doc.edges, doc.order, { name: 'c' })).toEqual(coloured);
  });

  it('round-trips a block holding a sub-pipeline as a group node with children', () => {
    const looped: PipelineFile = {
      version: 1,
      name: 'looped',
      cards: [
        { id: 'model', type: 'model_define', ui: { position: { x: 0, y: 0 } } },
        {
          id: 'loop',
          type: 'loop_block',
          inputs: { model: 'model.model' },
          config: { times: 3 },
          ui: { position: { x: 300, y: 0 }, size: { width: 600, height: 300 } },
          body: {
            cards: [{ id: 'fwd', type: 'training_forward', inputs: { model: 'loop.model' }, ui: { position: { x: 40, y: 56 } } }],
            outputs: { model: 'fwd.model' },
          },
        },
        { id: 'opt', type: 'training_init_optimizer', inputs: { model: 'loop.model' }, ui: { position: { x: 1000, y: 0 } } },
      ],
    };
    const doc = fromPipelineFile(looped, catalogue);
    const group = doc.nodes.find((n) => n.id === 'loop')!;
    const child = doc.nodes.find((n) => n.id === 'fwd')!;
    expect(group.type).toBe('group');
    expect((group.data as GroupData).bodyOrder).toEqual(['fwd']);
    expect((group.data as GroupData).ports?.inputs.map((p) => p.name)).toEqual(['model']);
    expect((group.data as GroupData).ports?.outputs.map((p) => p.name)).toEqual(['model']);
    expect(child.parentId).toBe('loop');
    expect(doc.nodes.indexOf(group)).toBeLessThan(doc.nodes.indexOf(child));
    expect(doc.order).toEqual(['model', 'loop', 'opt']);
    const handles = doc.edges.map((e) => `${e.source}.${e.sourceHandle}->${e.target}.${e.targetHandle}`);
    expect(handles).toEqual(
      expect.arrayContaining(['model.model->loop.model', 'loop.in:model->fwd.model', 'fwd.model->loop.out:model', 'loop.model->opt.model']),
    );
    expect(toPipelineFile(doc.nodes, doc.edges, doc.order, { name: 'looped' })).toEqual(looped);
  });
});

describe('parseRef', () => {
  it('reads "card.port" and nothing else', () => {
    expect(parseRef('fwd0.predictions')).toEqual({ card: 'fwd0', port: 'predictions' });
    expect(parseRef('fwd0')).toBeNull();
    expect(parseRef('a.b.c')).toBeNull();
    expect(parseRef('.b')).toBeNull();
    expect(parseRef(3)).toBeNull();
  });
});

describe('loop blocks and when (docs/blocks.md)', () => {
  const fixture = parse(fixtureText) as PipelineFile;
  const roundTrip = (f: PipelineFile) => {
    const doc = fromPipelineFile(f, catalogue);
    return withoutUi(toPipelineFile(doc.nodes, doc.edges, doc.order, { name: f.name, description: f.description }));
  };

  it('round-trips the training loop written with nested loop blocks', () => {
    expect(roundTrip(fixture)).toEqual(fixture);
  });

  it('opens a pipeline with blocks as a few top-level cards, each block collapsed with its body hidden', () => {
    const doc = fromPipelineFile(fixture, catalogue);
    const top = doc.nodes.filter((n) => !n.parentId);
    expect(top.map((n) => n.id)).toEqual(['data', 'split', 'normalize', 'model', 'opt', 'epochs', 'evaluate']);
    expect(top.length).toBeLessThanOrEqual(20);
    expect(doc.nodes.filter((n) => n.parentId).every((n) => n.hidden)).toBe(true);
    expect(top.every((n) => !n.hidden)).toBe(true);
  });

  it('gives a block the ports its declaration shows: inputs, body outputs, carried values, and inside iteration and the item', () => {
    const doc = fromPipelineFile(fixture, catalogue);
    const epochs = doc.nodes.find((n) => n.id === 'epochs')!.data as GroupData;
    expect(epochs.ports?.inputs.map((p) => [p.name, p.kind])).toEqual([
      ['train', 'dataframe'],
      ['val', 'dataframe'],
      ['model', 'model'],
      ['optimizer', 'optimizer'],
    ]);
    expect(epochs.ports?.outputs.map((p) => p.name)).toEqual(['model', 'optimizer', 'loss', 'val_mse']);
    const handles = doc.edges.map((e) => `${e.source}.${e.sourceHandle}->${e.target}.${e.targetHandle}`);
    expect(handles).toEqual(
      expect.arrayContaining([
        'epochs.in:iteration->it.epoch',
        'epochs.in:es->stop.state',
        'it.batches->batches.over',
        'batches.in:batch_data->fwd.batch_data',
        'batches.model->eval.model',
        'step.model->batches.out:model',
        'batches.loss->epochs.out:loss',
        'epochs.model->evaluate.model',
      ]),
    );
    // an unknown card type shows the outputs its block's config uses (until, carry next)
    const stop = doc.nodes.find((n) => n.id === 'stop')!;
    expect(stop.data.ports?.outputs.map((p) => p.name).sort()).toEqual(['state', 'stop']);
  });

  it('reads and writes when on any card, in a block or not', () => {
    const conditional: PipelineFile = {
      version: 1,
      name: 'when',
      cards: [
        { id: 'model', type: 'model_define', when: { value: 'data.rows', above: 10 } },
        {
          id: 'epochs',
          type: 'loop',
          config: { times: 3 },
          when: { finite: 'model.model' },
          body: { cards: [{ id: 'fwd', type: 'training_forward', when: { every: 2, of: 'epochs', global: true } }] },
        },
      ],
    };
    const doc = fromPipelineFile(conditional, catalogue);
    expect(doc.nodes.find((n) => n.id === 'fwd')!.data.when).toEqual({ every: 2, of: 'epochs', global: true });
    expect(roundTrip(conditional)).toEqual(conditional);
  });

  it('keeps the resources of a card and of a block across a round trip (docs/ray.md)', () => {
    const placed: PipelineFile = {
      version: 1,
      name: 'resources',
      cards: [
        { id: 'model', type: 'model_define', resources: { gpu: 1, memory: 4000000000 } },
        {
          id: 'epochs',
          type: 'loop',
          config: { times: 2 },
          resources: { fake_gpu: 1 },
          body: { cards: [{ id: 'fwd', type: 'training_forward', resources: { cpu: 2 } }] },
        },
      ],
    };
    const doc = fromPipelineFile(placed, catalogue);
    expect(doc.nodes.find((n) => n.id === 'fwd')!.data.resources).toEqual({ cpu: 2 });
    expect(roundTrip(placed)).toEqual(placed);
  });

  it('keeps a block collapsed or expanded, and its frame size, across a round trip', () => {
    const expanded: PipelineFile = {
      version: 1,
      name: 'x',
      cards: [
        {
          id: 'outer',
          type: 'loop',
          ui: { position: { x: 0, y: 0 }, size: { width: 900, height: 500 }, expanded: true },
          body: {
            cards: [
              {
                id: 'inner',
                type: 'loop',
                config: { times: 2 },
                ui: { position: { x: 40, y: 56 }, size: { width: 400, height: 300 } },
                body: { cards: [{ id: 'm', type: 'model_define', ui: { position: { x: 40, y: 56 } } }] },
              },
            ],
          },
        },
      ],
    };
    const doc = fromPipelineFile(expanded, catalogue);
    const byId = Object.fromEntries(doc.nodes.map((n) => [n.id, n]));
    expect(byId.outer.style).toEqual({ width: 900, height: 500 });
    expect(byId.inner.hidden).toBeFalsy();
    expect(byId.inner.style).toEqual({ width: CARD_WIDTH });
    expect(byId.m.hidden).toBe(true);
    expect(toPipelineFile(doc.nodes, doc.edges, doc.order, { name: 'x' })).toEqual(expanded);
  });

  it('refuses, naming both places, a card id used in two scopes', () => {
    const twice: PipelineFile = {
      version: 1,
      cards: [
        { id: 'fwd', type: 'training_forward' },
        { id: 'epochs', type: 'loop', body: { cards: [{ id: 'fwd', type: 'training_forward' }] } },
      ],
    };
    expect(() => fromPipelineFile(twice, catalogue)).toThrow(
      "card id 'fwd' is used in the pipeline and in block 'epochs': the editor needs every card id to be unique",
    );
  });

  it("takes a loop block's ports from the file even when the catalogue declares a loop type", () => {
    const withLoop = new CatalogueIndex({
      ...catalogue.catalogue,
      cards: [
        ...catalogue.catalogue.cards,
        {
          id: 'loop',
          title: 'Loop',
          category: 'control',
          description: '',
          inputs: [port('over', 'any', false)],
          outputs: [],
          config_schema: {},
        },
      ],
    });
    const doc = fromPipelineFile(fixture, withLoop);
    const epochs = doc.nodes.find((n) => n.id === 'epochs')!.data as GroupData;
    expect(epochs.ports?.inputs.map((p) => p.name)).toEqual(['over', 'train', 'val', 'model', 'optimizer']);
    expect(roundTrip(fixture)).toEqual(fixture);
  });

  it('reads a loop card without a body as an empty block', () => {
    const doc = fromPipelineFile({ version: 1, cards: [{ id: 'l', type: 'loop', config: { times: 2 } }] }, catalogue);
    expect(doc.nodes[0].type).toBe('group');
    expect(roundTrip({ version: 1, name: 'p', cards: [{ id: 'l', type: 'loop', config: { times: 2 } }] }).cards[0]).toEqual({
      id: 'l',
      type: 'loop',
      config: { times: 2 },
      body: { cards: [] },
    });
  });
});
