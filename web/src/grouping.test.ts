import { beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CatalogueIndex } from './catalogue';
import { Editor } from './editor';
import fixtureText from './fixtures/training_loop_blocks.yaml?raw';
import { withoutUi } from './pipelineFile';
import type { Catalogue, GroupData, PipelineFile } from './types';

const port = (name: string, kind: string, required = true) => ({ name, kind, required });
const catalogue: Catalogue = {
  kinds: {},
  cards: [
    {
      id: 'data_load',
      title: 'Load',
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
      id: 'training_forward',
      title: 'Forward',
      category: 'training',
      description: '',
      inputs: [port('model', 'model'), port('batch_data', 'batch')],
      outputs: [port('predictions', 'tensor'), port('model', 'model')],
      config_schema: {},
    },
    {
      id: 'evaluate',
      title: 'Evaluate',
      category: 'evaluation',
      description: '',
      inputs: [port('model', 'model'), port('dataset', 'dataframe')],
      outputs: [port('mse', 'scalar')],
      config_schema: {},
    },
  ],
};

const flat: PipelineFile = {
  version: 1,
  name: 'flat',
  cards: [
    { id: 'data', type: 'data_load' },
    { id: 'model', type: 'model_define' },
    { id: 'fwd', type: 'training_forward', inputs: { model: 'model.model' } },
    { id: 'opt', type: 'training_init_optimizer', inputs: { model: 'fwd.model' } },
    { id: 'eval', type: 'evaluate', inputs: { model: 'fwd.model', dataset: 'data.dataset' } },
  ],
};

let editor: Editor;
const file = () => withoutUi(editor.toFile());

beforeEach(() => {
  editor = new Editor();
  editor.catalogue = new CatalogueIndex(catalogue);
});

describe('group into loop', () => {
  it('wraps the selected cards in a loop block: links in become block inputs, links out become block outputs', () => {
    editor.load(flat);
    editor.selectOnly(['fwd', 'opt']);
    expect(editor.groupSelection()).toBeNull();
    expect(file().cards).toEqual([
      { id: 'data', type: 'data_load' },
      { id: 'model', type: 'model_define' },
      {
        id: 'loop',
        type: 'loop',
        inputs: { model: 'model.model' },
        body: {
          cards: [
            { id: 'fwd', type: 'training_forward', inputs: { model: 'loop.model' } },
            { id: 'opt', type: 'training_init_optimizer', inputs: { model: 'fwd.model' } },
          ],
          outputs: { model: 'fwd.model' },
        },
      },
      { id: 'eval', type: 'evaluate', inputs: { model: 'loop.model', dataset: 'data.dataset' } },
    ]);
    expect(editor.selectedIds()).toEqual(['loop']);
  });

  it('refuses, saying why, when a card between the selected ones is used by them and would end up below the block', () => {
    editor.load(flat);
    editor.selectOnly(['data', 'eval']);
    expect(editor.groupSelection()).toBe(
      "cannot group these cards: 'eval' uses 'fwd', which stands between the selected cards in the script; select 'fwd' too, or move it above 'data'",
    );
    expect(file()).toEqual(withoutUi(flat as PipelineFile));
  });

  it('groups cards inside a block into a block nested in it, and undo takes it back in one step', () => {
    editor.load(parse(fixtureText) as PipelineFile);
    const before = file();
    editor.selectOnly(['eval', 'stop']);
    expect(editor.groupSelection()).toBeNull();
    const epochs = file().cards.find((c) => c.id === 'epochs')!;
    expect(epochs.body!.cards.map((c) => c.id)).toEqual(['it', 'batches', 'loop']);
    const inner = epochs.body!.cards[2];
    expect(inner.inputs).toEqual({ model: 'batches.model', val: 'epochs.val', es: 'epochs.es' });
    expect(inner.body!.cards.map((c) => [c.id, c.inputs])).toEqual([
      ['eval', { model: 'loop.model', dataset: 'loop.val' }],
      ['stop', { metric: 'eval.mse', state: 'loop.es' }],
    ]);
    expect(inner.body!.outputs).toEqual({ mse: 'eval.mse' });
    expect(epochs.body!.outputs).toEqual({
      model: 'batches.model',
      optimizer: 'batches.optimizer',
      loss: 'batches.loss',
      val_mse: 'loop.mse',
    });
    editor.undo();
    expect(file()).toEqual(before);
  });

  it("feeds a new block inside a loop from that loop's item ports, and sends its results to the loop's outputs", () => {
    editor.load(parse(fixtureText) as PipelineFile);
    editor.selectOnly(['fwd', 'loss']);
    expect(editor.groupSelection()).toBeNull();
    const batches = file()
      .cards.find((c) => c.id === 'epochs')!
      .body!.cards.find((c) => c.id === 'batches')!;
    expect(batches.body!.cards.map((c) => c.id)).toEqual(['zero', 'loop', 'back', 'step']);
    const inner = batches.body!.cards[1];
    expect(inner.inputs).toEqual({ model: 'batches.model', batch_data: 'batches.batch_data' });
    expect(inner.body!.outputs).toEqual({ model: 'fwd.model', loss: 'loss.loss', loss_value: 'loss.loss_value' });
    expect(batches.body!.outputs).toEqual({
      model: 'step.model',
      optimizer: 'step.optimizer',
      loss: 'loop.loss_value',
    });
    expect(batches.body!.cards[2].inputs).toEqual({ loss: 'loop.loss', model: 'loop.model' });
  });

  it('refuses cards of different scripts', () => {
    editor.load(parse(fixtureText) as PipelineFile);
    editor.selectOnly(['model', 'eval']);
    expect(editor.groupSelection()).toMatch(/different scripts/);
  });
});

describe('ungroup', () => {
  it("puts the body back in the block's place, linking what fed and used the block straight to the body cards", () => {
    editor.load(flat);
    editor.selectOnly(['fwd', 'opt']);
    editor.groupSelection();
    expect(editor.ungroupBlock('loop')).toBeNull();
    expect(file()).toEqual(withoutUi(flat));
    expect(editor.doc.get().nodes.every((n) => !n.parentId && !n.hidden)).toBe(true);
  });

  it('shows the cards of a collapsed block again', () => {
    editor.load(flat);
    editor.selectOnly(['fwd', 'opt']);
    editor.groupSelection();
    editor.setExpanded('loop', false);
    expect(
      editor.doc
        .get()
        .nodes.filter((n) => n.hidden)
        .map((n) => n.id),
    ).toEqual(['fwd', 'opt']);
    expect(editor.ungroupBlock('loop')).toBeNull();
    expect(editor.doc.get().nodes.filter((n) => n.hidden)).toEqual([]);
  });

  it('refuses a block whose body uses a port that exists only inside the loop', () => {
    editor.load(parse(fixtureText) as PipelineFile);
    expect(editor.ungroupBlock('batches')).toBe(
      "cannot ungroup 'batches': card 'fwd' uses 'batches.batch_data', which exists only inside the loop",
    );
  });
});

describe('expand and collapse', () => {
  it('shows the body when expanded and hides it when collapsed, kept in ui.expanded', () => {
    editor.load(parse(fixtureText) as PipelineFile);
    const node = (id: string) => editor.doc.get().nodes.find((n) => n.id === id)!;
    expect(node('it').hidden).toBe(true);
    editor.setExpanded('epochs', true);
    expect(node('it').hidden).toBe(false);
    expect(node('fwd').hidden).toBe(true);
    expect(editor.toFile().cards.find((c) => c.id === 'epochs')!.ui?.expanded).toBe(true);
    // the cards beside the block move clear of its frame
    const epochs = node('epochs');
    const frame = (epochs.data as GroupData).frame!;
    const clear = (id: string) => {
      const n = node(id);
      const right = n.position.x >= epochs.position.x + frame.width || n.position.x + 240 <= epochs.position.x;
      const below = n.position.y >= epochs.position.y + frame.height || n.position.y + 60 <= epochs.position.y;
      return right || below;
    };
    expect(['data', 'split', 'normalize', 'model', 'opt', 'evaluate'].filter((id) => !clear(id))).toEqual([]);
    editor.setExpanded('epochs', false);
    expect(node('it').hidden).toBe(true);
    expect(editor.toFile().cards.find((c) => c.id === 'epochs')!.ui?.expanded).toBeUndefined();
  });
});

describe('expanding a block beside other cards', () => {
  it('moves the cards its frame would cover to the right of it, keeping the rest of the band in place', () => {
    editor.load({
      version: 1,
      cards: [
        { id: 'model', type: 'model_define', ui: { position: { x: -400, y: 0 } } },
        {
          id: 'l',
          type: 'loop',
          inputs: { model: 'model.model' },
          ui: { position: { x: 0, y: 0 }, size: { width: 600, height: 300 } },
          body: {
            cards: [
              { id: 'fwd', type: 'training_forward', inputs: { model: 'l.model' }, ui: { position: { x: 40, y: 56 } } },
            ],
          },
        },
        {
          id: 'after',
          type: 'training_init_optimizer',
          inputs: { model: 'model.model' },
          ui: { position: { x: 320, y: 20 } },
        },
        { id: 'below', type: 'data_load', ui: { position: { x: 320, y: 600 } } },
      ],
    });
    editor.setExpanded('l', true);
    const at = (id: string) => editor.doc.get().nodes.find((n) => n.id === id)!.position;
    expect(at('after')).toEqual({ x: 680, y: 20 });
    expect(at('below')).toEqual({ x: 320, y: 600 });
    expect(at('model')).toEqual({ x: -400, y: 0 });
  });
});

describe('expanding a block inside an expanded block', () => {
  it('grows the outer frame to hold every card of its body, none covering another', () => {
    editor.load(parse(fixtureText) as PipelineFile);
    editor.setExpanded('epochs', true);
    editor.setExpanded('batches', true);
    const nodes = editor.doc.get().nodes;
    const epochs = nodes.find((n) => n.id === 'epochs')!;
    const frame = (epochs.data as GroupData).frame!;
    expect(epochs.style).toEqual({ width: frame.width, height: frame.height });
    const body = nodes.filter((n) => n.parentId === 'epochs');
    const box = (n: (typeof nodes)[number]) => {
      const f = n.type === 'group' ? (n.data as GroupData).frame! : { width: 240, height: 100 };
      return { x: n.position.x, y: n.position.y, r: n.position.x + f.width, b: n.position.y + f.height };
    };
    for (const n of body) {
      expect(box(n).r).toBeLessThanOrEqual(frame.width);
      expect(box(n).b).toBeLessThanOrEqual(frame.height);
    }
    const batches = box(nodes.find((n) => n.id === 'batches')!);
    for (const id of ['it', 'eval', 'stop']) {
      const other = box(nodes.find((n) => n.id === id)!);
      const apart = other.x >= batches.r || other.r <= batches.x || other.y >= batches.b || other.b <= batches.y;
      expect(apart, id).toBe(true);
    }
  });
});

describe('renaming a body card', () => {
  it('renames the loop config and when references to it', () => {
    editor.load(parse(fixtureText) as PipelineFile);
    expect(editor.renameCard('stop', 'early')).toBeNull();
    const epochs = file().cards.find((c) => c.id === 'epochs')!;
    expect(epochs.config).toEqual({
      times: 10,
      until: 'early.stop',
      carry: { es: { init: null, next: 'early.state' } },
    });
  });
});

describe('a loop block added from the palette', () => {
  it('is an empty collapsed block at the end of the script', () => {
    editor.load(flat);
    const id = editor.addCard('loop', { x: 0, y: 0 });
    expect(id).toBe('loop');
    expect(file().cards.at(-1)).toEqual({ id: 'loop', type: 'loop', body: { cards: [] } });
    expect(editor.addBlockInput('loop', 'train')).toBeNull();
    expect(editor.addBlockInput('loop', 'train')).toBe("block 'loop' already has a port 'train'");
    expect(editor.addBlockInput('loop', 'iteration')).toBe("block 'loop' already has a port 'iteration'");
  });
});
