/**
 * A card on the canvas: its place in the script, title, id and status light; typed handles, inputs on the
 * left and outputs on the right, coloured by kind. Memoised: dragging a card does not re-render its contents,
 * and run events re-render only the cards they concern (each card selects its own slice of the stores).
 */
import { Handle, Position, type NodeProps } from '@xyflow/react';
import { memo } from 'react';
import { kindColour } from '../catalogue';
import { annotations } from '../derive';
import { editor } from '../editor';
import { portsOf } from '../pipelineFile';
import { runs, type CardRun } from '../runs';
import { shallowEqual, useStore } from '../store';
import { whenSummary } from '../blocks';
import type { CardLight, CardNode as CardNodeType, PortSpec, WhenCondition } from '../types';

export const LIGHT_TEXT: Record<CardLight, string> = {
  unconfigured: 'not configured',
  ready: 'ready',
  queued: 'queued',
  running: 'running',
  cached: 'cached (from the store)',
  done: 'done',
  failed: 'failed',
  'not-run': 'not run',
  skipped: 'skipped (its when did not hold)',
};

/** Each light's colour (as the status lights in styles.css draw them): what the minimap fills a card with. */
export const LIGHT_COLOUR: Record<CardLight, string> = {
  unconfigured: '#e0a100',
  ready: '#c3ccd6',
  queued: '#b9d3fb',
  running: '#2f7fe0',
  cached: '#8e7cd9',
  done: '#2e9e44',
  failed: '#c62828',
  'not-run': '#e4e6ea',
  skipped: '#f3d9a4',
};

export interface CardView {
  index: string | undefined;
  light: CardLight;
  reason: string;
  changed: boolean;
  problems: number;
  problemText: string;
  problemFields: string;
}

/** A card's light from its "not configured" reasons and its run status. */
export function lightOf(unconfigured: readonly string[] | undefined, run: CardRun | undefined): CardLight {
  return unconfigured?.length ? 'unconfigured' : (run?.status ?? 'ready');
}

/** Everything a card shows besides its document: one small, comparable object. */
export function useCardView(id: string): CardView {
  const a = useStore(
    annotations,
    (s) => ({
      index: s.index[id],
      unconfigured: s.unconfigured[id],
      changed: !!s.changed[id],
      problems: s.problems[id],
    }),
    shallowEqual,
  );
  const run = useStore(runs, (s) => s.cards[id]);
  const reasons = a.unconfigured ?? [];
  const light = lightOf(reasons, run);
  const reason =
    light === 'unconfigured'
      ? reasons.join('\n')
      : light === 'failed'
        ? (run?.error ?? 'failed')
        : light === 'running'
          ? (run?.progress ?? '')
          : '';
  const problems = a.problems ?? [];
  return {
    index: a.index,
    light,
    reason,
    changed: a.changed,
    problems: problems.length,
    problemText: problems.map((p) => p.message).join('\n'),
    problemFields: problems.map((p) => p.field ?? '').join(' '),
  };
}

export function StatusLight({ id, light, reason }: { id: string; light: CardLight; reason: string }) {
  return (
    <span
      className={`status-light light-${light}`}
      data-testid={`status-${id}`}
      data-status={light}
      title={`${LIGHT_TEXT[light]}${reason ? `: ${reason}` : ''}`}
      aria-label={LIGHT_TEXT[light]}
    />
  );
}

export function PortHandle({ port, type, id, bad }: { port: PortSpec; type: 'source' | 'target'; id?: string; bad?: boolean }) {
  const colour = kindColour(port.kind);
  return (
    <Handle
      type={type}
      position={type === 'target' ? Position.Left : Position.Right}
      id={id ?? port.name}
      className={`port-handle kind-${port.kind}${port.kind === 'any' ? ' kind-any-ring' : ''}${bad ? ' bad' : ''}`}
      style={{ background: port.kind === 'any' ? '#fff' : colour, borderColor: colour }}
      title={`${port.name}: ${port.kind}${port.description ? ` — ${port.description}` : ''}`}
    />
  );
}

function configSummary(config: Record<string, unknown>): string[] {
  return Object.entries(config)
    .slice(0, 3)
    .map(([k, v]) => {
      const text = Array.isArray(v) ? `[${v.join(', ')}]` : typeof v === 'object' && v !== null ? '{…}' : String(v);
      return `${k}: ${text.length > 24 ? `${text.slice(0, 23)}…` : text}`;
    });
}

/** The port rows: re-rendered when the card's document or its problem ports change, not for a run's status. */
export const CardPorts = memo(function CardPorts({ data, problemFields }: { data: CardNodeType['data']; problemFields: string }) {
  const { inputs, outputs } = portsOf(data, editor.catalogue);
  const rows = Math.max(inputs.length, outputs.length);
  const badFields = problemFields ? new Set(problemFields.split(' ')) : null;
  return (
    <div className="card-ports">
      {Array.from({ length: rows }, (_, i) => {
        const input = inputs[i];
        const output = outputs[i];
        return (
          <div className="port-row" key={i}>
            <div className="port port-in">
              {input && (
                <>
                  <PortHandle port={input} type="target" bad={badFields?.has(input.name)} />
                  <span className={`port-label${input.required ? ' required' : ''}`}>{input.name}</span>
                </>
              )}
            </div>
            <div className="port port-out">
              {output && (
                <>
                  <span className="port-label">{output.name}</span>
                  <PortHandle port={output} type="source" />
                </>
              )}
            </div>
          </div>
        );
      })}
    </div>
  );
});

const CardConfig = memo(function CardConfig({ config }: { config: Record<string, unknown> }) {
  const summary = configSummary(config);
  if (!summary.length) return null;
  return (
    <div className="card-config">
      {summary.map((line) => (
        <div key={line}>{line}</div>
      ))}
    </div>
  );
});

function CardNodeComponent({ id, data, selected }: NodeProps<CardNodeType>) {
  const view = useCardView(id);
  const type = editor.catalogue.get(data.cardType);
  return (
    <div
      className={`card${selected ? ' selected' : ''}${view.problems ? ' has-problems' : ''} light-${view.light}`}
      data-category={type?.category ?? 'unknown'}
    >
      <div className="card-header">
        <span className="order-badge" title={`place ${view.index} in the script (the run order)`}>
          #{view.index ?? '?'}
        </span>
        <span className="card-title" title={type?.description ?? `unknown card type ${data.cardType}`}>
          {type?.title ?? data.cardType}
        </span>
        {view.changed && (
          <span className="changed-marker" title="changed since the last run" data-testid={`changed-${id}`}>
            Δ
          </span>
        )}
        {view.problems > 0 && (
          <span className="problem-marker" title={view.problemText} data-testid={`problems-${id}`}>
            !
          </span>
        )}
        <StatusLight id={id} light={view.light} reason={view.reason} />
      </div>
      <div className="card-id" title="card id">
        {id}
      </div>
      <CardPorts data={data} problemFields={view.problemFields} />
      <CardConfig config={data.config} />
      {data.when && <WhenLine id={id} when={data.when} />}
    </div>
  );
}

/** A conditional card's `when`, in a few words. */
export function WhenLine({ id, when }: { id: string; when: WhenCondition }) {
  return (
    <div className="when-line" data-testid={`when-${id}`} title="the card runs only when this holds; otherwise it is skipped">
      when {whenSummary(when)}
    </div>
  );
}

/** Re-render only when what the card draws changes: not for moves. */
export const CardNode = memo(
  CardNodeComponent,
  (a, b) => a.id === b.id && a.data === b.data && a.selected === b.selected && a.isConnectable === b.isConnectable,
);
