/**
 * What the canvas shows beside the document: each card's place in the script, whether it is configured,
 * whether it changed since the last run, and the server's validation problems. Recomputed when the document's
 * structure changes (not while cards are dragged).
 */
import { api, ApiError } from './api';
import { editor } from './editor';
import { configProblems } from './schema';
import { createStore } from './store';
import { blockProblems, enclosingBlocks, whenProblems, type BlockScope } from './blocks';
import { parseRef, portsOf } from './pipelineFile';
import type { AnyNode, GroupData, GroupNode, LinkEdge, Problem } from './types';
import { runs } from './runs';

export interface Annotations {
  /** Place in the script, 1-based ("3" or, inside a block, "2.1"). */
  index: Record<string, string>;
  /** Why a card is not ready to run; empty when it is. */
  unconfigured: Record<string, string[]>;
  /** Cards whose type, config or inputs changed since the last run started. */
  changed: Record<string, true>;
  /** The server's validation problems, by card. */
  problems: Record<string, Problem[]>;
  /** Problems that name no card. */
  general: Problem[];
  /** The document version the problems were found in. */
  validatedVersion: number;
}

export const annotations = createStore<Annotations>({
  index: {},
  unconfigured: {},
  changed: {},
  problems: {},
  general: [],
  validatedVersion: -1,
});

const NONE: string[] = [];

function indexOf(nodes: readonly AnyNode[], order: readonly string[]): Record<string, string> {
  const index: Record<string, string> = {};
  order.forEach((id, i) => (index[id] = String(i + 1)));
  for (const node of nodes) {
    if (node.type !== 'group') continue;
    const prefix = index[node.id] ?? '?';
    (node.data as GroupData).bodyOrder.forEach((id, i) => (index[id] = `${prefix}.${i + 1}`));
  }
  return index;
}

function incomingByCard(edges: readonly LinkEdge[]): Map<string, LinkEdge[]> {
  const incoming = new Map<string, LinkEdge[]>();
  for (const e of edges) {
    const list = incoming.get(e.target) ?? [];
    list.push(e);
    incoming.set(e.target, list);
  }
  return incoming;
}

/** What the checks of a block's config need: its inputs, and which "card.port" its body's cards offer. */
function blockScope(node: GroupNode, byId: Map<string, AnyNode>): BlockScope {
  const data = node.data as GroupData;
  return {
    inputs: (data.ports?.inputs ?? []).map((p) => p.name),
    bodyOutput: (ref) => {
      const r = parseRef(ref);
      const card = r && data.bodyOrder.includes(r.card) ? byId.get(r.card) : undefined;
      if (!card) return false;
      const outputs = portsOf(card.data, editor.catalogue).outputs;
      return !outputs.length || outputs.some((p) => p.name === r!.port);
    },
  };
}

function unconfiguredOf(nodes: readonly AnyNode[], edges: readonly LinkEdge[]): Record<string, string[]> {
  const incoming = incomingByCard(edges);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const result: Record<string, string[]> = {};
  for (const node of nodes) {
    const reasons: string[] = [];
    const type = editor.catalogue.get(node.data.cardType);
    if (!type && node.type !== 'group') {
      reasons.push(`unknown card type '${node.data.cardType}'`);
    } else {
      const connected = new Set((incoming.get(node.id) ?? []).map((e) => e.targetHandle));
      for (const port of editor.portsOfNode(node).inputs) {
        if (port.required && !connected.has(port.name) && !node.data.brokenInputs?.[port.name]) {
          reasons.push(`input '${port.name}' (${port.kind}) is not connected`);
        }
      }
      for (const [port, ref] of Object.entries(node.data.brokenInputs ?? {})) {
        reasons.push(`input '${port}' uses '${ref}', which is not a card output on the canvas`);
      }
      if (node.type === 'group') reasons.push(...blockProblems(node.data.config, blockScope(node as GroupNode, byId)));
      else if (type) {
        for (const [field, problem] of Object.entries(configProblems(type.config_schema, node.data.config))) {
          reasons.push(`config '${field}': ${problem}`);
        }
      }
    }
    if (node.data.when !== undefined) reasons.push(...whenProblems(node.data.when, enclosingBlocks(node.id, nodes), (id) => byId.has(id)));
    result[node.id] = reasons.length ? reasons : NONE;
  }
  return result;
}

/** A card's type, config and inputs as text: equal texts, equal results. */
export function cardSignatures(nodes: readonly AnyNode[], edges: readonly LinkEdge[]): Record<string, string> {
  const incoming = incomingByCard(edges);
  const sigs: Record<string, string> = {};
  for (const node of nodes) {
    const inputs = (incoming.get(node.id) ?? []).map((e) => `${e.targetHandle}=${e.source}.${e.sourceHandle}`).sort();
    sigs[node.id] = JSON.stringify([node.data.cardType, node.data.config, inputs, node.data.brokenInputs ?? null, node.data.when ?? null]);
  }
  return sigs;
}

function changedOf(nodes: readonly AnyNode[], edges: readonly LinkEdge[], sigs: Record<string, string> | null): Record<string, true> {
  if (!sigs) return {};
  const now = cardSignatures(nodes, edges);
  const changed: Record<string, true> = {};
  for (const [id, sig] of Object.entries(now)) if (sigs[id] !== sig) changed[id] = true;
  return changed;
}

function sameLists(a: Record<string, string[]>, b: Record<string, string[]>): Record<string, string[]> {
  // keep the old arrays where nothing changed, so that cards' selectors see equal values
  const out: Record<string, string[]> = {};
  for (const [id, reasons] of Object.entries(b)) {
    const old = a[id];
    out[id] = old && old.length === reasons.length && old.every((r, i) => r === reasons[i]) ? old : reasons;
  }
  return out;
}

let validationSeq = 0;
let validationTimer = 0;

/** Ask the server what is wrong with the pipeline (debounced); problems land on the cards and form fields. */
export function scheduleValidation(delay = 400): void {
  window.clearTimeout(validationTimer);
  validationTimer = window.setTimeout(validateNow, delay);
}

export async function validateNow(): Promise<Problem[]> {
  const seq = ++validationSeq;
  if (!editor.catalogue.types.size) return [];
  const file = editor.toFile();
  const version = editor.doc.get().version;
  let problems: Problem[];
  try {
    problems = (await api.validate(file)).problems;
  } catch (error) {
    if (error instanceof ApiError && error.problems.length) problems = error.problems;
    else return [];
  }
  if (seq === validationSeq) setProblems(problems, version);
  return problems;
}

export function setProblems(problems: Problem[], version = editor.doc.get().version): void {
  const byCard: Record<string, Problem[]> = {};
  const general: Problem[] = [];
  for (const p of problems) {
    if (p.card) (byCard[p.card] ??= []).push(p);
    else general.push(p);
  }
  annotations.set({ problems: byCard, general, validatedVersion: version });
}

export function startDerivations(): () => void {
  let lastVersion = -1;
  let lastOrder: readonly string[] | null = null;
  let lastSigs: Record<string, string> | null = null;
  const update = () => {
    const doc = editor.doc.get();
    const sigs = runs.get().sigs;
    const structural = doc.version !== lastVersion;
    const patch: Partial<Annotations> = {};
    if (structural || doc.order !== lastOrder) patch.index = indexOf(doc.nodes, doc.order);
    if (structural) patch.unconfigured = sameLists(annotations.get().unconfigured, unconfiguredOf(doc.nodes, doc.edges));
    if (structural || sigs !== lastSigs) patch.changed = changedOf(doc.nodes, doc.edges, sigs);
    if (structural) scheduleValidation();
    lastVersion = doc.version;
    lastOrder = doc.order;
    lastSigs = sigs;
    if (Object.keys(patch).length) annotations.set(patch);
  };
  const offDoc = editor.doc.subscribe(update);
  const offRuns = runs.subscribe(update);
  update();
  return () => {
    offDoc();
    offRuns();
  };
}
