/**
 * Grouping cards into a loop block and back, and expanding or collapsing a block: pure functions from one
 * document to the next (the editor commits each as one undoable step), or a sentence saying why not.
 *
 * Grouping wraps cards of one script (the pipeline, or one block's body) in a new `loop` block that takes the
 * place of the first of them: a link from outside into the cards becomes a block input (outside, a link into
 * the block; inside, `<block>.<port>`), a link from them to a card outside becomes a block output.
 */
import { BLOCK_TYPE, enclosingBlocks, isExpanded } from './blocks';
import { freshId } from './catalogue';
import {
  CARD_WIDTH,
  COLUMN_GAP,
  GROUP_PAD,
  frameMinHeight,
  makeEdge,
  withBlockViews,
  type GraphDoc,
} from './pipelineFile';
import type { AnyNode, GroupData, GroupNode, LinkEdge, PortSpec } from './types';

type Size = { width: number; height: number };
const isInner = (handle: string | null | undefined) =>
  !!handle && (handle.startsWith('in:') || handle.startsWith('out:'));

function sizeOf(node: AnyNode): Size {
  const width = Number(node.width ?? node.style?.width ?? node.measured?.width) || CARD_WIDTH;
  const height = Number(node.height ?? node.style?.height ?? node.measured?.height) || 120;
  return { width, height };
}

/** Parents before their children (what React Flow needs), otherwise in the given order. */
function parentsFirst(nodes: AnyNode[]): AnyNode[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = (n: AnyNode): number => (n.parentId && byId.has(n.parentId) ? 1 + depth(byId.get(n.parentId)!) : 0);
  return nodes
    .map((n, i) => ({ n, i, d: depth(n) }))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .map((x) => x.n);
}

function scopeOrder(doc: GraphDoc, scope: string | null): string[] {
  if (!scope) return doc.order;
  const parent = doc.nodes.find((n) => n.id === scope);
  return parent ? (parent.data as GroupData).bodyOrder : [];
}

/** The document with a scope's order replaced (the pipeline's, or a block's body order). */
function withScopeOrder(
  doc: GraphDoc,
  nodes: AnyNode[],
  scope: string | null,
  order: string[],
): Pick<GraphDoc, 'nodes' | 'order'> {
  if (!scope) return { nodes, order };
  return {
    nodes: nodes.map((n) => (n.id === scope ? ({ ...n, data: { ...n.data, bodyOrder: order } } as AnyNode) : n)),
    order: doc.order,
  };
}

function withoutParent(node: AnyNode): AnyNode {
  const { parentId: _p, extent: _e, ...rest } = node;
  return rest as AnyNode;
}

/** A port name for `base` not yet in `taken` (then added to it). */
function portName(base: string, prefix: string, taken: Set<string>): string {
  let name = taken.has(base) ? `${prefix}_${base}` : base;
  for (let n = 2; taken.has(name); n++) name = `${prefix}_${base}${n}`;
  taken.add(name);
  return name;
}

/** The selected cards grouped into a new loop block (returned selected, expanded), or why they cannot be. */
export function groupIntoLoop(
  doc: GraphDoc,
  ids: readonly string[],
): { doc: Partial<GraphDoc>; block: string } | string {
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const chosen = new Set(ids.filter((id) => byId.has(id)));
  if (!chosen.size) return 'select the cards to group into a loop first';
  // a card inside a chosen block comes with its block
  const members = [...chosen].filter((id) => !enclosingBlocks(id, doc.nodes).some((b) => chosen.has(b)));
  const scope = byId.get(members[0])!.parentId ?? null;
  if (members.some((id) => (byId.get(id)!.parentId ?? null) !== scope)) {
    return "the selected cards are in different scripts: select cards of the pipeline, or of one block's body, to group them";
  }
  const memberSet = new Set(members);
  const order = scopeOrder(doc, scope);
  const bodyOrder = order.filter((id) => memberSet.has(id));
  const firstAt = order.indexOf(bodyOrder[0]);
  const block = freshId('loop', new Set(doc.nodes.map((n) => n.id)));
  const newOrder = [
    ...order.slice(0, firstAt).filter((id) => !memberSet.has(id)),
    block,
    ...order.slice(firstAt).filter((id) => !memberSet.has(id)),
  ];

  // the script order must stay valid with the block in the place of its first card
  const at = new Map(newOrder.map((id, i) => [id, i]));
  const rep = (id: string) => (memberSet.has(id) ? block : id);
  for (const e of doc.edges) {
    if (isInner(e.sourceHandle) || isInner(e.targetHandle)) continue;
    const s = at.get(rep(e.source));
    const t = at.get(rep(e.target));
    if (s === undefined || t === undefined || s < t || rep(e.source) === rep(e.target)) continue;
    return `cannot group these cards: '${e.target}' uses '${e.source}', which stands between the selected cards in the script; select '${e.source}' too, or move it above '${bodyOrder[0]}'`;
  }

  const inside = (id: string) => memberSet.has(id) || enclosingBlocks(id, doc.nodes).some((b) => memberSet.has(b));
  const inputs: PortSpec[] = [];
  const outputs: PortSpec[] = [];
  const inputOf = new Map<string, string>();
  const outputOf = new Map<string, string>();
  const inputNames = new Set<string>(['iteration']);
  const outputNames = new Set<string>();
  const edges: LinkEdge[] = [];
  for (const e of doc.edges) {
    const s = e.sourceHandle ?? '';
    const t = e.targetHandle ?? '';
    const kind = e.data?.kind ?? 'any';
    const fromInside = inside(e.source);
    const toInside = inside(e.target);
    if (fromInside === toInside) {
      edges.push(e);
    } else if (toInside) {
      // into the cards: a block input, fed from outside, used inside
      const key = `${e.source}.${s}`;
      let port = inputOf.get(key);
      if (!port) {
        port = portName(s.replace(/^in:/, ''), e.source, inputNames);
        inputOf.set(key, port);
        inputs.push({ name: port, kind, required: true });
        edges.push(makeEdge(e.source, s, block, port, kind));
      }
      edges.push(makeEdge(block, `in:${port}`, e.target, t, kind));
    } else {
      // out of the cards: a block output
      const key = `${e.source}.${s}`;
      let port = outputOf.get(key);
      if (!port) {
        port = portName(s, e.source, outputNames);
        outputOf.set(key, port);
        outputs.push({ name: port, kind, required: true });
        edges.push(makeEdge(e.source, s, block, `out:${port}`, kind));
      }
      edges.push(makeEdge(block, port, e.target, t, kind));
    }
  }

  const picked = members.map((id) => byId.get(id)!);
  const minX = Math.min(...picked.map((n) => n.position.x));
  const minY = Math.min(...picked.map((n) => n.position.y));
  const origin = { x: minX - GROUP_PAD.left, y: minY - GROUP_PAD.top };
  const frame = {
    width: Math.max(...picked.map((n) => n.position.x + sizeOf(n).width)) - origin.x + GROUP_PAD.right,
    height: Math.max(
      Math.max(...picked.map((n) => n.position.y + sizeOf(n).height)) - origin.y + GROUP_PAD.bottom,
      frameMinHeight(Math.max(inputs.length + 1, outputs.length)),
    ),
  };
  const data: GroupData = {
    cardType: BLOCK_TYPE,
    config: {},
    ui: { expanded: true },
    bodyOrder,
    ports: { inputs, outputs },
    frame,
  };
  const node: GroupNode = { id: block, type: 'group', position: origin, data, selected: true };
  if (scope) Object.assign(node, { parentId: scope, extent: 'parent' as const });
  const firstNode = doc.nodes.findIndex((n) => memberSet.has(n.id));
  const nodes = doc.nodes.map((n) =>
    memberSet.has(n.id)
      ? ({
          ...n,
          parentId: block,
          extent: 'parent' as const,
          selected: false,
          position: { x: n.position.x - origin.x, y: n.position.y - origin.y },
        } as AnyNode)
      : n.selected
        ? { ...n, selected: false }
        : n,
  );
  nodes.splice(firstNode, 0, node);
  const placed = withScopeOrder(doc, withBlockViews(parentsFirst(nodes)), scope, newOrder);
  return { doc: { ...placed, edges }, block };
}

/** The block's body put back in the block's place (cards, links, order), or why it cannot be. */
export function ungroup(doc: GraphDoc, id: string): Partial<GraphDoc> | string {
  const block = doc.nodes.find((n) => n.id === id);
  if (!block || block.type !== 'group') return `'${id}' is not a block`;
  const data = block.data as GroupData;
  const inputNames = new Set((data.ports?.inputs ?? []).map((p) => p.name));
  const feeds = new Map<string, LinkEdge>();
  const results = new Map<string, LinkEdge>();
  for (const e of doc.edges) {
    if (e.target === id && !e.targetHandle?.startsWith('out:')) feeds.set(e.targetHandle ?? '', e);
    if (e.target === id && e.targetHandle?.startsWith('out:')) results.set(e.targetHandle.slice(4), e);
  }
  for (const e of doc.edges) {
    const port = e.sourceHandle?.replace(/^in:/, '') ?? '';
    if (e.source === id && e.sourceHandle?.startsWith('in:') && !inputNames.has(port)) {
      return `cannot ungroup '${id}': card '${e.target}' uses '${id}.${port}', which exists only inside the loop`;
    }
    if (e.source === id && !e.sourceHandle?.startsWith('in:') && !results.has(port)) {
      return `cannot ungroup '${id}': card '${e.target}' uses '${id}.${port}', a carried value that exists only with the loop`;
    }
  }
  const edges: LinkEdge[] = [];
  for (const e of doc.edges) {
    if (e.target === id) continue;
    if (e.source === id && e.sourceHandle?.startsWith('in:')) {
      const feed = feeds.get(e.sourceHandle.slice(3));
      if (feed)
        edges.push(makeEdge(feed.source, feed.sourceHandle ?? '', e.target, e.targetHandle ?? '', feed.data?.kind));
    } else if (e.source === id) {
      const result = results.get(e.sourceHandle ?? '')!;
      edges.push(makeEdge(result.source, result.sourceHandle ?? '', e.target, e.targetHandle ?? '', result.data?.kind));
    } else {
      edges.push(e);
    }
  }
  const scope = block.parentId ?? null;
  const nodes = doc.nodes
    .filter((n) => n.id !== id)
    .map((n) => {
      if (n.parentId !== id) return n;
      const moved = {
        ...n,
        position: { x: n.position.x + block.position.x, y: n.position.y + block.position.y },
      } as AnyNode;
      return scope ? ({ ...moved, parentId: scope, extent: 'parent' as const } as AnyNode) : withoutParent(moved);
    });
  const order = scopeOrder(doc, scope).flatMap((x) => (x === id ? data.bodyOrder : [x]));
  return { ...withScopeOrder(doc, withBlockViews(nodes), scope, order), edges };
}

function overlaps(a: { x: number; y: number } & Size, b: { x: number; y: number } & Size): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** The size a node takes on the canvas: an expanded block its frame, a collapsed one a card's width. */
function drawnSize(node: AnyNode): Size {
  if (node.type === 'group' && isExpanded(node.data)) return (node.data as GroupData).frame ?? sizeOf(node);
  return node.type === 'group' ? { width: CARD_WIDTH, height: sizeOf(node).height } : sizeOf(node);
}

/**
 * Room for node `id` grown to `size`: the cards of its script that it would cover move right, clear of it,
 * with the rest of their band; then the block around it grows to hold all its cards, and makes room in turn.
 */
function makeRoom(nodes: AnyNode[], id: string, size: Size): AnyNode[] {
  const node = nodes.find((n) => n.id === id)!;
  const rect = { ...node.position, ...size };
  const siblings = nodes.filter((n) => n.id !== id && (n.parentId ?? null) === (node.parentId ?? null) && !n.hidden);
  const hit = siblings.filter((n) => overlaps(rect, { ...n.position, ...drawnSize(n) }));
  if (hit.length) {
    const fromX = Math.min(...hit.map((n) => n.position.x));
    const dx = rect.x + rect.width + COLUMN_GAP - fromX;
    const band = new Set(
      siblings
        .filter(
          (n) =>
            n.position.x >= fromX && n.position.y < rect.y + rect.height && n.position.y + drawnSize(n).height > rect.y,
        )
        .map((n) => n.id),
    );
    nodes = nodes.map((n) => (band.has(n.id) ? { ...n, position: { x: n.position.x + dx, y: n.position.y } } : n));
  }
  const parent = node.parentId ? nodes.find((n) => n.id === node.parentId) : undefined;
  if (!parent || parent.type !== 'group') return nodes;
  const pData = parent.data as GroupData;
  const pFrame = pData.frame ?? sizeOf(parent);
  const children = nodes.filter((n) => n.parentId === parent.id);
  const needed = {
    width: Math.max(
      pFrame.width,
      ...children.map((n) => n.position.x + (n.id === id ? size.width : drawnSize(n).width) + GROUP_PAD.right),
    ),
    height: Math.max(
      pFrame.height,
      ...children.map((n) => n.position.y + (n.id === id ? size.height : drawnSize(n).height) + GROUP_PAD.bottom),
    ),
  };
  if (needed.width === pFrame.width && needed.height === pFrame.height) return nodes;
  const { width: _w, height: _h, ...rest } = parent;
  const grown = {
    ...rest,
    data: { ...pData, frame: needed },
    style: { width: needed.width, height: needed.height },
  } as AnyNode;
  nodes = nodes.map((n) => (n === parent ? grown : n));
  return isExpanded(pData) ? makeRoom(nodes, parent.id, needed) : nodes;
}

/**
 * A block expanded (its frame, the body inside; the cards beside it in its script moved right, clear of the
 * frame, and the blocks around it grown to hold it) or collapsed (one card; the frame's size kept).
 */
export function setExpanded(doc: GraphDoc, id: string, expanded: boolean): Partial<GraphDoc> | null {
  const block = doc.nodes.find((n) => n.id === id);
  if (!block || block.type !== 'group') return null;
  const data = block.data as GroupData;
  if (isExpanded(data) === expanded) return null;
  const frame = expanded ? (data.frame ?? { width: CARD_WIDTH + 80, height: 160 }) : sizeOf(block);
  const ui = { ...(data.ui ?? {}) };
  if (expanded) ui.expanded = true;
  else delete ui.expanded;
  let nodes = doc.nodes.map((n) =>
    n === block ? ({ ...n, data: { ...data, ui: Object.keys(ui).length ? ui : undefined, frame } } as AnyNode) : n,
  );
  if (expanded) nodes = makeRoom(nodes, id, frame);
  return { nodes: withBlockViews(nodes) };
}
