/**
 * A block holding a sub-pipeline (a loop body): a frame whose children are the body's cards. Its inputs are
 * handles on the left edge, outside (links from the pipeline) and inside (`in:<port>`, feeding the body); its
 * outputs are on the right edge, inside (`out:<port>`, from the body) and outside (to the pipeline).
 */
import { Handle, NodeResizer, Position, type NodeProps } from '@xyflow/react';
import { memo } from 'react';
import { kindColour } from '../catalogue';
import { editor } from '../editor';
import type { GroupNode as GroupNodeType, PortSpec } from '../types';
import { PortHandle, StatusLight, useCardView } from './CardNode';

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

function GroupNodeComponent({ id, data, selected }: NodeProps<GroupNodeType>) {
  const view = useCardView(id);
  const type = editor.catalogue.get(data.cardType);
  const ports = editor.portsOfNode({ id, data, type: 'group', position: { x: 0, y: 0 } });
  return (
    <div className={`group-block${selected ? ' selected' : ''} light-${view.light}`}>
      <NodeResizer isVisible={selected} minWidth={240} minHeight={140} color="#4a6fa5" />
      <div className="card-header group-header">
        <span className="order-badge">#{view.index ?? '?'}</span>
        <span className="card-title">{type?.title ?? data.cardType}</span>
        <span className="card-id inline">{id}</span>
        <StatusLight id={id} light={view.light} reason={view.reason} />
      </div>
      <div className="group-ports group-inputs">
        {ports.inputs.map((port) => (
          <div className="group-port" key={port.name}>
            <PortHandle port={port} type="target" />
            <span className="port-label">{port.name}</span>
            <InnerHandle port={port} type="source" />
          </div>
        ))}
      </div>
      <div className="group-ports group-outputs">
        {ports.outputs.map((port) => (
          <div className="group-port" key={port.name}>
            <InnerHandle port={port} type="target" />
            <span className="port-label">{port.name}</span>
            <PortHandle port={port} type="source" />
          </div>
        ))}
      </div>
    </div>
  );
}

export const GroupNode = memo(
  GroupNodeComponent,
  (a, b) => a.id === b.id && a.data === b.data && a.selected === b.selected,
);
