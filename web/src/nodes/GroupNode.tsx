/**
 * A loop block. Collapsed, it is one card: its id, its loop setting ("× 10", "over it.batches"), its ports,
 * and while it runs where its loops stand ("epoch 3/10 · batch 17/45 · loss 0.41"), after the run where they
 * got to. Expanded, it is a frame whose children are the body's cards: its inputs are handles on the left edge,
 * outside (links from the pipeline) and inside (`in:<port>`, feeding the body; also `iteration`, the carried
 * values and the item of `over`); its outputs are on the right edge, inside (`out:<port>`, from the body) and
 * outside.
 */
import { Handle, NodeResizer, Position, type NodeProps } from '@xyflow/react';
import { memo } from 'react';
import { blockOutputsOf, innerPortsOf, isExpanded, loopSummary } from '../blocks';
import { kindColour } from '../catalogue';
import { editor } from '../editor';
import { runs } from '../runs';
import { useStore } from '../store';
import type { GroupNode as GroupNodeType, PortSpec } from '../types';
import { CardPorts, PortHandle, StatusLight, WhenLine, useCardView } from './CardNode';

function InnerHandle({ port, type }: { port: PortSpec; type: 'source' | 'target' }) {
  const colour = kindColour(port.kind);
  return (
    <Handle
      type={type}
      position={type === 'source' ? Position.Right : Position.Left}
      id={`${type === 'source' ? 'in' : 'out'}:${port.name}`}
      className={`port-handle inner kind-${port.kind}`}
      style={{ background: colour, borderColor: colour }}
      title={`${port.name} (${port.kind}) inside the block`}
    />
  );
}

/** The block's `over` input as "card.port" (what its summary names), or ''. */
function useOver(id: string): string {
  return useStore(editor.doc, (s) => {
    const e = s.edges.find((edge) => edge.target === id && edge.targetHandle === 'over');
    return e ? `${e.source}.${e.sourceHandle}` : '';
  });
}

function GroupNodeComponent({ id, data, selected }: NodeProps<GroupNodeType>) {
  const view = useCardView(id);
  const over = useOver(id);
  const type = editor.catalogue.get(data.cardType);
  const expanded = isExpanded(data);
  const inputs = data.ports?.inputs ?? [];
  const inputNames = new Set(inputs.map((p) => p.name));
  const innerOnly = innerPortsOf(data).filter((p) => !inputNames.has(p.name));
  const bodyOutputs = new Set((data.ports?.outputs ?? []).map((p) => p.name));
  // where the block is, or got to in the last run: "epoch 4/10 · batch 45/45 · loss 0.3"
  const progress = useStore(runs, (s) => (view.light === 'unconfigured' ? '' : (s.cards[id]?.progress ?? '')));
  const header = (
    <>
      <div className="card-header group-header">
        <span className="order-badge">#{view.index ?? '?'}</span>
        <button
          className="icon block-toggle nodrag"
          onClick={(e) => {
            e.stopPropagation();
            editor.setExpanded(id, !expanded);
          }}
          title={expanded ? 'collapse the block into one card' : 'expand the block: its body inside'}
          data-testid={`toggle-${id}`}
          aria-expanded={expanded}
        >
          {expanded ? '▾' : '▸'}
        </button>
        <span className="card-title">{type?.title ?? (data.cardType === 'loop' ? 'Loop block' : data.cardType)}</span>
        <span className="card-id inline">{id}</span>
        <StatusLight id={id} light={view.light} reason={view.reason} />
      </div>
      <div
        className="block-summary"
        data-testid={`block-summary-${id}`}
        title={`how many times the body runs; the body holds ${data.bodyOrder.length} card${data.bodyOrder.length === 1 ? '' : 's'}`}
      >
        {loopSummary(data.config, over)}
      </div>
      {progress && (
        <div className="block-progress" data-testid={`block-progress-${id}`}>
          {progress}
        </div>
      )}
    </>
  );
  if (!expanded) {
    return (
      <div className={`card group-block collapsed${selected ? ' selected' : ''} light-${view.light}`} data-testid={`block-${id}`}>
        {header}
        <CardPorts data={data} problemFields={view.problemFields} />
        {data.when && <WhenLine id={id} when={data.when} />}
      </div>
    );
  }
  return (
    <div className={`group-block${selected ? ' selected' : ''} light-${view.light}`} data-testid={`block-${id}`}>
      <NodeResizer isVisible={selected} minWidth={240} minHeight={140} color="#4a6fa5" />
      {header}
      <div className="group-ports group-inputs">
        {inputs.map((port) => (
          <div className="group-port" key={port.name}>
            <PortHandle port={port} type="target" />
            <span className="port-label">{port.name}</span>
            <InnerHandle port={port} type="source" />
          </div>
        ))}
        {innerOnly.map((port) => (
          <div className="group-port inner-only" key={`inner:${port.name}`} title="a port of the block inside its body">
            <span className="port-label">{port.name}</span>
            <InnerHandle port={port} type="source" />
          </div>
        ))}
      </div>
      <div className="group-ports group-outputs">
        {blockOutputsOf(data).map((port) => (
          <div className="group-port" key={port.name}>
            {bodyOutputs.has(port.name) && <InnerHandle port={port} type="target" />}
            <span className="port-label">{port.name}</span>
            <PortHandle port={port} type="source" />
          </div>
        ))}
      </div>
    </div>
  );
}

export const GroupNode = memo(GroupNodeComponent, (a, b) => a.id === b.id && a.data === b.data && a.selected === b.selected);
