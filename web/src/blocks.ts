/**
 * Loop blocks and `when` in the editor (docs/blocks.md): a block's ports inside its body, the one-line summary
 * of its loop setting, the local checks of its config and of any card's `when` (the kinds of sentences the
 * server's validation gives), and the iteration paths that run events and previews use
 * (`epochs[3].batches[7].fwd`, static path `epochs.batches.fwd`).
 */
import type { IterationDetail } from './api';
import { parseRef } from './pipelineFile';
import type { AnyNode, CardData, GroupData, PortSpec, WhenCondition } from './types';

/** The block card type. Its ports come from its declaration (inputs, body outputs, carried values). */
export const BLOCK_TYPE = 'loop';

/** The ports of the current item of a block `over` a batch iterator (`training_batch_iterator.batches`). */
export const ITEM_PORTS: readonly PortSpec[] = [
  { name: 'batch_data', kind: 'batch', required: true },
  { name: 'batch_info', kind: 'info', required: true },
  { name: 'is_last', kind: 'scalar', required: true },
];
const ITERATION: PortSpec = { name: 'iteration', kind: 'scalar', required: true };
const LOOP_SETTINGS = ['times', 'max', 'until', 'carry'];
const COMPARISONS = ['equals', 'not_equals', 'above', 'below', 'at_least', 'at_most'];
const PORT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type Config = Record<string, unknown>;
const isMapping = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Whether a block is drawn as its frame with the body inside (`ui.expanded`); collapsed otherwise. */
export function isExpanded(data: CardData): boolean {
  return data.ui?.expanded === true;
}

/** The names of a block's carried values (`config.carry`), in file order. */
export function carryNames(config: Config): string[] {
  return isMapping(config.carry) ? Object.keys(config.carry) : [];
}

/** The ports a block offers only inside its body: `iteration`, each carried value, the items of `over`. */
export function innerPortsOf(data: GroupData): PortSpec[] {
  const ports: PortSpec[] = [ITERATION];
  const inputs = new Set((data.ports?.inputs ?? []).map((p) => p.name));
  for (const name of carryNames(data.config)) if (!inputs.has(name)) ports.push({ name, kind: 'any', required: true });
  if (inputs.has('over')) ports.push(...ITEM_PORTS);
  for (const extra of data.innerExtra ?? []) if (!ports.some((p) => p.name === extra.name)) ports.push(extra);
  return ports;
}

/** A block's output ports: the body's outputs, then each carried value (its value after the last iteration). */
export function blockOutputsOf(data: GroupData): PortSpec[] {
  const outputs = [...(data.ports?.outputs ?? [])];
  for (const name of carryNames(data.config)) {
    if (!outputs.some((p) => p.name === name)) outputs.push({ name, kind: 'any', required: true });
  }
  return outputs;
}

/** The loop setting in a few words: "× 10", "over it.batches", "until stop.stop ≤ 100", "once". */
export function loopSummary(config: Config, over?: string): string {
  const parts: string[] = [];
  if (config.times !== undefined) parts.push(`× ${String(config.times)}`);
  if (over) parts.push(`over ${over}`);
  if (typeof config.until === 'string') {
    const bound = config.max !== undefined && config.times === undefined && !over ? ` ≤ ${String(config.max)}` : '';
    parts.push(`until ${config.until}${bound}`);
  } else if (config.max !== undefined) {
    parts.push(`≤ ${String(config.max)}`);
  }
  return parts.length ? parts.join(' · ') : 'once';
}

/** What a check needs to know about the block: its id, its inputs, and which "card.port" its body offers. */
export interface BlockScope {
  inputs: readonly string[];
  /** Whether "card.port" names an output of a card of the body (at its top level). */
  bodyOutput: (ref: string) => boolean;
}

function wholeAtLeastOne(config: Config, field: string): string | null {
  const value = config[field];
  if (value === undefined) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    return `config '${field}' is ${JSON.stringify(value)}: it must be a whole number of at least 1`;
  }
  return null;
}

function bodyRef(field: string, ref: unknown, scope: BlockScope): string | null {
  if (typeof ref !== 'string' || !parseRef(ref))
    return `config '${field}' is ${JSON.stringify(ref)}: it must name a body card's output as "card.port"`;
  if (!scope.bodyOutput(ref))
    return `config '${field}' uses '${ref}', which is not an output of a card in the block's body`;
  return null;
}

/** Why a block's config is not valid (empty when it is): one sentence per problem, naming the field. */
export function blockProblems(config: Config, scope: BlockScope): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(config)) {
    if (!LOOP_SETTINGS.includes(key))
      problems.push(`config '${key}': a loop block has no such setting; its settings are ${LOOP_SETTINGS.join(', ')}`);
  }
  for (const field of ['times', 'max']) {
    const problem = wholeAtLeastOne(config, field);
    if (problem) problems.push(problem);
  }
  const over = scope.inputs.includes('over');
  if (config.times !== undefined && over)
    problems.push("config 'times': a block runs 'times' times or once per item of its input 'over', not both");
  if (config.until !== undefined) {
    const problem = bodyRef('until', config.until, scope);
    if (problem) problems.push(problem);
    if (config.times === undefined && config.max === undefined && !over) {
      problems.push("config 'until' needs a bound: set 'times' or 'max', or give the block an input 'over'");
    }
  }
  if (config.carry !== undefined) {
    if (!isMapping(config.carry)) {
      problems.push("config 'carry' must map each carried value's name to {init, next}");
    } else {
      for (const [name, spec] of Object.entries(config.carry)) {
        if (!PORT_NAME.test(name))
          problems.push(`config 'carry': '${name}' is not a valid port name (letters, digits, '_')`);
        else if (name === 'iteration' || scope.inputs.includes(name))
          problems.push(`config 'carry': '${name}' is already a port of the block`);
        if (!isMapping(spec) || !('next' in spec)) {
          problems.push(
            `config 'carry.${name}' must be {init, next}: next names the body output it takes in the next iteration`,
          );
          continue;
        }
        const problem = bodyRef(`carry.${name}.next`, spec.next, scope);
        if (problem) problems.push(problem);
      }
    }
  }
  return problems;
}

/** The ids of the blocks around a node, outermost first. */
export function enclosingBlocks(id: string, nodes: readonly AnyNode[]): string[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const chain: string[] = [];
  let parent = byId.get(id)?.parentId;
  while (parent) {
    chain.unshift(parent);
    parent = byId.get(parent)?.parentId;
  }
  return chain;
}

/** Why a `when` is not valid (empty when it is); `loops` are the loop blocks around the card, outermost first. */
export function whenProblems(
  when: WhenCondition,
  loops: readonly string[],
  cardExists: (id: string) => boolean,
): string[] {
  const problems: string[] = [];
  const refProblem = (field: string, ref: unknown) => {
    const r = parseRef(ref);
    if (!r) problems.push(`when '${field}' is ${JSON.stringify(ref)}: it must name an output as "card.port"`);
    else if (!cardExists(r.card)) problems.push(`when '${field}' uses '${ref}', but there is no card '${r.card}'`);
  };
  const check = (c: unknown, where: string) => {
    if (!isMapping(c)) {
      problems.push(`${where} must be a mapping: {every, of}, {finite}, {value, equals}, {all: [...]} or {any: [...]}`);
      return;
    }
    if ('every' in c) {
      const k = c.every;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 1)
        problems.push(`${where} 'every' is ${JSON.stringify(k)}: it must be a whole number of at least 1`);
      if (typeof c.of !== 'string' || !loops.includes(c.of)) {
        const around = loops.length
          ? `the loops around this card are: ${loops.join(', ')}`
          : 'no loop block encloses this card';
        problems.push(
          `${where} 'of' is ${JSON.stringify(c.of ?? null)}: it must name a loop block around the card; ${around}`,
        );
      }
      if (c.global !== undefined && typeof c.global !== 'boolean')
        problems.push(`${where} 'global' must be true or false`);
    } else if ('finite' in c) {
      refProblem('finite', c.finite);
    } else if ('value' in c) {
      refProblem('value', c.value);
      const used = COMPARISONS.filter((k) => k in c);
      if (used.length !== 1) problems.push(`${where} with 'value' needs exactly one of ${COMPARISONS.join(', ')}`);
      for (const k of used.filter((k) => !k.endsWith('equals'))) {
        if (typeof c[k] !== 'number') problems.push(`${where} '${k}' is ${JSON.stringify(c[k])}: it must be a number`);
      }
    } else if ('all' in c || 'any' in c) {
      const key = 'all' in c ? 'all' : 'any';
      const list = c[key];
      if (!Array.isArray(list) || !list.length)
        problems.push(`${where} '${key}' must be a non-empty list of conditions`);
      else list.forEach((inner, i) => check(inner, `when ${key}[${i}]`));
    } else {
      problems.push(`${where} must have one of: every (with of), finite, value, all, any`);
    }
  };
  check(when, 'when');
  return problems;
}

/** A `when` in a few words, for the card: "every 5 of epochs", "finite loss.loss_value", "val.mse < 1". */
export function whenSummary(when: WhenCondition): string {
  if ('every' in when) return `every ${String(when.every)} of ${String(when.of)}${when.global ? ' (global)' : ''}`;
  if ('finite' in when) return `finite ${String(when.finite)}`;
  if ('value' in when) {
    const symbol: Record<string, string> = {
      equals: '=',
      not_equals: '≠',
      above: '>',
      below: '<',
      at_least: '≥',
      at_most: '≤',
    };
    const k = COMPARISONS.find((c) => c in when);
    return k ? `${String(when.value)} ${symbol[k]} ${JSON.stringify(when[k])}` : String(when.value);
  }
  if (Array.isArray(when.all)) return when.all.map((c) => (isMapping(c) ? whenSummary(c) : '?')).join(' and ');
  if (Array.isArray(when.any)) return when.any.map((c) => (isMapping(c) ? whenSummary(c) : '?')).join(' or ');
  return '?';
}

/** A card's data with every reference to card `from` in its loop config and `when` renamed to `to`. */
export function renamedRefs<T extends CardData>(data: T, from: string, to: string): T {
  const ref = (v: unknown) => (typeof v === 'string' && parseRef(v)?.card === from ? `${to}.${parseRef(v)!.port}` : v);
  const cond = (c: unknown): unknown => {
    if (!isMapping(c)) return c;
    const next: Record<string, unknown> = { ...c };
    if ('finite' in c) next.finite = ref(c.finite);
    if ('value' in c) next.value = ref(c.value);
    if (c.of === from) next.of = to;
    if (Array.isArray(c.all)) next.all = c.all.map(cond);
    if (Array.isArray(c.any)) next.any = c.any.map(cond);
    return next;
  };
  const config = { ...data.config };
  if ('until' in config) config.until = ref(config.until);
  if (isMapping(config.carry)) {
    config.carry = Object.fromEntries(
      Object.entries(config.carry).map(([k, v]) => [k, isMapping(v) ? { ...v, next: ref(v.next) } : v]),
    );
  }
  const next = { ...data, config };
  if (data.when !== undefined) next.when = cond(data.when) as WhenCondition;
  return JSON.stringify(next) === JSON.stringify(data) ? data : next;
}

// ------------------------------------------------------------------ paths and progress

/** `epochs[3].batches[7].fwd` -> `epochs.batches.fwd`: the card in every iteration. */
export function staticPath(path: string): string {
  return path.replace(/\[[^\]]*\]/g, '');
}

/** The canvas node a run event's card path names (card ids are unique across the editor's scopes). */
export function nodeIdOfPath(path: string): string {
  const parts = staticPath(path).split('.');
  return parts[parts.length - 1];
}

/** Whether a run event names a top-level card (counted in the run's progress) rather than a body card. */
export function isTopLevelPath(path: string): boolean {
  return !path.includes('.') && !path.includes('[');
}

/**
 * The full iteration path of a node for the chosen iterations (0-based, per block; 0 when none is chosen):
 * `fwd` inside `batches` inside `epochs` -> `epochs[3].batches[7].fwd`.
 */
export function iterationPath(id: string, nodes: readonly AnyNode[], chosen: Readonly<Record<string, number>>): string {
  return [...enclosingBlocks(id, nodes).map((b) => `${b}[${chosen[b] ?? 0}]`), id].join('.');
}

/** One loop level of a block's progress event: `index` is 0-based (as in paths), `total` null when unknown. */
export interface IterationLevel {
  block: string;
  index: number;
  total: number | null;
}

/** The word for one iteration of a block: its id in the singular ("epochs" -> "epoch", "batches" -> "batch"). */
export function loopWord(block: string): string {
  if (/(ch|sh|x|ss)es$/.test(block)) return block.slice(0, -2);
  if (/[^s]s$/.test(block)) return block.slice(0, -1);
  return block;
}

function metricText(name: string, value: number | string): string {
  const n = Number(value);
  const shown = Number.isFinite(n) ? String(Number(n.toPrecision(3))) : String(value);
  return `${name === 'loss_value' ? 'loss' : name} ${shown}`;
}

/** "epoch 3/10 · batch 17/45 · loss 0.41": where a running block is, counted from 1 for people. */
export function iterationsText(
  levels: readonly IterationLevel[],
  metrics: Record<string, number | string> = {},
): string {
  const parts = levels.map((l) => `${loopWord(l.block)} ${l.index + 1}/${l.total ?? '?'}`);
  for (const [name, value] of Object.entries(metrics)) parts.push(metricText(name, value));
  return parts.join(' · ');
}

/** What the side panel says instead of an iteration's previews: it was skipped, or the run did not store it. */
export function iterationNote(view: Pick<IterationDetail, 'path' | 'status' | 'outputs'>): string | null {
  if (view.status === 'skipped')
    return `${view.path}: skipped in this iteration (its when did not hold, or it used a skipped value): no outputs`;
  if (!view.outputs)
    return `${view.path}: not stored for this iteration under the persist policy (run with persist "all" to keep every iteration's outputs)`;
  return null;
}
