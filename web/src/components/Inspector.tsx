/** The side panel: the selected card's config form, documentation, problems and output previews. */
import { useEffect, useState } from 'react';
import { run } from '../actions';
import { kindColour } from '../catalogue';
import { annotations } from '../derive';
import { editor } from '../editor';
import { LIGHT_TEXT, useCardView } from '../nodes/CardNode';
import { portsOf } from '../pipelineFile';
import { isActive, runs } from '../runs';
import { shallowEqual, useStore } from '../store';
import { toast } from '../toasts';
import { enclosingBlocks, iterationPath } from '../blocks';
import type { GroupData, PortSpec } from '../types';
import { ui } from '../ui';
import { BlockConfig, IterationPicker, WhenForm } from './BlockForm';
import { ConfigForm } from './ConfigForm';
import { OutputPreviews } from './OutputPreview';

const EMPTY: never[] = [];

function IdField({ id }: { id: string }) {
  const [text, setText] = useState(id);
  useEffect(() => setText(id), [id]);
  const commit = () => {
    if (text === id) return;
    const problem = editor.renameCard(id, text.trim());
    if (problem) {
      toast(problem, 'error');
      setText(id);
    }
  };
  return (
    <input
      className="id-input"
      value={text}
      onChange={(e) => setText(e.target.value)}
      onBlur={commit}
      onKeyDown={(e) => {
        if (e.key === 'Enter') commit();
        if (e.key === 'Escape') setText(id);
      }}
      data-testid="card-id-input"
      aria-label="card id"
      spellCheck={false}
    />
  );
}

function PortDoc({ port, link, problem }: { port: PortSpec; link?: string; problem?: string }) {
  return (
    <li className={problem ? 'has-problem' : ''}>
      <i className="dot" style={{ background: port.kind === 'any' ? '#fff' : kindColour(port.kind), borderColor: kindColour(port.kind) }} />
      <b>{port.name}</b> <span className="muted">{port.kind}</span>
      {port.required ? '' : <span className="muted"> (optional)</span>}
      {link !== undefined && (
        <span className={`link-source${link ? '' : ' missing'}`}>{link ? `← ${link}` : port.required ? 'not connected' : ''}</span>
      )}
      {port.description && <div className="field-help">{port.description}</div>}
      {problem && <div className="field-error">{problem}</div>}
    </li>
  );
}

function CardPanel({ id }: { id: string }) {
  const data = useStore(editor.doc, (s) => s.nodes.find((n) => n.id === id)?.data);
  const isBlock = useStore(editor.doc, (s) => s.nodes.find((n) => n.id === id)?.type === 'group');
  const chosen = useStore(ui, (s) => s.iterations);
  const path = useStore(editor.doc, (s) => iterationPath(id, s.nodes, chosen));
  // what --until / --only name: a body card by its static path (`epochs.batches.fwd`)
  const cardPath = useStore(editor.doc, (s) => [...enclosingBlocks(id, s.nodes), id].join('.'));
  const inputLinks = useStore(
    editor.doc,
    (s) => {
      const links: Record<string, string> = {};
      for (const e of s.edges)
        if (e.target === id && e.targetHandle) links[e.targetHandle] = `${e.source}.${e.sourceHandle?.replace(/^in:/, '')}`;
      return links;
    },
    shallowEqual,
  );
  const total = useStore(editor.doc, (s) => {
    const parent = s.nodes.find((n) => n.id === s.nodes.find((m) => m.id === id)?.parentId);
    return parent ? (parent.data as GroupData).bodyOrder.length : s.order.length;
  });
  const view = useCardView(id);
  const reasons = useStore(annotations, (s) => s.unconfigured[id] ?? EMPTY);
  const problems = useStore(annotations, (s) => s.problems[id] ?? EMPTY);
  const running = useStore(runs, (s) => isActive(s.status));
  if (!data) return null;
  const type = editor.catalogue.get(data.cardType);
  const ports = portsOf(data, editor.catalogue);
  const portProblem = (name: string) =>
    problems
      .filter((p) => p.field === name)
      .map((p) => p.message.replace(/^card '[^']*' \([^)]*\): /, ''))
      .join('; ') || undefined;
  const move = (delta: number) => {
    const problem = editor.moveCard(id, delta);
    if (problem) toast(problem, 'info');
  };
  return (
    <div className="card-panel" data-testid="inspector" data-card={id}>
      <div className="panel-title">
        <span className={`status-light light-${view.light}`} title={LIGHT_TEXT[view.light]} />
        <h2>{type?.title ?? data.cardType}</h2>
        <span className="muted small">{data.cardType}</span>
      </div>
      <div className="row">
        <label className="small muted" htmlFor="card-id">
          id
        </label>
        <IdField id={id} />
        <span className="order-badge big" title="place in the script (run order)" data-testid="inspector-order">
          #{view.index}
        </span>
        <span className="muted small">of {total}</span>
        <button className="icon" title="move up in the script" onClick={() => move(-1)} data-testid="move-up">
          ▲
        </button>
        <button className="icon" title="move down in the script" onClick={() => move(1)} data-testid="move-down">
          ▼
        </button>
      </div>
      <div className="row actions">
        <button
          onClick={() => run({ until: cardPath })}
          disabled={running}
          data-testid="run-until-button"
          title="run every card up to and including this one"
        >
          ▶ Run up to here
        </button>
        <button
          onClick={() => run({ only: cardPath })}
          disabled={running}
          data-testid="run-only-button"
          title="run just this card, from what the cards above it stored"
        >
          ▶ Run only this
        </button>
        <button
          onClick={() => run({ until: cardPath, persist: 'all' })}
          disabled={running}
          data-testid="run-until-keep-button"
          title="run every card up to and including this one, keeping every output (persist all): then each can be previewed, and this card can run alone"
        >
          ▶ Run up to here, keeping outputs
        </button>
      </div>
      <div className={`status-line light-${view.light}`} data-testid="inspector-status">
        <b>{LIGHT_TEXT[view.light]}</b>
        {view.changed && <span className="changed-marker inline">Δ changed since the last run</span>}
      </div>
      {view.light === 'failed' && (
        <div className="error-box" data-testid="card-error">
          {view.reason}
        </div>
      )}
      {reasons.length > 0 && (
        <ul className="reasons">
          {reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      )}
      {problems.length > 0 && (
        <div className="problems" data-testid="card-problems">
          {problems.map((p, i) => (
            <div key={i} className="error small">
              {p.message}
            </div>
          ))}
        </div>
      )}

      <h3>{isBlock ? 'Loop' : 'Config'}</h3>
      {isBlock ? (
        <BlockConfig key={id} id={id} data={data as GroupData} />
      ) : type ? (
        <ConfigForm key={id} cardId={id} type={type} config={data.config} problems={problems} />
      ) : (
        <p className="error small">Unknown card type '{data.cardType}': the server has no such card.</p>
      )}

      <h3>When</h3>
      <WhenForm key={`when-${id}`} id={id} when={data.when} />

      <h3>About</h3>
      {type?.description && <p className="description">{type.description}</p>}
      <h4>Inputs</h4>
      {ports.inputs.length ? (
        <ul className="ports-doc">
          {ports.inputs.map((p) => (
            <PortDoc key={p.name} port={p} link={inputLinks[p.name] ?? data.brokenInputs?.[p.name] ?? ''} problem={portProblem(p.name)} />
          ))}
        </ul>
      ) : (
        <p className="muted small">none</p>
      )}
      <h4>Outputs</h4>
      <ul className="ports-doc">
        {ports.outputs.map((p) => (
          <PortDoc key={p.name} port={p} />
        ))}
      </ul>

      <h3>Outputs of the last run</h3>
      <IterationPicker id={id} includeSelf={isBlock} />
      <OutputPreviews cardId={id} path={path} />
    </div>
  );
}

function PipelinePanel() {
  const name = useStore(editor.doc, (s) => s.name);
  const count = useStore(editor.doc, (s) => s.nodes.length);
  const links = useStore(editor.doc, (s) => s.edges.length);
  const description = useStore(editor.doc, (s) => s.description);
  const general = useStore(annotations, (s) => s.general);
  const problemCount = useStore(annotations, (s) => Object.values(s.problems).reduce((n, l) => n + l.length, 0));
  return (
    <div className="card-panel" data-testid="inspector-pipeline">
      <h2>{name}</h2>
      <p className="muted small">
        {count} cards, {links} links{problemCount ? `, ${problemCount} problem(s) on cards` : ''}
      </p>
      {description && <p className="description">{description}</p>}
      {general.map((p, i) => (
        <div className="error small" key={i}>
          {p.message}
        </div>
      ))}
      <p className="muted small">
        Select a card to see its config, documentation and outputs. Drag a card type from the palette, or double-click the canvas to search.
        Press <kbd>?</kbd> for the shortcuts.
      </p>
    </div>
  );
}

export function Inspector() {
  const selected = useStore(editor.doc, (s) => {
    const ids: string[] = [];
    for (const n of s.nodes) if (n.selected) ids.push(n.id);
    return ids.join('\n');
  });
  const ids = selected ? selected.split('\n') : [];
  return (
    <aside className="inspector" aria-label="selected card">
      {ids.length === 1 ? (
        <CardPanel id={ids[0]} />
      ) : ids.length > 1 ? (
        <div className="card-panel" data-testid="inspector-multi">
          <h2>{ids.length} cards selected</h2>
          <div className="row actions">
            <button onClick={() => editor.duplicate()}>Duplicate</button>
            <button onClick={() => editor.copy()}>Copy</button>
            <button onClick={() => editor.deleteSelection()}>Delete</button>
          </div>
          <p className="muted small">
            {ids.slice(0, 40).join(', ')}
            {ids.length > 40 ? ', …' : ''}
          </p>
        </div>
      ) : (
        <PipelinePanel />
      )}
    </aside>
  );
}
