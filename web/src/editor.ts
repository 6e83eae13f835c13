/**
 * The document being edited (nodes, edges, script order, name) and everything that changes it, with undo and
 * redo as a history of document snapshots. One user action is one step: a paste, the deletion of a selection,
 * the drag of several cards. Selection and measured sizes are not steps.
 */
import { applyEdgeChanges, applyNodeChanges, type Connection, type EdgeChange, type NodeChange } from '@xyflow/react';
import { CatalogueIndex, EMPTY_CATALOGUE, compatible, freshId, idBase, CARD_ID } from './catalogue';
import { moveInOrder, stableTopoOrder, wouldCycle, type Link } from './order';
import { BLOCK_TYPE, innerPortsOf, renamedRefs } from './blocks';
import { groupIntoLoop, setExpanded, ungroup } from './grouping';
import { CARD_WIDTH, fromPipelineFile, makeEdge, parseRef, portsOf, toPipelineFile, type GraphDoc } from './pipelineFile';
import { createStore } from './store';
import type { AnyNode, CardNode, GroupData, LinkEdge, PipelineCardFile, PipelineFile, PortSpec, WhenCondition } from './types';

export interface DocState extends GraphDoc {
  /** Bumps when anything but positions, sizes or the selection changes (what derived views depend on). */
  version: number;
  /** Bumps on every change of the document, moves included (what "unsaved" depends on). */
  revision: number;
}

type Snapshot = GraphDoc;

const HISTORY_LIMIT = 300;
const COALESCE_MS = 1200;

export interface HistoryState {
  canUndo: boolean;
  canRedo: boolean;
}

/** Where a connection starts when a card is added from a dropped link. */
export interface PendingLink {
  nodeId: string;
  handleId: string;
  handleType: 'source' | 'target';
  kind: string;
}

const innerHandle = (handle: string | null | undefined) => !!handle && (handle.startsWith('in:') || handle.startsWith('out:'));

export class Editor {
  readonly doc = createStore<DocState>({ nodes: [], edges: [], order: [], name: 'untitled', description: '', version: 0, revision: 0 });
  readonly history = createStore<HistoryState>({ canUndo: false, canRedo: false });
  catalogue: CatalogueIndex = EMPTY_CATALOGUE;
  private past: Snapshot[] = [];
  private future: Snapshot[] = [];
  private coalesce: { key: string; at: number } | null = null;
  private gesture: Snapshot | null = null;
  private clipboard: PipelineFile | null = null;
  private pasteCount = 0;

  // ---------------------------------------------------------------- snapshots and history

  snapshot(): Snapshot {
    const { nodes, edges, order, name, description } = this.doc.get();
    return { nodes, edges, order, name, description };
  }

  private record(before: Snapshot, coalesceKey?: string): void {
    const now = performance.now();
    const merge = coalesceKey && this.coalesce?.key === coalesceKey && now - this.coalesce.at < COALESCE_MS;
    if (!merge) {
      this.past.push(before);
      if (this.past.length > HISTORY_LIMIT) this.past.shift();
    }
    this.coalesce = coalesceKey ? { key: coalesceKey, at: now } : null;
    this.future = [];
    this.syncHistory();
  }

  private syncHistory(): void {
    this.history.set({ canUndo: this.past.length > 0, canRedo: this.future.length > 0 });
  }

  /** Apply one change to the document as one step of the history. */
  commit(change: (doc: DocState) => Partial<GraphDoc> | null, options: { coalesce?: string; structural?: boolean } = {}): boolean {
    const state = this.doc.get();
    const patch = change(state);
    if (!patch) return false;
    this.record(this.snapshot(), options.coalesce);
    const structural = options.structural ?? true;
    this.doc.set({ ...patch, version: state.version + (structural ? 1 : 0), revision: state.revision + 1 });
    return true;
  }

  private restore(snapshot: Snapshot): void {
    const state = this.doc.get();
    this.doc.set({ ...snapshot, version: state.version + 1, revision: state.revision + 1 });
  }

  undo(): void {
    this.endGesture();
    const previous = this.past.pop();
    if (!previous) return;
    this.future.push(this.snapshot());
    this.coalesce = null;
    this.restore(previous);
    this.syncHistory();
  }

  redo(): void {
    const next = this.future.pop();
    if (!next) return;
    this.past.push(this.snapshot());
    this.coalesce = null;
    this.restore(next);
    this.syncHistory();
  }

  /** Start of a drag: the positions before it are one snapshot, taken once however many cards move. */
  beginGesture(): void {
    if (!this.gesture) this.gesture = this.snapshot();
  }

  endGesture(): void {
    const before = this.gesture;
    this.gesture = null;
    if (!before) return;
    const now = this.doc.get();
    const old = new Map(before.nodes.map((n) => [n.id, n.position]));
    const moved = now.nodes.some((n) => {
      const p = old.get(n.id);
      return !p || p.x !== n.position.x || p.y !== n.position.y;
    });
    if (!moved) return;
    this.record(before);
    this.doc.set({ revision: now.revision + 1 });
  }

  // ---------------------------------------------------------------- loading

  load(file: PipelineFile, options: { keepHistory?: boolean } = {}): void {
    const graph = fromPipelineFile(file, this.catalogue);
    if (options.keepHistory) {
      this.commit(() => graph);
    } else {
      this.past = [];
      this.future = [];
      this.coalesce = null;
      this.gesture = null;
      const state = this.doc.get();
      this.doc.set({ ...graph, version: state.version + 1, revision: state.revision + 1 });
      this.syncHistory();
    }
  }

  toFile(): PipelineFile {
    const { nodes, edges, order, name, description } = this.doc.get();
    return toPipelineFile(nodes, edges, order, { name, description });
  }

  // ---------------------------------------------------------------- React Flow changes

  onNodesChange = (changes: NodeChange<AnyNode>[]): void => {
    const kept = changes.filter((c) => c.type === 'position' || c.type === 'select' || c.type === 'dimensions');
    if (!kept.length) return;
    const positions = kept.filter((c) => c.type === 'position');
    const dragging = positions.some((c) => c.type === 'position' && c.dragging);
    const settled = positions.length > 0 && !dragging;
    if (dragging) this.beginGesture();
    if (settled && !this.gesture) {
      // moved without a drag (arrow keys): a step, merged with the next few key presses
      this.commit((d) => ({ nodes: applyNodeChanges(kept, d.nodes) }), { coalesce: 'keyboard-move', structural: false });
      return;
    }
    const state = this.doc.get();
    this.doc.set({ nodes: applyNodeChanges(kept, state.nodes) });
    if (settled) this.endGesture();
  };

  onEdgesChange = (changes: EdgeChange<LinkEdge>[]): void => {
    const kept = changes.filter((c) => c.type === 'select');
    if (!kept.length) return;
    this.doc.set({ edges: applyEdgeChanges(kept, this.doc.get().edges) });
  };

  // ---------------------------------------------------------------- selection

  selectOnly(ids: readonly string[]): void {
    const wanted = new Set(ids);
    const { nodes, edges } = this.doc.get();
    this.doc.set({
      nodes: nodes.map((n) => (!!n.selected === wanted.has(n.id) ? n : { ...n, selected: wanted.has(n.id) })),
      edges: edges.map((e) => (e.selected ? { ...e, selected: false } : e)),
    });
  }

  selectAll(): void {
    this.selectOnly(this.doc.get().nodes.map((n) => n.id));
  }

  selectedIds(): string[] {
    return this.doc
      .get()
      .nodes.filter((n) => n.selected)
      .map((n) => n.id);
  }

  // ---------------------------------------------------------------- ports and links

  portsOfNode(node: AnyNode): { inputs: PortSpec[]; outputs: PortSpec[] } {
    return portsOf(node.data, this.catalogue);
  }

  /** The kind of a handle: an output (source) or input (target) port, or a block's inner handle. */
  handleKind(node: AnyNode, handle: string | null | undefined, type: 'source' | 'target'): string | undefined {
    if (!handle) return undefined;
    const ports = this.portsOfNode(node);
    if (type === 'source' && handle.startsWith('in:')) {
      const inner = node.type === 'group' ? [...ports.inputs, ...innerPortsOf(node.data as GroupData)] : ports.inputs;
      return inner.find((p) => p.name === handle.slice(3))?.kind;
    }
    if (type === 'target' && handle.startsWith('out:')) return ports.outputs.find((p) => p.name === handle.slice(4))?.kind;
    return (type === 'source' ? ports.outputs : ports.inputs).find((p) => p.name === handle)?.kind;
  }

  private links(edges: readonly LinkEdge[]): Link[] {
    return edges.filter((e) => !innerHandle(e.sourceHandle) && !innerHandle(e.targetHandle));
  }

  /** Why a link may not be made, or null when it may. */
  linkProblem(c: Connection | LinkEdge): string | null {
    const { nodes, edges } = this.doc.get();
    const source = nodes.find((n) => n.id === c.source);
    const target = nodes.find((n) => n.id === c.target);
    if (!source || !target) return 'both ends of a link must be cards';
    if (source.id === target.id) return 'a card cannot use its own output';
    const outKind = this.handleKind(source, c.sourceHandle, 'source');
    const inKind = this.handleKind(target, c.targetHandle, 'target');
    const inName = c.targetHandle?.replace(/^out:/, '') ?? '';
    const outName = c.sourceHandle?.replace(/^in:/, '') ?? '';
    if (!outKind) return `card '${source.id}' has no output '${outName}'`;
    if (!inKind) return `card '${target.id}' has no input '${inName}'`;
    const sameScope =
      (source.parentId ?? null) === (target.parentId ?? null) ||
      (c.sourceHandle?.startsWith('in:') && target.parentId === source.id) ||
      (c.targetHandle?.startsWith('out:') && source.parentId === target.id);
    if (!sameScope) return "a link cannot cross the edge of a block; link to the block's ports";
    if (!compatible(outKind, inKind)) return `input '${inName}' takes kind ${inKind}, not ${outKind}`;
    if (!innerHandle(c.sourceHandle) && !innerHandle(c.targetHandle)) {
      const others = this.links(edges.filter((e) => !(e.target === target.id && e.targetHandle === c.targetHandle)));
      if (wouldCycle(others, source.id, target.id)) {
        return `card '${source.id}' already uses card '${target.id}': this link would make a loop`;
      }
    }
    return null;
  }

  isValidConnection = (c: Connection | LinkEdge): boolean => this.linkProblem(c) === null;

  /** The script order (and each block's body order) made consistent with the links, moving users down. */
  private reordered(nodes: AnyNode[], edges: LinkEdge[], order: string[]): { nodes: AnyNode[]; order: string[] } {
    const links = this.links(edges);
    const nextOrder = stableTopoOrder(order, links) ?? order;
    let nextNodes = nodes;
    for (const node of nodes) {
      if (node.type !== 'group') continue;
      const body = (node.data as GroupData).bodyOrder;
      const sorted = stableTopoOrder(body, links) ?? body;
      if (sorted.some((id, i) => id !== body[i])) {
        nextNodes = nextNodes.map((n) => (n.id === node.id ? ({ ...n, data: { ...n.data, bodyOrder: sorted } } as AnyNode) : n));
      }
    }
    return { nodes: nextNodes, order: nextOrder };
  }

  /** Make a link (replacing what the input had); returns why not, or null. */
  connect(c: Connection): string | null {
    const problem = this.linkProblem(c);
    if (problem) return problem;
    this.commit((d) => this.withLink(d, c));
    return null;
  }

  private withLink(d: GraphDoc, c: Connection): Partial<GraphDoc> {
    const source = d.nodes.find((n) => n.id === c.source)!;
    const kind = this.handleKind(source, c.sourceHandle, 'source');
    const edges = d.edges
      .filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle))
      .concat(makeEdge(c.source, c.sourceHandle ?? '', c.target, c.targetHandle ?? '', kind));
    let nodes = d.nodes;
    const target = nodes.find((n) => n.id === c.target);
    if (target?.data.brokenInputs && c.targetHandle && c.targetHandle in target.data.brokenInputs) {
      const { [c.targetHandle]: _gone, ...rest } = target.data.brokenInputs;
      nodes = nodes.map((n) =>
        n === target ? ({ ...n, data: { ...n.data, brokenInputs: Object.keys(rest).length ? rest : undefined } } as AnyNode) : n,
      );
    }
    return { edges, ...this.reordered(nodes, edges, d.order) };
  }

  // ---------------------------------------------------------------- cards

  private takenIds(nodes: readonly AnyNode[]): Set<string> {
    return new Set(nodes.map((n) => n.id));
  }

  /** Add a card of a type at a flow position; wired to `link` when it comes from a dropped link. */
  addCard(type: string, position: { x: number; y: number }, link?: PendingLink): string | null {
    const d = this.doc.get();
    if (type === BLOCK_TYPE) {
      // an empty loop block: link into it to give it inputs, or group cards into a loop instead
      const id = freshId('loop', this.takenIds(d.nodes));
      const data: GroupData = { cardType: BLOCK_TYPE, config: {}, bodyOrder: [], ports: { inputs: [], outputs: [] } };
      const block: AnyNode = { id, type: 'group', position, data, selected: true, style: { width: CARD_WIDTH } };
      this.commit(() => ({
        nodes: d.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)).concat(block),
        order: [...d.order, id],
      }));
      return id;
    }
    const cardType = this.catalogue.get(type);
    if (!cardType) return null;
    const id = freshId(idBase(type), this.takenIds(d.nodes));
    const node: CardNode = { id, type: 'card', position, data: { cardType: type, config: {} }, selected: true };
    const nodes = d.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)).concat(node);
    let order = [...d.order, id];
    let connection: Connection | null = null;
    if (link) {
      const pick = (ports: PortSpec[], fits: (p: PortSpec) => boolean) =>
        ports.find((p) => fits(p) && p.kind === link.kind) ?? ports.find(fits);
      if (link.handleType === 'source') {
        const port = pick(cardType.inputs, (p) => compatible(link.kind, p.kind));
        if (port) connection = { source: link.nodeId, sourceHandle: link.handleId, target: id, targetHandle: port.name };
      } else {
        const port = pick(cardType.outputs, (p) => compatible(p.kind, link.kind));
        if (port) connection = { source: id, sourceHandle: port.name, target: link.nodeId, targetHandle: link.handleId };
        // a card that feeds another goes right above it in the script
        const at = d.order.indexOf(link.nodeId);
        if (at >= 0) order = [...d.order.slice(0, at), id, ...d.order.slice(at)];
      }
    }
    this.commit(() => {
      const base: GraphDoc = { ...d, nodes, order };
      return connection ? { ...base, ...this.withLink(base, connection) } : { nodes, order };
    });
    return id;
  }

  setConfig(cardId: string, field: string, value: unknown): void {
    this.commit(
      (d) => {
        const node = d.nodes.find((n) => n.id === cardId);
        if (!node) return null;
        const config = { ...node.data.config };
        if (value === undefined) delete config[field];
        else config[field] = value;
        if (JSON.stringify(config) === JSON.stringify(node.data.config)) return null;
        return { nodes: d.nodes.map((n) => (n === node ? ({ ...n, data: { ...n.data, config } } as AnyNode) : n)) };
      },
      { coalesce: `config:${cardId}:${field}` },
    );
  }

  /** Set (or, with undefined, remove) a card's `when`. */
  setWhen(cardId: string, when: WhenCondition | undefined): void {
    this.commit(
      (d) => {
        const node = d.nodes.find((n) => n.id === cardId);
        if (!node || JSON.stringify(node.data.when) === JSON.stringify(when)) return null;
        const { when: _old, ...rest } = node.data;
        const data = when === undefined ? rest : { ...rest, when };
        return { nodes: d.nodes.map((n) => (n === node ? ({ ...n, data } as AnyNode) : n)) };
      },
      { coalesce: `when:${cardId}` },
    );
  }

  // ---------------------------------------------------------------- blocks

  /** Wrap the selected cards in a new loop block (selected, expanded); returns why not, or null. */
  groupSelection(): string | null {
    const result = groupIntoLoop(this.doc.get(), this.selectedIds());
    if (typeof result === 'string') return result;
    this.commit(() => result.doc);
    return null;
  }

  /** Put a block's body back in its place; returns why not, or null. */
  ungroupBlock(id: string): string | null {
    const result = ungroup(this.doc.get(), id);
    if (typeof result === 'string') return result;
    this.commit(() => result);
    return null;
  }

  /** Expand a block into its frame with the body inside, or collapse it into one card. */
  setExpanded(id: string, expanded: boolean): void {
    this.commit((d) => setExpanded(d, id, expanded), { structural: false });
  }

  /** Add an input port to a block (then link into it from outside and use it inside); returns why not, or null. */
  addBlockInput(id: string, name: string): string | null {
    const node = this.doc.get().nodes.find((n) => n.id === id);
    if (!node || node.type !== 'group') return `'${id}' is not a block`;
    const data = node.data as GroupData;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      return `'${name}' is not a valid port name: use letters, digits and '_', starting with a letter or '_'`;
    const taken = [...(data.ports?.inputs ?? []), ...innerPortsOf(data)].map((p) => p.name);
    if (taken.includes(name)) return `block '${id}' already has a port '${name}'`;
    const ports = { inputs: [...(data.ports?.inputs ?? []), { name, kind: 'any', required: true }], outputs: data.ports?.outputs ?? [] };
    this.commit((d) => ({ nodes: d.nodes.map((n) => (n.id === id ? ({ ...n, data: { ...data, ports } } as AnyNode) : n)) }));
    return null;
  }

  setName(name: string): void {
    this.commit((d) => (d.name === name ? null : { name }), { coalesce: 'name' });
  }

  /** Rename a card, and every link and reference to it; returns why not, or null. */
  renameCard(oldId: string, newId: string): string | null {
    if (oldId === newId) return null;
    if (!CARD_ID.test(newId)) return `'${newId}' is not a valid card id: use letters, digits, '_' and '-', starting with a letter or '_'`;
    const d = this.doc.get();
    if (d.nodes.some((n) => n.id === newId)) return `there is already a card '${newId}'`;
    const swap = (id: string) => (id === oldId ? newId : id);
    this.commit(() => ({
      nodes: d.nodes.map((n) => {
        let next = n;
        if (n.id === oldId) next = { ...next, id: newId };
        const data = renamedRefs(next.data, oldId, newId);
        if (data !== next.data) next = { ...next, data } as AnyNode;
        if (n.parentId === oldId) next = { ...next, parentId: newId };
        if (n.type === 'group') {
          const group = next.data as GroupData;
          if (group.bodyOrder.includes(oldId)) next = { ...next, data: { ...group, bodyOrder: group.bodyOrder.map(swap) } } as AnyNode;
        }
        return next;
      }),
      edges: d.edges.map((e) =>
        e.source === oldId || e.target === oldId
          ? makeEdge(swap(e.source), e.sourceHandle ?? '', swap(e.target), e.targetHandle ?? '', e.data?.kind)
          : e,
      ),
      order: d.order.map(swap),
    }));
    return null;
  }

  /** Move a card up (-1) or down (+1) in the script; returns why not, or null. */
  moveCard(cardId: string, delta: number): string | null {
    const d = this.doc.get();
    const node = d.nodes.find((n) => n.id === cardId);
    if (!node) return `no card '${cardId}'`;
    const links = this.links(d.edges);
    if (node.parentId) {
      const parent = d.nodes.find((n) => n.id === node.parentId);
      if (!parent || parent.type !== 'group') return null;
      const moved = moveInOrder((parent.data as GroupData).bodyOrder, links, cardId, delta);
      if (typeof moved === 'string') return moved;
      this.commit(() => ({
        nodes: d.nodes.map((n) => (n === parent ? ({ ...n, data: { ...n.data, bodyOrder: moved } } as AnyNode) : n)),
      }));
      return null;
    }
    const moved = moveInOrder(d.order, links, cardId, delta);
    if (typeof moved === 'string') return moved;
    this.commit(() => ({ order: moved }));
    return null;
  }

  removeLink(edgeId: string): void {
    this.commit((d) => (d.edges.some((e) => e.id === edgeId) ? { edges: d.edges.filter((e) => e.id !== edgeId) } : null));
  }

  /** Delete the selected cards (with a block's body) and links: one step. */
  deleteSelection(): number {
    const d = this.doc.get();
    const gone = new Set(d.nodes.filter((n) => n.selected).map((n) => n.id));
    let grew = true;
    while (grew) {
      grew = false;
      for (const n of d.nodes) {
        if (n.parentId && gone.has(n.parentId) && !gone.has(n.id)) {
          gone.add(n.id);
          grew = true;
        }
      }
    }
    const edges = d.edges.filter((e) => !e.selected && !gone.has(e.source) && !gone.has(e.target));
    if (!gone.size && edges.length === d.edges.length) return 0;
    this.commit(() => ({
      nodes: d.nodes
        .filter((n) => !gone.has(n.id))
        .map((n) =>
          n.type === 'group' && (n.data as GroupData).bodyOrder.some((id) => gone.has(id))
            ? ({ ...n, data: { ...n.data, bodyOrder: (n.data as GroupData).bodyOrder.filter((id) => !gone.has(id)) } } as AnyNode)
            : n,
        ),
      edges,
      order: d.order.filter((id) => !gone.has(id)),
    }));
    return gone.size + (d.edges.length - edges.length);
  }

  /** The selected cards as a pipeline file (what copy puts on the clipboard). */
  selectionAsFile(): PipelineFile | null {
    const d = this.doc.get();
    const picked = new Set(d.nodes.filter((n) => n.selected && !n.parentId).map((n) => n.id));
    if (!picked.size) return null;
    const file = toPipelineFile(d.nodes, d.edges, d.order, { name: d.name });
    return { version: 1, name: 'clipboard', cards: file.cards.filter((c) => picked.has(c.id)) };
  }

  copy(): number {
    const file = this.selectionAsFile();
    if (!file) return 0;
    this.clipboard = file;
    this.pasteCount = 0;
    return file.cards.length;
  }

  hasClipboard(): boolean {
    return !!this.clipboard;
  }

  setClipboard(file: PipelineFile): void {
    this.clipboard = file;
    this.pasteCount = 0;
  }

  paste(at?: { x: number; y: number }): number {
    if (!this.clipboard) return 0;
    this.pasteCount += 1;
    return this.insertCards(this.clipboard, at, 40 * this.pasteCount);
  }

  duplicate(): number {
    const file = this.selectionAsFile();
    return file ? this.insertCards(file, undefined, 40) : 0;
  }

  /**
   * Add a file's cards as new cards: fresh ids, links among them kept, links from cards of this pipeline kept
   * when those cards exist; appended to the script and selected. One step.
   */
  insertCards(file: PipelineFile, at: { x: number; y: number } | undefined, shift: number): number {
    const d = this.doc.get();
    const taken = this.takenIds(d.nodes);
    const rename = new Map<string, string>();
    const collect = (cards: PipelineCardFile[]) => {
      for (const card of cards) {
        const id = freshId(card.id, taken);
        taken.add(id);
        rename.set(card.id, id);
        if (card.body) collect(card.body.cards);
      }
    };
    collect(file.cards);
    const renameRef = (ref: string) => {
      const r = parseRef(ref);
      return r && rename.has(r.card) ? `${rename.get(r.card)}.${r.port}` : ref;
    };
    const rewrite = (cards: PipelineCardFile[]): PipelineCardFile[] =>
      cards.map((card) => ({
        ...card,
        id: rename.get(card.id)!,
        inputs: card.inputs && Object.fromEntries(Object.entries(card.inputs).map(([p, ref]) => [p, renameRef(ref)])),
        body: card.body && {
          cards: rewrite(card.body.cards),
          outputs: card.body.outputs && Object.fromEntries(Object.entries(card.body.outputs).map(([p, ref]) => [p, renameRef(ref)])),
        },
      }));
    const graph = fromPipelineFile({ ...file, cards: rewrite(file.cards) }, this.catalogue);
    const tops = graph.nodes.filter((n) => !n.parentId);
    const minX = Math.min(...tops.map((n) => n.position.x));
    const minY = Math.min(...tops.map((n) => n.position.y));
    const dx = at ? at.x - minX : shift;
    const dy = at ? at.y - minY : shift;
    const existing = new Map(d.nodes.map((n) => [n.id, n]));
    const extraEdges: LinkEdge[] = [];
    const added = graph.nodes.map((n) => {
      let node: AnyNode = { ...n, selected: !n.parentId };
      if (!n.parentId) node = { ...node, position: { x: n.position.x + dx, y: n.position.y + dy } };
      const broken = n.data.brokenInputs;
      if (broken && !n.parentId) {
        const still: Record<string, string> = {};
        for (const [port, ref] of Object.entries(broken)) {
          const r = parseRef(ref);
          const source = r && existing.get(r.card);
          const outKind = source && !source.parentId ? this.handleKind(source, r!.port, 'source') : undefined;
          const inKind = this.handleKind(node, port, 'target');
          if (outKind && inKind && compatible(outKind, inKind)) extraEdges.push(makeEdge(r!.card, r!.port, n.id, port, outKind));
          else still[port] = ref;
        }
        node = { ...node, data: { ...node.data, brokenInputs: Object.keys(still).length ? still : undefined } } as AnyNode;
      }
      return node;
    });
    this.commit(() => ({
      nodes: d.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)).concat(added),
      edges: [...d.edges.map((e) => (e.selected ? { ...e, selected: false } : e)), ...graph.edges, ...extraEdges],
      order: [...d.order, ...graph.order],
    }));
    return graph.order.length;
  }
}

export const editor = new Editor();
