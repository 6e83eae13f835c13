/** The link being drawn: the colour of its kind, red over a handle it may not join, with the reason. */
import { getBezierPath, type ConnectionLineComponentProps } from '@xyflow/react';
import { kindColour } from '../catalogue';
import { editor } from '../editor';
import type { AnyNode } from '../types';

export function ConnectionLine({ fromX, fromY, toX, toY, fromPosition, toPosition, connectionStatus, fromNode, fromHandle, toHandle }: ConnectionLineComponentProps<AnyNode>) {
  const [path] = getBezierPath({ sourceX: fromX, sourceY: fromY, sourcePosition: fromPosition, targetX: toX, targetY: toY, targetPosition: toPosition });
  const kind = editor.handleKind(fromNode as unknown as AnyNode, fromHandle.id, fromHandle.type) ?? 'any';
  const invalid = connectionStatus === 'invalid';
  let reason: string | null = null;
  if (invalid && toHandle) {
    const connection =
      fromHandle.type === 'source'
        ? { source: fromNode.id, sourceHandle: fromHandle.id ?? null, target: toHandle.nodeId, targetHandle: toHandle.id ?? null }
        : { source: toHandle.nodeId, sourceHandle: toHandle.id ?? null, target: fromNode.id, targetHandle: fromHandle.id ?? null };
    reason = editor.linkProblem(connection);
  }
  const colour = invalid ? '#d11' : kindColour(kind);
  return (
    <g className={`connection-line${invalid ? ' invalid' : connectionStatus === 'valid' ? ' valid' : ''}`} data-status={connectionStatus ?? 'none'}>
      <path d={path} fill="none" stroke={colour} strokeWidth={invalid ? 3 : 2.5} strokeDasharray={invalid ? '6 4' : undefined} />
      <circle cx={toX} cy={toY} r={4} fill={colour} />
      {reason && (
        <foreignObject x={toX + 10} y={toY + 8} width={280} height={60} className="connection-reason-box">
          <div className="connection-reason">{reason}</div>
        </foreignObject>
      )}
    </g>
  );
}
