import { beforeEach, describe, expect, it } from 'vitest';
import { CatalogueIndex } from './catalogue';
import { Editor } from './editor';
import type { Catalogue } from './types';

const port = (name: string, kind: string, required = true) => ({ name, kind, required });
const catalogue: Catalogue = {
  kinds: {},
  cards: [
    { id: 'data_load', title: 'Load', category: 'data', description: '', inputs: [], outputs: [port('dataset', 'dataframe')], config_schema: {} },
    { id: 'model_define', title: 'Model', category: 'model', description: '', inputs: [], outputs: [port('model', 'model')], config_schema: {} },
    { id: 'training_init_optimizer', title: 'Opt', category: 'training', description: '', inputs: [port('model', 'model')], outputs: [port('optimizer', 'optimizer')], config_schema: {} },
    { id: 'model_clone', title: 'Clone', category: 'model', description: '', inputs: [port('model', 'model')], outputs: [port('model', 'model')], config_schema: {} },
    { id: 'inspect', title: 'Inspect', category: 'debug', description: '', inputs: [port('value', 'any')], outputs: [], config_schema: {} },
  ],
};

let editor: Editor;
const ids = () => editor.doc.get().order.join(' ');
const at = { x: 0, y: 0 };

beforeEach(() => {
  editor = new Editor();
  editor.catalogue = new CatalogueIndex(catalogue);
});

describe('links', () => {
  it('refuses a link between different kinds, saying why', () => {
    const d = editor.addCard('data_load', at)!;
    const o = editor.addCard('training_init_optimizer', at)!;
    expect(editor.connect({ source: d, sourceHandle: 'dataset', target: o, targetHandle: 'model' })).toBe(
      "input 'model' takes kind model, not dataframe",
    );
    expect(editor.doc.get().edges).toEqual([]);
  });

  it('accepts any kind into an input of kind any', () => {
    const d = editor.addCard('data_load', at)!;
    const i = editor.addCard('inspect', at)!;
    expect(editor.connect({ source: d, sourceHandle: 'dataset', target: i, targetHandle: 'value' })).toBeNull();
  });

  it('moves the user card down after its new source', () => {
    const o = editor.addCard('training_init_optimizer', at)!;
    const d = editor.addCard('data_load', at)!;
    const m = editor.addCard('model_define', at)!;
    expect(ids()).toBe(`${o} ${d} ${m}`);
    expect(editor.connect({ source: m, sourceHandle: 'model', target: o, targetHandle: 'model' })).toBeNull();
    expect(ids()).toBe(`${d} ${m} ${o}`);
  });

  it('refuses a link that would make a loop', () => {
    const a = editor.addCard('model_clone', at)!;
    const b = editor.addCard('model_clone', at)!;
    expect(editor.connect({ source: a, sourceHandle: 'model', target: b, targetHandle: 'model' })).toBeNull();
    expect(editor.connect({ source: b, sourceHandle: 'model', target: a, targetHandle: 'model' })).toMatch(/would make a loop/);
    expect(editor.connect({ source: a, sourceHandle: 'model', target: a, targetHandle: 'model' })).toMatch(/its own output/);
  });

  it('replaces the link an input had', () => {
    const m1 = editor.addCard('model_define', at)!;
    const m2 = editor.addCard('model_define', at)!;
    const o = editor.addCard('training_init_optimizer', at)!;
    editor.connect({ source: m1, sourceHandle: 'model', target: o, targetHandle: 'model' });
    editor.connect({ source: m2, sourceHandle: 'model', target: o, targetHandle: 'model' });
    expect(editor.doc.get().edges.map((e) => e.source)).toEqual([m2]);
  });
});

describe('history', () => {
  it('undoes and redoes one step per action', () => {
    editor.addCard('model_define', at);
    editor.addCard('training_init_optimizer', at);
    expect(editor.doc.get().nodes.length).toBe(2);
    editor.undo();
    expect(editor.doc.get().nodes.length).toBe(1);
    editor.redo();
    expect(editor.doc.get().nodes.length).toBe(2);
    expect(editor.history.get()).toEqual({ canUndo: true, canRedo: false });
  });

  it('makes a drag of several cards one step', () => {
    const a = editor.addCard('model_define', at)!;
    const b = editor.addCard('data_load', at)!;
    const before = editor.doc.get().nodes.map((n) => n.position);
    for (let i = 1; i <= 5; i++) {
      editor.onNodesChange([
        { type: 'position', id: a, position: { x: i * 10, y: 0 }, dragging: true },
        { type: 'position', id: b, position: { x: i * 10, y: 5 }, dragging: true },
      ]);
    }
    editor.onNodesChange([{ type: 'position', id: a, position: { x: 60, y: 0 }, dragging: false }, { type: 'position', id: b, position: { x: 60, y: 5 }, dragging: false }]);
    expect(editor.doc.get().nodes.map((n) => n.position.x)).toEqual([60, 60]);
    editor.undo();
    expect(editor.doc.get().nodes.map((n) => n.position)).toEqual(before);
    expect(editor.doc.get().nodes.length).toBe(2);
  });

  it('makes a paste and a delete of a selection one step each', () => {
    const m = editor.addCard('model_define', at)!;
    const o = editor.addCard('training_init_optimizer', at)!;
    editor.connect({ source: m, sourceHandle: 'model', target: o, targetHandle: 'model' });
    editor.selectAll();
    expect(editor.copy()).toBe(2);
    expect(editor.paste()).toBe(2);
    const d = editor.doc.get();
    expect(d.nodes.length).toBe(4);
    expect(d.edges.length).toBe(2);
    expect(d.order).toEqual([m, o, 'model_define2', 'init_optimizer2']);
    expect(d.nodes.filter((n) => n.selected).map((n) => n.id)).toEqual(['model_define2', 'init_optimizer2']);
    editor.deleteSelection();
    expect(editor.doc.get().nodes.length).toBe(2);
    editor.undo();
    expect(editor.doc.get().nodes.length).toBe(4);
    editor.undo();
    expect(editor.doc.get().nodes.length).toBe(2);
  });

  it('merges typing in one config field into one step', () => {
    const m = editor.addCard('model_define', at)!;
    editor.setConfig(m, 'input_dim', 1);
    editor.setConfig(m, 'input_dim', 10);
    editor.setConfig(m, 'input_dim', 100);
    editor.undo();
    expect(editor.doc.get().nodes[0].data.config).toEqual({});
  });

  it('keeps links from cards outside a pasted selection, and renames references', () => {
    const m = editor.addCard('model_define', at)!;
    const o = editor.addCard('training_init_optimizer', at)!;
    editor.connect({ source: m, sourceHandle: 'model', target: o, targetHandle: 'model' });
    editor.selectOnly([o]);
    expect(editor.duplicate()).toBe(1);
    expect(editor.doc.get().edges.map((e) => `${e.source}->${e.target}`)).toEqual([`${m}->${o}`, `${m}->init_optimizer2`]);
    expect(editor.renameCard(m, 'net')).toBeNull();
    expect(editor.toFile().cards.map((c) => c.inputs)).toEqual([undefined, { model: 'net.model' }, { model: 'net.model' }]);
    expect(editor.renameCard('net', '9bad')).toMatch(/not a valid card id/);
  });
});
