/** What the toolbar, the keyboard and the panels do: open, save, import, export, run, lay out. */
import { api, ApiError } from './api';
import { nodeIdOfPath } from './blocks';
import { cardSignatures, setProblems } from './derive';
import { readDraft, writeDraft } from './draft';
import { editor } from './editor';
import { autoLayout } from './pipelineFile';
import { cancelRun, isActive, runs, startRun } from './runs';
import { toast } from './toasts';
import type { PipelineFile } from './types';
import { ui } from './ui';

export const PIPELINE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** Fit the view as soon as the cards on the canvas have been measured (the canvas watches `fitRequest`). */
export function fitSoon(): void {
  ui.set((s) => ({ fitRequest: s.fitRequest + 1 }));
}

// ------------------------------------------------------------------ unsaved edits

let savedText = '';
let savedTimer = 0;
/** Whether the open pipeline is kept in localStorage as it changes (not for the `?bench` harness). */
let keepDraft = false;

function currentText(): string {
  return JSON.stringify(editor.toFile());
}

function storeDraft(text: string): void {
  if (keepDraft) writeDraft(window.localStorage, text, savedText);
}

export function markSaved(): void {
  savedText = currentText();
  ui.set({ unsaved: false });
  storeDraft(savedText);
}

/**
 * Compare the document with what was last saved or opened a little after each change, and keep it (with
 * `keep`) in localStorage, so that a reload finds it again.
 */
export function trackUnsaved(keep: boolean): () => void {
  keepDraft = keep;
  let lastRevision = editor.doc.get().revision;
  return editor.doc.subscribe(() => {
    const { revision } = editor.doc.get();
    if (revision === lastRevision) return;
    lastRevision = revision;
    window.clearTimeout(savedTimer);
    savedTimer = window.setTimeout(() => {
      const text = currentText();
      ui.set({ unsaved: text !== savedText });
      storeDraft(text);
    }, 150);
  });
}

/** Reopen the pipeline that was open when the page was last left (unsaved edits included); false if none. */
export function restoreDraft(): boolean {
  const draft = readDraft(window.localStorage);
  if (!draft) return false;
  try {
    editor.load(draft.file);
  } catch {
    return false;
  }
  savedText = draft.savedText;
  ui.set({ unsaved: currentText() !== savedText });
  fitSoon();
  return true;
}

/** Keep the draft and ask before the page is left (reload, closed tab) while edits are unsaved. */
export function guardUnload(): () => void {
  const onBeforeUnload = (event: BeforeUnloadEvent) => {
    // the last edit may be younger than the comparison that follows each change: compare and keep it now
    window.clearTimeout(savedTimer);
    const text = currentText();
    storeDraft(text);
    if (text === savedText) return;
    event.preventDefault();
    event.returnValue = ''; // what older browsers need to ask
  };
  window.addEventListener('beforeunload', onBeforeUnload);
  return () => window.removeEventListener('beforeunload', onBeforeUnload);
}

// ------------------------------------------------------------------ opening and saving

function resetRunView(): void {
  if (isActive(runs.get().status)) return;
  runs.set({ cards: {}, sigs: null, loss: [], runId: null, status: 'idle', error: null, total: 0, finished: 0, problems: [], loops: {}, topBlock: {} });
}

/** Put a pipeline file on the canvas (one undoable step) and remember it as the saved state. */
export function openFile(file: PipelineFile, what: string): boolean {
  try {
    editor.load(file, { keepHistory: true });
  } catch (error) {
    toast(`${what} cannot be opened: ${error instanceof Error ? error.message : error}`, 'error');
    return false;
  }
  resetRunView();
  setProblems([]);
  markSaved();
  fitSoon();
  return true;
}

export async function openExample(name: string): Promise<void> {
  try {
    const file = await api.example(name);
    if (openFile(file, `example '${name}'`)) toast(`opened example '${name}' (${file.cards.length} cards)`);
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

export async function openSaved(name: string): Promise<void> {
  try {
    const file = await api.pipeline(name);
    if (openFile({ ...file, name: file.name || name }, `pipeline '${name}'`)) {
      editor.doc.set({ name });
      markSaved();
      toast(`opened '${name}'`);
    }
  } catch (error) {
    toast(errorText(error), 'error');
  }
}

export async function save(): Promise<void> {
  const name = editor.doc.get().name.trim();
  if (!PIPELINE_NAME.test(name)) {
    toast(`'${name}' cannot be a pipeline name: use letters, digits, '_', '-' and '.', starting with a letter or digit`, 'error');
    return;
  }
  try {
    const result = await api.save(name, editor.toFile());
    markSaved();
    ui.set((s) => ({ savedVersion: s.savedVersion + 1 }));
    setProblems(result.problems);
    if (result.problems.length) toast(`saved '${name}'; it has ${result.problems.length} problem(s) to fix before it runs`, 'info');
    else toast(`saved '${name}'`, 'success');
  } catch (error) {
    if (error instanceof ApiError && error.problems.length) setProblems(error.problems);
    toast(`not saved: ${errorText(error)}`, 'error');
  }
}

export function exportFile(): void {
  const file = editor.toFile();
  const blob = new Blob([JSON.stringify(file, null, 2) + '\n'], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = `${file.name || 'pipeline'}.json`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Read a pipeline file (JSON, or YAML through a lazily loaded parser). */
export async function parsePipelineText(text: string, filename = ''): Promise<PipelineFile> {
  const yamlName = /\.ya?ml$/i.test(filename);
  if (!yamlName) {
    try {
      return JSON.parse(text) as PipelineFile;
    } catch (error) {
      if (/\.json$/i.test(filename)) throw new Error(`not valid JSON: ${error instanceof Error ? error.message : error}`);
    }
  }
  const { parse } = await import('yaml');
  return parse(text) as PipelineFile;
}

export async function importFile(file: File): Promise<void> {
  try {
    const parsed = await parsePipelineText(await file.text(), file.name);
    if (openFile(parsed, `'${file.name}'`)) {
      if (!parsed.name) editor.doc.set({ name: file.name.replace(/\.(json|ya?ml)$/i, '') });
      toast(`imported '${file.name}'`);
    }
  } catch (error) {
    toast(`'${file.name}' cannot be imported: ${errorText(error)}`, 'error');
  }
}

// ------------------------------------------------------------------ running

/** A card run alone needs what the cards above it stored; the server says so in this sentence when they did not. */
const CANNOT_RUN_ALONE = /cannot run alone/;

/**
 * Run the pipeline, up to a card (`until`) or just one card (`only`); `persist` overrides the run setting for
 * this run ("run up to here, keeping outputs" keeps every output, so that the card can then run alone).
 */
export function run(options: { until?: string; only?: string; persist?: 'checkpoint' | 'all' } = {}): void {
  const state = editor.doc.get();
  if (!state.order.length) {
    toast('add cards before running', 'info');
    return;
  }
  if (isActive(runs.get().status)) {
    toast('a run is already going; cancel it first', 'info');
    return;
  }
  let queued: string[] = state.order;
  if (options.only) queued = [nodeIdOfPath(options.only)];
  else if (options.until) {
    // a body card (`epochs.batches.fwd`) runs with the cards up to the top-level block that holds it
    const top = options.until.split('.')[0];
    const at = state.order.indexOf(top);
    queued = at >= 0 ? state.order.slice(0, at + 1) : [top];
  }
  // cards in a block's body run with their block (blocks in blocks included)
  const withBodies = new Set(queued);
  const topBlock: Record<string, string> = {};
  const parent = new Map(state.nodes.map((n) => [n.id, n.parentId]));
  for (const node of state.nodes) {
    let top = node.parentId;
    while (top && parent.get(top)) top = parent.get(top);
    if (top && withBodies.has(top)) {
      withBodies.add(node.id);
      topBlock[node.id] = top;
    }
  }
  const { executor, rayAddress, cache } = ui.get();
  const persist = options.persist ?? ui.get().persist;
  ui.set({ runPanel: true });
  startRun({
    file: editor.toFile(),
    executor,
    rayAddress: executor === 'ray' ? rayAddress.trim() : undefined,
    persist,
    cache,
    until: options.until,
    only: options.only,
    queued: [...withBodies],
    topBlock,
    total: queued.length,
    sigs: cardSignatures(state.nodes, state.edges),
  }).catch((error) => {
    const only = options.only;
    if (only && CANNOT_RUN_ALONE.test(errorText(error))) {
      // offer what the sentence suggests, instead of the command-line flags it names
      toast(`card '${only}' cannot run alone yet: the cards above it have not kept the outputs it reads.`, 'error', 15000, {
        label: 'Run up to here, keeping outputs',
        run: () => run({ until: only, persist: 'all' }),
      });
    } else if (error instanceof ApiError && error.problems.length) {
      setProblems(error.problems);
      toast(
        `the pipeline cannot run: ${error.problems[0].message}${error.problems.length > 1 ? ` (and ${error.problems.length - 1} more)` : ''}`,
        'error',
      );
    } else {
      toast(`the run did not start: ${errorText(error)}`, 'error');
    }
  });
}

/** Say when a run succeeds (which also takes away the error messages before it). */
export function announceRuns(): () => void {
  let last = runs.get().status;
  return runs.subscribe(() => {
    const { status, mode } = runs.get();
    if (status === last) return;
    last = status;
    if (status === 'succeeded') toast(`run succeeded${mode === 'all' ? '' : ` (${mode})`}`, 'success');
  });
}

export function cancel(): void {
  void cancelRun();
}

// ------------------------------------------------------------------ layout and clipboard

/** Lay every top-level card out again, a column per layer (one undoable step). */
export function relayout(): void {
  const file = editor.toFile();
  const positions = autoLayout(
    file.cards.map((c) => {
      const node = editor.doc.get().nodes.find((n) => n.id === c.id);
      const size =
        node?.type === 'group'
          ? {
              width: Number(node.measured?.width ?? node.style?.width ?? 400),
              height: Number(node.measured?.height ?? node.style?.height ?? 200),
            }
          : undefined;
      return { id: c.id, type: c.type, config: c.config, inputs: c.inputs, size };
    }),
    editor.catalogue,
  );
  editor.commit(
    (d) => ({ nodes: d.nodes.map((n) => (positions.has(n.id) && !n.parentId ? { ...n, position: positions.get(n.id)! } : n)) }),
    { structural: false },
  );
  fitSoon();
}

// ------------------------------------------------------------------ blocks

/** Wrap the selected cards in a loop block (Ctrl+G), or say why not. */
export function groupSelection(): void {
  const problem = editor.groupSelection();
  if (problem) toast(problem, 'error');
}

/** Put the selected block's body back in its place (Ctrl+Shift+G), or say why not. */
export function ungroupSelection(): void {
  const blocks = editor.doc.get().nodes.filter((n) => n.selected && n.type === 'group');
  if (blocks.length !== 1) {
    toast('select one loop block to ungroup', 'info');
    return;
  }
  const problem = editor.ungroupBlock(blocks[0].id);
  if (problem) toast(problem, 'error');
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
