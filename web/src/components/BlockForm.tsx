/**
 * The side panel's forms for loop blocks and conditions: a block's loop setting (times, max, until, carried
 * values, inputs), any card's `when`, and after a run the iteration whose body-card previews are shown.
 * Problems are checked here as the server checks them (blocks.ts) and listed under the form.
 */
import { useEffect, useState } from 'react';
import { ungroupSelection } from '../actions';
import { carryNames, enclosingBlocks, isExpanded, loopWord, whenProblems } from '../blocks';
import { editor } from '../editor';
import { portsOf } from '../pipelineFile';
import { runs } from '../runs';
import { useStore } from '../store';
import { toast } from '../toasts';
import type { GroupData, WhenCondition } from '../types';
import { ui } from '../ui';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

/** A number when the text is a whole number, nothing when empty, else the text (which the checks then name). */
function wholeOrText(text: string): unknown {
  const t = text.trim();
  if (!t) return undefined;
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

/** JSON when the text is JSON (null, 3, "a", [1]), else the text itself. */
function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const show = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

/** A text field that shows `value` and hands each edit to `onChange` parsed; an outside change shows again. */
function TextField({
  value,
  parse,
  onChange,
  testid,
  placeholder,
}: {
  value: unknown;
  parse: (t: string) => unknown;
  onChange: (v: unknown) => void;
  testid: string;
  placeholder?: string;
}) {
  const [text, setText] = useState(show(value));
  useEffect(
    () => setText((t) => (JSON.stringify(parse(t)) === JSON.stringify(value) ? t : show(value))),
    [value, parse],
  );
  return (
    <input
      type="text"
      value={text}
      placeholder={placeholder}
      onChange={(e) => {
        setText(e.target.value);
        onChange(parse(e.target.value));
      }}
      data-testid={testid}
      spellCheck={false}
      autoComplete="off"
    />
  );
}

/** "card.port" of every output of the body's cards (what `until` and `carry.next` may name). */
function useBodyOutputs(id: string): string[] {
  const text = useStore(editor.doc, (s) => {
    const block = s.nodes.find((n) => n.id === id);
    if (!block || block.type !== 'group') return '';
    const refs: string[] = [];
    for (const child of (block.data as GroupData).bodyOrder) {
      const node = s.nodes.find((n) => n.id === child);
      if (node) for (const p of portsOf(node.data, editor.catalogue).outputs) refs.push(`${child}.${p.name}`);
    }
    return refs.join('\n');
  });
  return text ? text.split('\n') : [];
}

function RefSelect({
  value,
  options,
  onChange,
  testid,
}: {
  value: unknown;
  options: string[];
  onChange: (v: string | undefined) => void;
  testid: string;
}) {
  const current = typeof value === 'string' ? value : '';
  return (
    <select value={current} onChange={(e) => onChange(e.target.value || undefined)} data-testid={testid}>
      <option value="">(none)</option>
      {options.map((o) => (
        <option key={o} value={o}>
          {o}
        </option>
      ))}
      {current && !options.includes(current) && <option value={current}>{current} (not a body output)</option>}
    </select>
  );
}

function Field({ label, hint, children }: { label: string; hint?: string; children: React.ReactNode }) {
  return (
    <div className="field">
      <div className="field-head">
        <label>{label}</label>
        {hint && <span className="field-type">{hint}</span>}
      </div>
      {children}
    </div>
  );
}

/** A block's loop setting: times, max, until, carried values; its inputs; ungroup and expand. */
export function BlockConfig({ id, data }: { id: string; data: GroupData }) {
  const outputs = useBodyOutputs(id);
  const [carryName, setCarryName] = useState('');
  const [inputName, setInputName] = useState('');
  const config = data.config;
  const carry = isObj(config.carry) ? config.carry : {};
  const set = (field: string, value: unknown) => editor.setConfig(id, field, value);
  const setCarry = (next: Obj) => set('carry', Object.keys(next).length ? next : undefined);
  const addCarry = () => {
    const name = carryName.trim();
    if (!name) return;
    if (name in carry) {
      toast(`block '${id}' already carries '${name}'`, 'error');
      return;
    }
    setCarry({ ...carry, [name]: { init: null, next: outputs[0] ?? '' } });
    setCarryName('');
  };
  const addInput = () => {
    const problem = editor.addBlockInput(id, inputName.trim());
    if (problem) toast(problem, 'error');
    else setInputName('');
  };
  return (
    <form
      className="config-form block-form"
      onSubmit={(e) => e.preventDefault()}
      autoComplete="off"
      data-testid="block-form"
    >
      <Field label="times" hint="whole number ≥ 1: run the body this many times">
        <TextField
          value={config.times}
          parse={wholeOrText}
          onChange={(v) => set('times', v)}
          testid="block-times"
          placeholder="once (or once per item of 'over')"
        />
      </Field>
      <Field label="until" hint="a body output: stop after the iteration in which it is true">
        <RefSelect value={config.until} options={outputs} onChange={(v) => set('until', v)} testid="block-until" />
      </Field>
      <Field label="max" hint="whole number ≥ 1: bounds 'until' when no 'times' or 'over' does">
        <TextField value={config.max} parse={wholeOrText} onChange={(v) => set('max', v)} testid="block-max" />
      </Field>
      <Field label="carry" hint="values handed from one iteration to the next">
        {carryNames(config).map((name) => {
          const spec = isObj(carry[name]) ? (carry[name] as Obj) : {};
          return (
            <div className="carry-row" key={name} data-testid={`carry-${name}`}>
              <b>{name}</b>
              <span className="muted small">init</span>
              <TextField
                value={spec.init}
                parse={jsonOrText}
                onChange={(v) => setCarry({ ...carry, [name]: { ...spec, init: v } })}
                testid={`carry-${name}-init`}
                placeholder="null"
              />
              <span className="muted small">next</span>
              <RefSelect
                value={spec.next}
                options={outputs}
                onChange={(v) => setCarry({ ...carry, [name]: { ...spec, next: v ?? '' } })}
                testid={`carry-${name}-next`}
              />
              <button
                className="link-button"
                onClick={() => {
                  const { [name]: _gone, ...rest } = carry;
                  setCarry(rest);
                }}
              >
                remove
              </button>
            </div>
          );
        })}
        <div className="row">
          <input
            type="text"
            value={carryName}
            placeholder="name"
            onChange={(e) => setCarryName(e.target.value)}
            data-testid="carry-name"
          />
          <button onClick={addCarry} data-testid="carry-add">
            add carried value
          </button>
        </div>
      </Field>
      <Field label="inputs" hint="link into them from above the block; inside, use them as <block>.<port>">
        <div className="muted small">{(data.ports?.inputs ?? []).map((p) => p.name).join(', ') || 'none'}</div>
        <div className="row">
          <input
            type="text"
            value={inputName}
            placeholder="port name"
            onChange={(e) => setInputName(e.target.value)}
            data-testid="block-input-name"
          />
          <button onClick={addInput} data-testid="block-input-add">
            add input
          </button>
        </div>
      </Field>
      <div className="row actions">
        <button onClick={() => editor.setExpanded(id, !isExpanded(data))} data-testid="block-expand">
          {isExpanded(data) ? 'Collapse' : 'Expand'}
        </button>
        <button
          onClick={ungroupSelection}
          data-testid="block-ungroup"
          title="put the body's cards back in the block's place"
        >
          Ungroup
        </button>
      </div>
    </form>
  );
}

type WhenMode = 'none' | 'every' | 'finite' | 'value' | 'custom';
const COMPARE: [string, string][] = [
  ['equals', '='],
  ['not_equals', '≠'],
  ['above', '>'],
  ['below', '<'],
  ['at_least', '≥'],
  ['at_most', '≤'],
];

function modeOf(when: WhenCondition | undefined): WhenMode {
  if (!when) return 'none';
  if ('every' in when) return 'every';
  if ('finite' in when) return 'finite';
  if ('value' in when) return 'value';
  return 'custom';
}

/** Any card's `when`: every k of a loop around it (or globally), a finite output, an output compared with x. */
export function WhenForm({ id, when }: { id: string; when: WhenCondition | undefined }) {
  const loops = useStore(editor.doc, (s) => enclosingBlocks(id, s.nodes).join('\n'));
  const loopIds = loops ? loops.split('\n') : [];
  const problems = useStore(editor.doc, (s) =>
    when ? whenProblems(when, loopIds, (c) => s.nodes.some((n) => n.id === c)).join('\n') : '',
  );
  const mode = modeOf(when);
  const set = (next: WhenCondition | undefined) => editor.setWhen(id, next);
  const start = (m: WhenMode) => {
    if (m === 'none') set(undefined);
    else if (m === 'every') set({ every: 1, of: loopIds[loopIds.length - 1] ?? '' });
    else if (m === 'finite') set({ finite: '' });
    else if (m === 'value') set({ value: '', equals: 0 });
    else set({ all: [when ?? { finite: '' }] });
  };
  const compare = when ? (COMPARE.find(([k]) => k in when)?.[0] ?? 'equals') : 'equals';
  return (
    <div className="config-form when-form" data-testid="when-form">
      <Field label="run only when" hint="otherwise the card is skipped">
        <select value={mode} onChange={(e) => start(e.target.value as WhenMode)} data-testid="when-mode">
          <option value="none">always</option>
          <option value="every">every k iterations of a loop</option>
          <option value="finite">an output is finite</option>
          <option value="value">an output compares with a value</option>
          <option value="custom">all or any of several conditions (as JSON)</option>
        </select>
      </Field>
      {mode === 'every' && when && (
        <div className="row">
          <span className="small">every</span>
          <TextField
            value={when.every}
            parse={wholeOrText}
            onChange={(v) => set({ ...when, every: v })}
            testid="when-every"
          />
          <span className="small">of</span>
          <select
            value={String(when.of ?? '')}
            onChange={(e) => set({ ...when, of: e.target.value })}
            data-testid="when-of"
          >
            {!loopIds.includes(String(when.of ?? '')) && (
              <option value={String(when.of ?? '')}>{String(when.of ?? '') || '(no loop around)'}</option>
            )}
            {loopIds.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
          <label
            className="checkbox small"
            title="count that loop's iterations over the whole run, not from each time it starts"
          >
            <input
              type="checkbox"
              checked={when.global === true}
              onChange={(e) => {
                const { global: _g, ...rest } = when;
                set(e.target.checked ? { ...rest, global: true } : rest);
              }}
              data-testid="when-global"
            />
            global
          </label>
        </div>
      )}
      {mode === 'finite' && when && (
        <TextField
          value={when.finite}
          parse={(t) => t.trim()}
          onChange={(v) => set({ finite: v })}
          testid="when-ref"
          placeholder="card.port"
        />
      )}
      {mode === 'value' && when && (
        <div className="row">
          <TextField
            value={when.value}
            parse={(t) => t.trim()}
            onChange={(v) => set({ ...when, value: v })}
            testid="when-ref"
            placeholder="card.port"
          />
          <select
            value={compare}
            onChange={(e) => {
              const x = when[compare];
              const rest = Object.fromEntries(Object.entries(when).filter(([k]) => !COMPARE.some(([c]) => c === k)));
              set({ ...rest, [e.target.value]: x });
            }}
            data-testid="when-compare"
          >
            {COMPARE.map(([k, symbol]) => (
              <option key={k} value={k}>
                {symbol} ({k})
              </option>
            ))}
          </select>
          <TextField
            value={when[compare]}
            parse={jsonOrText}
            onChange={(v) => set({ ...when, [compare]: v })}
            testid="when-x"
          />
        </div>
      )}
      {mode === 'custom' && when && (
        <TextField value={when} parse={jsonOrText} onChange={(v) => set(isObj(v) ? v : when)} testid="when-json" />
      )}
      {problems &&
        problems.split('\n').map((p) => (
          <div className="field-error" key={p} data-testid="when-error">
            {p}
          </div>
        ))}
    </div>
  );
}

/**
 * After a run: which iteration of each loop around a card (and of the block itself) the body-card previews
 * show, a number from 1 per loop level.
 */
export function IterationPicker({ id, includeSelf }: { id: string; includeSelf: boolean }) {
  const levels = useStore(editor.doc, (s) =>
    [...enclosingBlocks(id, s.nodes), ...(includeSelf ? [id] : [])].join('\n'),
  );
  const loops = useStore(runs, (s) => s.loops);
  const chosen = useStore(ui, (s) => s.iterations);
  const runId = useStore(runs, (s) => s.runId);
  if (!levels || !runId) return null;
  return (
    <div className="iteration-picker row" data-testid="iteration-picker">
      <span className="small muted">iteration:</span>
      {levels.split('\n').map((block) => {
        const seen = loops[block];
        const max = seen?.total ?? seen?.reached;
        return (
          <label key={block} className="small">
            {loopWord(block)}{' '}
            <input
              type="number"
              min={1}
              max={max ?? undefined}
              value={(chosen[block] ?? 0) + 1}
              onChange={(e) => {
                const n = Math.max(1, Math.floor(Number(e.target.value) || 1));
                ui.set((s) => ({ iterations: { ...s.iterations, [block]: n - 1 } }));
              }}
              data-testid={`iteration-${block}`}
            />
            {max ? ` / ${max}` : ''}
          </label>
        );
      })}
    </div>
  );
}
