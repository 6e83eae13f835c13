/**
 * Graph <-> pipeline file (version 1).
 *
 * A pipeline file is an ordered list of cards; each card's `inputs` maps an input port to "<card>.<output port>".
 * On the canvas a card is a node and each input is an edge whose sourceHandle / targetHandle are the port names.
 * The editor's node positions travel in each card's `ui` block ({position: {x, y}}); a file without positions
 * is laid out automatically, a column per "layer" of the script (a card's layer is one more than the deepest
 * card it uses).
 *
 * A block holding a sub-pipeline (a loop body) is a card with a `body` ({cards, outputs}); on the canvas it is a
 * group node whose children are the body's cards. Inside the body, "<block>.<port>" names one of the block's
 * inputs (an edge from the group's inner handle `in:<port>`), and the body's `outputs` map each of the block's
 * output ports to a body card's output (an edge into the group's inner handle `out:<port>`). Inside, the block also
 * offers `iteration`, its carried values and, for a block `over` an iterator, the item's ports (docs/blocks.md).
 * A block is drawn collapsed (one card) unless its `ui.expanded` is true; the frame's size is kept either way.
 */
import { BLOCK_TYPE, ITEM_PORTS, blockOutputsOf, carryNames, isExpanded } from './blocks';
import type { CatalogueIndex } from './catalogue';
import type {
  AnyNode,
  CardData,
  CardType,
  CardUi,
  GroupData,
  GroupNode,
  LinkEdge,
  PipelineCardFile,
  PipelineFile,
  PortSpec,
} from './types';

export const CARD_WIDTH = 240;
export const COLUMN_GAP = 80;
export const ROW_GAP = 28;
/** The layout wraps its columns onto bands, choosing how many per band to come near this width / height. */
export const TARGET_ASPECT = 1.8;
export const MIN_COLUMNS_PER_BAND = 4;
export const MAX_COLUMNS_PER_BAND = 24;
const BAND_GAP = ROW_GAP * 3;
/** Room inside an expanded block's frame around its body: its header, and its port columns on either side. */
export const GROUP_PAD = { left: 130, top: 70, right: 130, bottom: 30 };

/** The least height of an expanded block's frame: its header and the longer of its two port columns. */
export function frameMinHeight(rows: number): number {
  return 62 + rows * 26 + 14;
}

export interface GraphDoc {
  nodes: AnyNode[];
  edges: LinkEdge[];
  /** Ids of the top-level cards in script order. */
  order: string[];
  name: string;
  description: string;
}

export interface OutputRef {
  card: string;
  port: string;
}

/** "card.port" -> {card, port}, or null when the text is not of that form (exactly one dot, both parts). */
export function parseRef(text: unknown): OutputRef | null {
  if (typeof text !== 'string') return null;
  const parts = text.split('.');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return null;
  return { card: parts[0], port: parts[1] };
}

export function edgeId(source: string, sourceHandle: string, target: string, targetHandle: string): string {
  return `${source}.${sourceHandle}->${target}.${targetHandle}`;
}

export function makeEdge(source: string, sourceHandle: string, target: string, targetHandle: string, kind: string | undefined): LinkEdge {
  return {
    id: edgeId(source, sourceHandle, target, targetHandle),
    source,
    sourceHandle,
    target,
    targetHandle,
    data: { kind },
    className: kind ? `kind-${kind}` : undefined,
  };
}

/** The height a card node will have, near enough for laying out before the DOM measures it. */
export function estimateHeight(type: CardType | undefined, config?: Record<string, unknown>): number {
  const rows = Math.max(type?.inputs.length ?? 1, type?.outputs.length ?? 1, 1);
  const configRows = config ? Math.min(Object.keys(config).length, 3) : 0;
  return 52 + rows * 22 + (configRows ? 8 + configRows * 16 : 0);
}

/** The height of a collapsed block: its header, loop summary and a row per port. */
export function collapsedHeight(rows: number): number {
  return 76 + rows * 22;
}

/**
 * Each block's look from its `ui.expanded`: an expanded block is its frame, a collapsed one a card's width; the
 * cards inside a collapsed block (at any depth) are hidden. Nodes come parents first, as React Flow keeps them.
 */
export function withBlockViews(nodes: readonly AnyNode[]): AnyNode[] {
  const hiddenInside = new Map<string, boolean>();
  return nodes.map((node) => {
    const hidden = node.parentId ? (hiddenInside.get(node.parentId) ?? false) : false;
    let next = node;
    if (node.type === 'group') {
      const data = node.data as GroupData;
      const expanded = isExpanded(data);
      hiddenInside.set(node.id, hidden || !expanded);
      const frame = data.frame ?? { width: CARD_WIDTH + 80, height: 160 };
      const style = expanded ? { width: frame.width, height: frame.height } : { width: CARD_WIDTH };
      if (node.style?.width !== style.width || node.style?.height !== (style as { height?: number }).height) {
        const { width: _w, height: _h, ...rest } = node;
        next = { ...rest, style } as AnyNode;
      }
    }
    return !!next.hidden === hidden ? next : { ...next, hidden };
  });
}

/** The ports of a card type, or of a block from its own declaration. */
export function portsOf(data: CardData | GroupData, catalogue?: CatalogueIndex): { inputs: PortSpec[]; outputs: PortSpec[] } {
  if ('bodyOrder' in data) return { inputs: data.ports?.inputs ?? [], outputs: blockOutputsOf(data) };
  const known = catalogue?.get(data.cardType);
  if (known) return { inputs: known.inputs, outputs: known.outputs };
  return data.ports ?? { inputs: [], outputs: [] };
}

interface LayoutItem {
  id: string;
  type: string;
  config?: Record<string, unknown>;
  inputs?: Record<string, string>;
  /** A precomputed size (a block's frame). */
  size?: { width: number; height: number };
}

/** Each card's column: right of every card it uses, and as near to the cards that use it as it can be. */
export function layersOf(items: readonly Pick<LayoutItem, 'id' | 'inputs'>[]): Map<string, number> {
  // As soon as possible: one more than the deepest card it uses ...
  const earliest = new Map<string, number>();
  const sources = new Map<string, string[]>();
  for (const item of items) {
    let depth = 0;
    const used: string[] = [];
    for (const ref of Object.values(item.inputs ?? {})) {
      const source = parseRef(ref);
      const above = source ? earliest.get(source.card) : undefined;
      if (above !== undefined) {
        depth = Math.max(depth, above + 1);
        used.push(source!.card);
      }
    }
    earliest.set(item.id, depth);
    sources.set(item.id, used);
  }
  // ... then as late as its users allow, so that a card stands beside the cards that use it (a training loop's
  // Prepare Batch next to its Forward Pass, not in one tall column with every other batch)
  const layer = new Map(earliest);
  const latest = new Map<string, number>();
  for (const item of [...items].reverse()) {
    const bound = latest.get(item.id);
    if (bound !== undefined) layer.set(item.id, Math.max(earliest.get(item.id)!, bound));
    for (const source of sources.get(item.id) ?? []) {
      const limit = layer.get(item.id)! - 1;
      latest.set(source, Math.min(latest.get(source) ?? Infinity, limit));
    }
  }
  return layer;
}

/**
 * Positions for cards in script order: a column per layer (a card stands right of every card it uses and as
 * near to the cards that use it as it can), cards in a column in script order, the columns
 * wrapped onto bands so that a long training loop reads left to right, top to bottom, like a page about as
 * wide as a screen.
 */
export function autoLayout(items: LayoutItem[], catalogue?: CatalogueIndex): Map<string, { x: number; y: number }> {
  const layer = layersOf(items);
  const columns: LayoutItem[][] = [];
  for (const item of items) {
    const l = layer.get(item.id)!;
    (columns[l] ??= []).push(item);
  }
  const sizeOf = (item: LayoutItem) => item.size ?? { width: CARD_WIDTH, height: estimateHeight(catalogue?.get(item.type), item.config) };
  const place = (perBand: number) => {
    const positions = new Map<string, { x: number; y: number }>();
    let bandY = 0;
    let width = 0;
    for (let start = 0; start < columns.length; start += perBand) {
      let bandHeight = 0;
      let x = 0;
      for (let c = start; c < Math.min(columns.length, start + perBand); c++) {
        const column = columns[c] ?? [];
        let y = bandY;
        let columnWidth = CARD_WIDTH;
        for (const item of column) {
          const size = sizeOf(item);
          positions.set(item.id, { x, y });
          y += size.height + ROW_GAP;
          columnWidth = Math.max(columnWidth, size.width);
        }
        bandHeight = Math.max(bandHeight, y - bandY);
        x += columnWidth + COLUMN_GAP;
      }
      width = Math.max(width, x - COLUMN_GAP);
      bandY += bandHeight + BAND_GAP;
    }
    return { positions, width, height: bandY - BAND_GAP };
  };
  // wrap the columns onto bands so that the whole reads like a page: about as wide as a screen is
  let best = place(Math.max(columns.length, 1));
  if (columns.length > MIN_COLUMNS_PER_BAND) {
    const score = (r: { width: number; height: number }) => Math.abs(Math.log(r.width / Math.max(r.height, 1) / TARGET_ASPECT));
    let bestScore = score(best);
    for (let perBand = MIN_COLUMNS_PER_BAND; perBand < Math.min(columns.length, MAX_COLUMNS_PER_BAND + 1); perBand++) {
      const candidate = place(perBand);
      const s = score(candidate);
      if (s < bestScore) {
        best = candidate;
        bestScore = s;
      }
    }
  }
  return best.positions;
}

function splitUi(ui: CardUi | undefined): {
  position?: { x: number; y: number };
  size?: { width: number; height: number };
  rest?: Record<string, unknown>;
} {
  if (!ui || typeof ui !== 'object') return {};
  const { position, size, ...rest } = ui;
  const validPosition =
    position && typeof position.x === 'number' && typeof position.y === 'number' ? { x: position.x, y: position.y } : undefined;
  const validSize =
    size && typeof size.width === 'number' && typeof size.height === 'number' ? { width: size.width, height: size.height } : undefined;
  return { position: validPosition, size: validSize, rest: Object.keys(rest).length ? rest : undefined };
}

function checkCards(cards: unknown, where: string): PipelineCardFile[] {
  if (!Array.isArray(cards)) throw new Error(`${where}: 'cards' must be a list of cards`);
  cards.forEach((card, i) => {
    if (!card || typeof card !== 'object') throw new Error(`${where}: card #${i + 1} must be a mapping with 'id' and 'type'`);
    const c = card as Partial<PipelineCardFile>;
    if (typeof c.id !== 'string' || !c.id) throw new Error(`${where}: card #${i + 1} has no 'id'`);
    if (typeof c.type !== 'string' || !c.type) throw new Error(`${where}: card '${c.id}' has no 'type'`);
  });
  return cards as PipelineCardFile[];
}

/** Build the canvas (nodes, edges, order) from a pipeline file. Throws an Error naming what is wrong. */
export function fromPipelineFile(file: PipelineFile, catalogue?: CatalogueIndex): GraphDoc {
  if (!file || typeof file !== 'object') throw new Error('a pipeline file must be a mapping with version and cards');
  if (file.version !== undefined && file.version !== 1) {
    throw new Error(`unknown pipeline format version ${JSON.stringify(file.version)}; the editor reads version 1`);
  }
  const cards = checkCards(file.cards, 'the pipeline');
  const nodes: AnyNode[] = [];
  const edges: LinkEdge[] = [];
  const built = buildScope(cards, null, catalogue, nodes, edges, []);
  const seen = new Map<string, string | undefined>();
  for (const node of nodes) {
    if (seen.has(node.id)) {
      const where = (scope: string | undefined) => (scope ? `block '${scope}'` : 'the pipeline');
      throw new Error(
        `card id '${node.id}' is used in ${where(seen.get(node.id))} and in ${where(node.parentId)}: the editor needs every card id to be unique`,
      );
    }
    seen.set(node.id, node.parentId);
  }
  return {
    nodes: withBlockViews(nodes),
    edges,
    order: built.order,
    name: typeof file.name === 'string' && file.name ? file.name : 'pipeline',
    description: typeof file.description === 'string' ? file.description : '',
  };
}

/**
 * Adds the nodes of one scope (the top level, or a block's body) to `nodes` — parents before children, as
 * React Flow wants — and their edges to `edges`. Returns the scope's order and the bounding size of its layout.
 */
function buildScope(
  cards: PipelineCardFile[],
  group: { id: string; inputs: Map<string, string> } | null,
  catalogue: CatalogueIndex | undefined,
  nodes: AnyNode[],
  edges: LinkEdge[],
  extraRefs: readonly string[],
): { order: string[]; width: number; height: number } {
  const ids = new Set(cards.map((c) => c.id));
  const outputKind = (ref: string) => {
    const r = parseRef(ref);
    const type = r && cards.find((c) => c.id === r.card)?.type;
    return (type && catalogue?.output(type, r!.port)?.kind) || undefined;
  };
  // Blocks first: their size is needed to lay the scope out.
  const blockSizes = new Map<string, { width: number; height: number }>();
  const bodies = new Map<
    string,
    {
      nodes: AnyNode[];
      edges: LinkEdge[];
      order: string[];
      ports: { inputs: PortSpec[]; outputs: PortSpec[] };
      frame: { width: number; height: number };
      innerExtra: PortSpec[];
    }
  >();
  for (const card of cards) {
    if (!card.body && card.type !== BLOCK_TYPE) continue;
    const body = card.body ?? { cards: [] };
    const bodyCards = checkCards(body.cards, `block '${card.id}'`);
    const bodyNodes: AnyNode[] = [];
    const bodyEdges: LinkEdge[] = [];
    const inputPorts = new Map<string, string>();
    const declared = catalogue?.get(card.type);
    for (const port of declared?.inputs ?? []) inputPorts.set(port.name, port.kind);
    for (const [name, ref] of Object.entries(card.inputs ?? {})) if (!inputPorts.has(name)) inputPorts.set(name, outputKind(ref) ?? 'any');
    // inside: the inputs, then iteration, the carried values, the item of `over`, and any other port the body uses
    const innerPorts = new Map(inputPorts);
    innerPorts.set('iteration', 'scalar');
    for (const name of carryNames(card.config ?? {})) if (!innerPorts.has(name)) innerPorts.set(name, 'any');
    if (inputPorts.has('over')) for (const p of ITEM_PORTS) innerPorts.set(p.name, p.kind);
    const innerExtra: PortSpec[] = [];
    for (const bodyCard of bodyCards) {
      for (const ref of Object.values(bodyCard.inputs ?? {})) {
        const r = parseRef(ref);
        if (r && r.card === card.id && !innerPorts.has(r.port)) {
          innerPorts.set(r.port, 'any');
          innerExtra.push({ name: r.port, kind: 'any', required: true });
        }
      }
    }
    const config = card.config ?? {};
    const bodyRefs = [
      ...Object.values(body.outputs ?? {}),
      ...(typeof config.until === 'string' ? [config.until] : []),
      ...Object.values(typeof config.carry === 'object' && config.carry ? config.carry : {}).map((c) =>
        String((c as { next?: unknown })?.next),
      ),
    ];
    const inner = buildScope(bodyCards, { id: card.id, inputs: innerPorts }, catalogue, bodyNodes, bodyEdges, bodyRefs);
    const outputs: PortSpec[] = declared?.outputs ?? [];
    const outputList = [...outputs];
    for (const [port, ref] of Object.entries(body.outputs ?? {})) {
      const r = parseRef(ref);
      if (!r) continue;
      const source = bodyNodes.find((n) => n.id === r.card && n.parentId === card.id);
      const kind =
        (source &&
          (catalogue?.output(source.data.cardType, r.port)?.kind ?? source.data.ports?.outputs.find((p) => p.name === r.port)?.kind)) ||
        'any';
      if (!outputList.some((p) => p.name === port)) outputList.push({ name: port, kind, required: true });
      if (source) bodyEdges.push(makeEdge(r.card, r.port, card.id, `out:${port}`, kind));
    }
    const ports = {
      // a loop block's ports come from its declaration in the file, whatever the catalogue says of `loop`
      inputs:
        (card.type !== BLOCK_TYPE && declared?.inputs) ||
        [...inputPorts].map(([name, kind]) => ({ name, kind, required: declared?.inputs.find((p) => p.name === name)?.required ?? true })),
      outputs: outputList,
    };
    const ui = splitUi(card.ui);
    const carried = carryNames(config).filter((n) => !outputList.some((p) => p.name === n)).length;
    const frame = ui.size ?? {
      width: Math.max(inner.width + GROUP_PAD.left + GROUP_PAD.right, CARD_WIDTH + 80),
      height: Math.max(
        inner.height + GROUP_PAD.top + GROUP_PAD.bottom,
        frameMinHeight(Math.max(innerPorts.size, outputList.length + carried)),
      ),
    };
    const rows = Math.max(ports.inputs.length, outputList.length + carried, 1);
    blockSizes.set(card.id, ui.rest?.expanded === true ? frame : { width: CARD_WIDTH, height: collapsedHeight(rows) });
    bodies.set(card.id, { nodes: bodyNodes, edges: bodyEdges, order: inner.order, ports, frame, innerExtra });
  }

  const needsLayout = cards.some((c) => !splitUi(c.ui).position);
  const layout = needsLayout
    ? autoLayout(
        cards.map((c) => ({ id: c.id, type: c.type, config: c.config, inputs: c.inputs, size: blockSizes.get(c.id) })),
        catalogue,
      )
    : new Map<string, { x: number; y: number }>();
  const offset = group ? { x: GROUP_PAD.left, y: GROUP_PAD.top } : { x: 0, y: 0 };

  let width = 0;
  let height = 0;
  const order: string[] = [];
  for (const card of cards) {
    const ui = splitUi(card.ui);
    const laid = layout.get(card.id) ?? { x: 0, y: 0 };
    const position = ui.position ?? { x: laid.x + offset.x, y: laid.y + offset.y };
    const data: CardData = { cardType: card.type, config: { ...(card.config ?? {}) } };
    if (ui.rest) data.ui = ui.rest;
    if (card.when !== undefined) data.when = card.when;
    if (card.resources !== undefined) data.resources = card.resources;
    if (catalogue?.types.size && !catalogue.get(card.type) && !bodies.has(card.id)) {
      // a card type the server does not know (a custom card not loaded): draw the ports the file shows it uses
      const outputs = new Set<string>();
      const seen = (ref: unknown) => {
        const r = parseRef(ref);
        if (r?.card === card.id) outputs.add(r.port);
      };
      for (const other of cards) for (const ref of Object.values(other.inputs ?? {})) seen(ref);
      extraRefs.forEach(seen);
      data.ports = {
        inputs: Object.keys(card.inputs ?? {}).map((name) => ({ name, kind: 'any', required: true })),
        outputs: [...outputs].map((name) => ({ name, kind: 'any', required: true })),
      };
    }
    const inScope = (ref: string) => {
      const r = parseRef(ref);
      if (!r) return null;
      if (group && r.card === group.id) return r;
      return ids.has(r.card) && r.card !== card.id ? r : null;
    };
    const broken: Record<string, string> = {};
    for (const [port, ref] of Object.entries(card.inputs ?? {})) {
      const r = inScope(ref);
      if (!r) {
        broken[port] = String(ref);
        continue;
      }
      if (group && r.card === group.id) {
        edges.push(makeEdge(group.id, `in:${r.port}`, card.id, port, group.inputs.get(r.port) ?? 'any'));
      } else {
        const source = bodies.get(r.card);
        const kind =
          (source ? source.ports.outputs.find((p) => p.name === r.port)?.kind : outputKind(ref)) || catalogue?.input(card.type, port)?.kind;
        edges.push(makeEdge(r.card, r.port, card.id, port, kind));
      }
    }
    if (Object.keys(broken).length) data.brokenInputs = broken;
    const body = bodies.get(card.id);
    let size = { width: CARD_WIDTH, height: estimateHeight(catalogue?.get(card.type), card.config) };
    if (body) {
      size = blockSizes.get(card.id)!;
      const groupData: GroupData = { ...data, bodyOrder: body.order, ports: body.ports, frame: body.frame };
      if (body.innerExtra.length) groupData.innerExtra = body.innerExtra;
      const node: GroupNode = { id: card.id, type: 'group', position, data: groupData };
      if (group) Object.assign(node, { parentId: group.id, extent: 'parent' as const });
      nodes.push(node, ...body.nodes);
      edges.push(...body.edges);
    } else {
      const node: AnyNode = { id: card.id, type: 'card', position, data };
      if (group) Object.assign(node, { parentId: group.id, extent: 'parent' as const });
      nodes.push(node);
    }
    width = Math.max(width, position.x - offset.x + size.width);
    height = Math.max(height, position.y - offset.y + size.height);
    order.push(card.id);
  }
  return { order, width, height };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The version-1 pipeline file of the canvas: cards in `order`, inputs from the edges, positions in `ui`. */
export function toPipelineFile(
  nodes: readonly AnyNode[],
  edges: readonly LinkEdge[],
  order: readonly string[],
  meta: { name?: string; description?: string } = {},
): PipelineFile {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const incoming = new Map<string, LinkEdge[]>();
  for (const edge of edges) {
    const list = incoming.get(edge.target) ?? [];
    list.push(edge);
    incoming.set(edge.target, list);
  }
  const children = new Map<string, AnyNode[]>();
  for (const node of nodes) {
    if (!node.parentId) continue;
    const list = children.get(node.parentId) ?? [];
    list.push(node);
    children.set(node.parentId, list);
  }

  const scopeCards = (ids: readonly string[], members: AnyNode[]): PipelineCardFile[] => {
    const seen = new Set<string>();
    const ordered: AnyNode[] = [];
    for (const id of ids) {
      const node = byId.get(id);
      if (node && members.includes(node) && !seen.has(id)) {
        ordered.push(node);
        seen.add(id);
      }
    }
    for (const node of members) if (!seen.has(node.id)) ordered.push(node);
    return ordered.map(cardOf);
  };

  const cardOf = (node: AnyNode): PipelineCardFile => {
    const card: PipelineCardFile = { id: node.id, type: node.data.cardType };
    const inputs: Record<string, string> = {};
    for (const edge of incoming.get(node.id) ?? []) {
      const port = edge.targetHandle ?? '';
      if (!port || port.startsWith('out:')) continue;
      const sourcePort = edge.sourceHandle ?? '';
      inputs[port] = `${edge.source}.${sourcePort.startsWith('in:') ? sourcePort.slice(3) : sourcePort}`;
    }
    for (const [port, ref] of Object.entries(node.data.brokenInputs ?? {})) if (!(port in inputs)) inputs[port] = ref;
    if (Object.keys(inputs).length) card.inputs = inputs;
    const config = Object.fromEntries(Object.entries(node.data.config ?? {}).filter(([, v]) => v !== undefined));
    if (Object.keys(config).length) card.config = config;
    if (node.data.when !== undefined) card.when = node.data.when;
    if (node.data.resources !== undefined) card.resources = node.data.resources;
    const ui: CardUi = { ...(node.data.ui ?? {}), position: { x: round(node.position.x), y: round(node.position.y) } };
    if (node.type === 'group') {
      const data = node.data as GroupData;
      const expanded = isExpanded(data);
      const width = Number(expanded ? (node.width ?? node.style?.width ?? node.measured?.width) : data.frame?.width);
      const height = Number(expanded ? (node.height ?? node.style?.height ?? node.measured?.height) : data.frame?.height);
      if (width && height) ui.size = { width: round(width), height: round(height) };
      const outputs: Record<string, string> = {};
      for (const edge of incoming.get(node.id) ?? []) {
        if (edge.targetHandle?.startsWith('out:')) outputs[edge.targetHandle.slice(4)] = `${edge.source}.${edge.sourceHandle}`;
      }
      card.body = { cards: scopeCards(data.bodyOrder ?? [], children.get(node.id) ?? []) };
      if (Object.keys(outputs).length) card.body.outputs = outputs;
    }
    card.ui = ui;
    return card;
  };

  const file: PipelineFile = {
    version: 1,
    name: meta.name || 'pipeline',
    cards: scopeCards(
      order,
      nodes.filter((n) => !n.parentId),
    ),
  };
  if (meta.description) file.description = meta.description;
  return file;
}

/** The file without the editor's `ui` blocks: what changes a result (used to tell edits from moves). */
export function withoutUi(file: PipelineFile): PipelineFile {
  const strip = (cards: PipelineCardFile[]): PipelineCardFile[] =>
    cards.map(({ ui: _ui, body, ...rest }) => (body ? { ...rest, body: { ...body, cards: strip(body.cards) } } : rest));
  return { ...file, cards: strip(file.cards) };
}
