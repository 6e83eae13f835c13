/** The editor: palette, canvas, side panel, run panel; keyboard shortcuts; the dev harness. */
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useNodesInitialized,
  useReactFlow,
  type Connection,
  type FinalConnectionState,
  type NodeTypes,
  type OnConnectEnd,
} from '@xyflow/react';
import { useCallback, useEffect, useRef, useState, type DragEvent, type MouseEvent as ReactMouseEvent } from 'react';
import {
  announceRuns,
  fitSoon,
  groupSelection,
  guardUnload,
  markSaved,
  openExample,
  openFile,
  openSaved,
  restoreDraft,
  run,
  save,
  trackUnsaved,
  ungroupSelection,
} from './actions';
import { api } from './api';
import { benchPipeline, measureDrag, measureIdle, type BenchResult } from './bench';
import { CatalogueIndex, compatible } from './catalogue';
import { CardSearch } from './components/CardSearch';
import { ConnectionLine } from './components/ConnectionLine';
import { ContextMenu } from './components/ContextMenu';
import { Inspector } from './components/Inspector';
import { OpenPanel } from './components/OpenPanel';
import { DRAG_TYPE, Legend, Palette } from './components/Palette';
import { RunPanel } from './components/RunPanel';
import { ShortcutHelp } from './components/ShortcutHelp';
import { SweepView } from './components/SweepView';
import { Toasts } from './components/Toasts';
import { Toolbar } from './components/Toolbar';
import { annotations, startDerivations } from './derive';
import { editor } from './editor';
import { CardNode, LIGHT_COLOUR, lightOf } from './nodes/CardNode';
import { GroupNode } from './nodes/GroupNode';
import { CARD_WIDTH, estimateHeight } from './pipelineFile';
import { freeSpot } from './placement';
import { runs } from './runs';
import { useStore } from './store';
import { toast } from './toasts';
import type { AnyNode, PipelineFile } from './types';
import { ui } from './ui';

const NODE_TYPES: NodeTypes = { card: CardNode, group: GroupNode };
// Props handed to React Flow are constants: a new object or array on every render would make every edge and
// key listener update on every frame of a drag.
const DEFAULT_EDGE_OPTIONS = { interactionWidth: 12 };
const MULTI_SELECT_KEYS = ['Shift', 'Meta', 'Control'];
const PRO_OPTIONS = { hideAttribution: false };
const PARAMS = new URLSearchParams(window.location.search);
/** Render only the cards in view once a pipeline is this large. */
const VISIBLE_ONLY_FROM = Number(PARAMS.get('visibleOnlyFrom') ?? 150);

function isEditable(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || !el.tagName) return false;
  return el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName);
}

/** The minimap, each card filled with its status light's colour (re-drawn when a run's statuses change). */
function StatusMiniMap() {
  const cards = useStore(runs, (s) => s.cards);
  const unconfigured = useStore(annotations, (s) => s.unconfigured);
  const light = useCallback((node: AnyNode) => lightOf(unconfigured[node.id], cards[node.id]), [cards, unconfigured]);
  const colour = useCallback((node: AnyNode) => LIGHT_COLOUR[light(node)], [light]);
  const className = useCallback((node: AnyNode) => `light-${light(node)}`, [light]);
  return <MiniMap<AnyNode> pannable zoomable nodeColor={colour} nodeClassName={className} nodeStrokeWidth={0} />;
}

function Canvas() {
  const nodes = useStore(editor.doc, (s) => s.nodes);
  const edges = useStore(editor.doc, (s) => s.edges);
  const rf = useReactFlow<AnyNode>();
  const wrapper = useRef<HTMLDivElement>(null);

  const fitRequest = useStore(ui, (s) => s.fitRequest);
  const measured = useNodesInitialized();
  const fitted = useRef(0);
  useEffect(() => {
    if (fitRequest === fitted.current || (!measured && nodes.length > 0)) return;
    fitted.current = fitRequest;
    // An empty canvas goes back to zoom 1 instead: a fit asked with no cards would wait in React Flow and move
    // the view onto the first card dropped, away from where it was dropped.
    if (nodes.length === 0) void rf.setViewport({ x: 0, y: 0, zoom: 1 });
    else void rf.fitView({ padding: 0.08, maxZoom: 1.1, duration: 0 });
  }, [fitRequest, measured, nodes.length, rf]);

  const onConnect = useCallback((c: Connection) => {
    const problem = editor.connect(c);
    if (problem) toast(problem, 'error');
  }, []);

  const onConnectEnd: OnConnectEnd = useCallback(
    (event: MouseEvent | TouchEvent, state: FinalConnectionState) => {
      if (state.isValid || !state.fromNode || !state.fromHandle) return;
      const from = state.fromHandle;
      const fromNode = editor.doc.get().nodes.find((n) => n.id === state.fromNode!.id);
      if (!fromNode) return;
      const kind = editor.handleKind(fromNode, from.id, from.type);
      if (state.toHandle) {
        // released over a handle it may not join: say why
        const to = state.toHandle;
        const c =
          from.type === 'source'
            ? { source: fromNode.id, sourceHandle: from.id ?? null, target: to.nodeId, targetHandle: to.id ?? null }
            : { source: to.nodeId, sourceHandle: to.id ?? null, target: fromNode.id, targetHandle: from.id ?? null };
        const problem = editor.linkProblem(c);
        if (problem) toast(problem, 'error');
        return;
      }
      if (!kind) return;
      const point = 'changedTouches' in event ? event.changedTouches[0] : event;
      const target = document.elementFromPoint(point.clientX, point.clientY);
      const nodeEl = target?.closest('.react-flow__node') as HTMLElement | null;
      const overId = nodeEl?.dataset.id;
      if (overId && overId !== fromNode.id) {
        // released on a card's body: join the first free port that fits
        const over = editor.doc.get().nodes.find((n) => n.id === overId);
        if (!over) return;
        const ports = editor.portsOfNode(over);
        const taken = new Set(
          editor.doc
            .get()
            .edges.filter((e) => e.target === overId)
            .map((e) => e.targetHandle),
        );
        const candidates =
          from.type === 'source'
            ? ports.inputs.filter((p) => compatible(kind, p.kind)).sort((a, b) => Number(taken.has(a.name)) - Number(taken.has(b.name)))
            : ports.outputs.filter((p) => compatible(p.kind, kind));
        const port = candidates[0];
        if (!port) {
          toast(`card '${overId}' has no ${from.type === 'source' ? 'input' : 'output'} of kind ${kind}`, 'error');
          return;
        }
        onConnect(
          from.type === 'source'
            ? { source: fromNode.id, sourceHandle: from.id ?? null, target: overId, targetHandle: port.name }
            : { source: overId, sourceHandle: port.name, target: fromNode.id, targetHandle: from.id ?? null },
        );
        return;
      }
      ui.set({
        search: {
          screen: { x: point.clientX, y: point.clientY },
          flow: rf.screenToFlowPosition({ x: point.clientX, y: point.clientY }),
          link: { nodeId: fromNode.id, handleId: from.id ?? '', handleType: from.type, kind },
        },
      });
    },
    [rf, onConnect],
  );

  const onDragOver = useCallback((event: DragEvent) => {
    if (event.dataTransfer.types.includes(DRAG_TYPE)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = 'move';
    }
  }, []);

  const onDrop = useCallback(
    (event: DragEvent) => {
      const type = event.dataTransfer.getData(DRAG_TYPE);
      if (!type) return;
      event.preventDefault();
      const p = rf.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      editor.addCard(type, { x: p.x - CARD_WIDTH / 2, y: p.y - 16 });
    },
    [rf],
  );

  const onDoubleClick = useCallback(
    (event: ReactMouseEvent) => {
      const target = event.target as HTMLElement;
      if (!target.classList.contains('react-flow__pane')) return;
      ui.set({
        search: {
          screen: { x: event.clientX, y: event.clientY },
          flow: rf.screenToFlowPosition({ x: event.clientX, y: event.clientY }),
        },
      });
    },
    [rf],
  );

  const onNodeContextMenu = useCallback((event: ReactMouseEvent, node: AnyNode) => {
    event.preventDefault();
    if (!node.selected) editor.selectOnly([node.id]);
    ui.set({ menu: { x: event.clientX, y: event.clientY } });
  }, []);
  const onSelectionContextMenu = useCallback((event: ReactMouseEvent) => {
    event.preventDefault();
    ui.set({ menu: { x: event.clientX, y: event.clientY } });
  }, []);

  const onNodeDragStart = useCallback(() => editor.beginGesture(), []);
  const onNodeDragStop = useCallback(() => editor.endGesture(), []);

  return (
    <div className="canvas" ref={wrapper} onDragOver={onDragOver} onDrop={onDrop}>
      <ReactFlow<AnyNode>
        nodes={nodes}
        edges={edges}
        nodeTypes={NODE_TYPES}
        onNodesChange={editor.onNodesChange}
        onEdgesChange={editor.onEdgesChange}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
        isValidConnection={editor.isValidConnection}
        connectionLineComponent={ConnectionLine}
        connectionRadius={24}
        onNodeDragStart={onNodeDragStart}
        onNodeDragStop={onNodeDragStop}
        onSelectionDragStart={onNodeDragStart}
        onSelectionDragStop={onNodeDragStop}
        onDoubleClick={onDoubleClick}
        onNodeContextMenu={onNodeContextMenu}
        onSelectionContextMenu={onSelectionContextMenu}
        deleteKeyCode={null}
        selectionKeyCode="Shift"
        multiSelectionKeyCode={MULTI_SELECT_KEYS}
        zoomOnDoubleClick={false}
        onlyRenderVisibleElements={nodes.length >= VISIBLE_ONLY_FROM}
        minZoom={0.03}
        maxZoom={2.5}
        defaultEdgeOptions={DEFAULT_EDGE_OPTIONS}
        proOptions={PRO_OPTIONS}
      >
        <Background gap={24} size={1} />
        <StatusMiniMap />
        <Controls showInteractive={false} />
      </ReactFlow>
      {nodes.length === 0 && (
        <div className="empty-hint">
          <p>
            <b>An empty pipeline.</b> Open an example on the left, drag a card type from the palette, or double-click here to search for
            one.
          </p>
        </div>
      )}
    </div>
  );
}

function useShortcuts() {
  const rf = useReactFlow();
  useEffect(() => {
    let pasteTimer = 0;
    const onKey = (e: KeyboardEvent) => {
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (mod && e.key === 'Enter') {
        e.preventDefault();
        run();
        return;
      }
      if (mod && key === 's') {
        e.preventDefault();
        void save();
        return;
      }
      if (e.key === 'Escape') {
        if (ui.get().search || ui.get().help || ui.get().sweeps) ui.set({ search: null, help: false, sweeps: false });
        else if (!isEditable(e.target)) editor.selectOnly([]);
        return;
      }
      // inside a form field the browser's own editing (and its undo) stays in charge
      if (isEditable(e.target) || ui.get().search || ui.get().sweeps) return;
      if (mod && key === 'z') {
        e.preventDefault();
        if (e.shiftKey) editor.redo();
        else editor.undo();
      } else if (mod && key === 'y') {
        e.preventDefault();
        editor.redo();
      } else if (mod && key === 'c') {
        const n = editor.copy();
        if (n) toast(`copied ${n} card${n === 1 ? '' : 's'}`);
      } else if (mod && key === 'x') {
        if (editor.copy()) editor.deleteSelection();
      } else if (mod && key === 'v') {
        // the paste event (below) handles it when the browser sends one; otherwise paste our own clipboard
        window.clearTimeout(pasteTimer);
        pasteTimer = window.setTimeout(() => editor.paste(), 80);
      } else if (mod && key === 'd') {
        e.preventDefault();
        editor.duplicate();
      } else if (mod && key === 'g') {
        e.preventDefault();
        if (e.shiftKey) ungroupSelection();
        else groupSelection();
      } else if (mod && key === 'a') {
        e.preventDefault();
        editor.selectAll();
      } else if (!mod && (e.key === 'Delete' || e.key === 'Backspace')) {
        e.preventDefault();
        editor.deleteSelection();
      } else if (e.key === '?') {
        ui.set({ help: !ui.get().help });
      } else if (!mod && key === 'f') {
        fitSoon();
      }
    };
    const onCopy = (e: ClipboardEvent) => {
      if (isEditable(e.target) || !e.clipboardData) return;
      const file = editor.selectionAsFile();
      if (!file) return;
      e.clipboardData.setData('text/plain', JSON.stringify(file, null, 2));
      e.preventDefault();
    };
    const onPaste = (e: ClipboardEvent) => {
      if (isEditable(e.target)) return;
      window.clearTimeout(pasteTimer);
      const text = e.clipboardData?.getData('text/plain') ?? '';
      try {
        const file = JSON.parse(text) as PipelineFile;
        if (file && file.version === 1 && Array.isArray(file.cards) && file.cards.length) {
          editor.setClipboard(file);
        }
      } catch {
        /* not a pipeline: paste our own clipboard */
      }
      e.preventDefault();
      editor.paste();
    };
    window.addEventListener('keydown', onKey);
    document.addEventListener('copy', onCopy);
    document.addEventListener('paste', onPaste);
    return () => {
      window.removeEventListener('keydown', onKey);
      document.removeEventListener('copy', onCopy);
      document.removeEventListener('paste', onPaste);
    };
  }, [rf]);
}

function groupDemo(): PipelineFile {
  return {
    version: 1,
    name: 'block-demo',
    description: 'A loop block holding a sub-pipeline, expanded: its body inside the frame.',
    cards: [
      { id: 'data', type: 'data_load', config: { path: 'cardloop:diabetes.csv' }, ui: { position: { x: 0, y: 0 } } },
      { id: 'model', type: 'model_define', config: { input_dim: 10 }, ui: { position: { x: 0, y: 160 } } },
      { id: 'opt', type: 'training_init_optimizer', inputs: { model: 'model.model' }, ui: { position: { x: 0, y: 300 } } },
      {
        id: 'epoch',
        type: 'loop',
        inputs: { train_dataset: 'data.dataset', model: 'model.model', optimizer: 'opt.optimizer' },
        config: { times: 3 },
        ui: { position: { x: 340, y: -20 }, size: { width: 1180, height: 420 }, expanded: true },
        body: {
          cards: [
            {
              id: 'b_batch',
              type: 'training_prepare_batch',
              inputs: { train_dataset: 'epoch.train_dataset' },
              ui: { position: { x: 170, y: 60 } },
            },
            { id: 'b_zero', type: 'training_zero_grad', inputs: { optimizer: 'epoch.optimizer' }, ui: { position: { x: 170, y: 250 } } },
            {
              id: 'b_fwd',
              type: 'training_forward',
              inputs: { model: 'epoch.model', batch_data: 'b_batch.batch_data' },
              ui: { position: { x: 450, y: 60 } },
            },
            {
              id: 'b_loss',
              type: 'training_loss',
              inputs: { predictions: 'b_fwd.predictions', batch_data: 'b_batch.batch_data' },
              ui: { position: { x: 450, y: 220 } },
            },
            {
              id: 'b_back',
              type: 'training_backward',
              inputs: { loss: 'b_loss.loss', model: 'b_fwd.model' },
              ui: { position: { x: 720, y: 220 } },
            },
            {
              id: 'b_step',
              type: 'training_optimizer_step',
              inputs: { optimizer: 'b_zero.optimizer', model: 'b_back.model' },
              ui: { position: { x: 720, y: 40 } },
            },
          ],
          outputs: { model: 'b_step.model', optimizer: 'b_step.optimizer' },
        },
      },
      {
        id: 'evaluate',
        type: 'evaluate',
        inputs: { model: 'epoch.model', dataset: 'data.dataset' },
        ui: { position: { x: 1600, y: 100 } },
      },
    ],
  };
}

function BenchBox({ result }: { result: BenchResult | null }) {
  if (!result) return null;
  return (
    <pre className="bench-box" data-testid="bench-results">
      {JSON.stringify(result, null, 1)}
    </pre>
  );
}

/** ?bench=N: open N generated cards, then measure the first render and drag frame times. */
function useBench(ready: boolean): BenchResult | null {
  const size = Number(PARAMS.get('bench') ?? 0);
  const initialised = useNodesInitialized();
  const rf = useReactFlow();
  const started = useRef(0);
  const [result, setResult] = useState<BenchResult | null>(null);
  useEffect(() => {
    if (!ready || !size) return;
    started.current = performance.now();
    editor.load(benchPipeline(size));
    markSaved();
    // a view of a few dozen cards, as someone working on the pipeline would have
    requestAnimationFrame(() => void rf.setViewport({ x: 40, y: 40, zoom: Number(PARAMS.get('zoom') ?? 0.5) }));
  }, [ready, size, rf]);
  useEffect(() => {
    if (!size || !initialised || !started.current || result) return;
    requestAnimationFrame(() => {
      const now = performance.now();
      const d = editor.doc.get();
      const first: BenchResult = {
        cards: d.nodes.length,
        links: d.edges.length,
        renderedNodes: document.querySelectorAll('.react-flow__node').length,
        firstRenderMs: Math.round(now - started.current),
        sincePageStartMs: Math.round(now),
      };
      setResult(first);
      window.__cardloopBench = first;
      void (async () => {
        await new Promise((r) => setTimeout(r, 500));
        const idle = await measureIdle(60);
        const card =
          document.querySelector<HTMLElement>('.react-flow__node[data-id="fwd3"]') ??
          document.querySelector<HTMLElement>('.react-flow__node');
        const dragOne = card ? await measureDrag(card, 120) : undefined;
        const ids = editor.doc.get().order.slice(5, 55);
        editor.selectOnly(ids);
        await new Promise((r) => setTimeout(r, 200));
        const shown = ids.filter((id) => document.querySelector(`.react-flow__node[data-id="${id}"]`));
        const selected = document.querySelector<HTMLElement>(`.react-flow__node[data-id="${shown[Math.floor(shown.length / 2)]}"]`);
        const dragFifty = selected ? await measureDrag(selected, 120) : undefined;
        const full = { ...first, idle, dragOne, dragFifty };
        window.__cardloopBench = full;
        console.log('cardloop bench', JSON.stringify(full));
        setResult(full);
      })();
    });
  }, [size, initialised, result]);
  return result;
}

function Editor() {
  const [catalogue, setCatalogue] = useState<CatalogueIndex | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const rf = useReactFlow();
  useShortcuts();
  useEffect(() => {
    const stopDerive = startDerivations();
    const stopUnsaved = trackUnsaved(!PARAMS.get('bench'));
    const stopGuard = guardUnload();
    const stopAnnounce = announceRuns();
    return () => {
      stopDerive();
      stopUnsaved();
      stopGuard();
      stopAnnounce();
    };
  }, []);
  useEffect(() => {
    api
      .cards()
      .then((c) => {
        const index = new CatalogueIndex(c);
        editor.catalogue = index;
        setCatalogue(index);
        if (PARAMS.get('bench')) return;
        if (PARAMS.get('demo') === 'group') openFile(groupDemo(), 'the block demo');
        else if (PARAMS.get('example')) void openExample(PARAMS.get('example')!);
        else if (PARAMS.get('pipeline')) void openSaved(PARAMS.get('pipeline')!);
        else if (!restoreDraft()) markSaved();
      })
      .catch((e) => setFailure(e instanceof Error ? e.message : String(e)));
  }, []);
  const bench = useBench(!!catalogue);
  const addAtCentre = useCallback(
    (type: string) => {
      const el = document.querySelector('.canvas');
      const box = el?.getBoundingClientRect();
      const nodes = editor.doc.get().nodes;
      const centre = rf.screenToFlowPosition({
        x: (box?.left ?? 0) + (box?.width ?? 800) / 2,
        y: (box?.top ?? 0) + (box?.height ?? 600) / 2,
      });
      const size = { width: CARD_WIDTH, height: estimateHeight(editor.catalogue.get(type)) };
      const taken = nodes
        .filter((n) => !n.parentId)
        .map((n) => ({ ...n.position, width: n.measured?.width ?? CARD_WIDTH, height: n.measured?.height ?? size.height }));
      editor.addCard(type, freeSpot({ x: centre.x - size.width / 2, y: centre.y - size.height / 2 }, size, taken));
    },
    [rf],
  );
  if (failure) {
    return (
      <div className="fatal">
        <h1>cardloop</h1>
        <p>The editor cannot reach the cardloop server: {failure}</p>
        <p>
          Start it with <code>cardloop serve</code> and reload this page.
        </p>
      </div>
    );
  }
  return (
    <div className="app">
      <Toolbar />
      <div className="main">
        <aside className="sidebar">
          <OpenPanel />
          {catalogue ? <Palette catalogue={catalogue} onAdd={addAtCentre} /> : <p className="muted">loading cards…</p>}
          {catalogue && <Legend kinds={catalogue.kinds} />}
        </aside>
        <Canvas />
        <Inspector />
      </div>
      <RunPanel />
      <CardSearch />
      <ShortcutHelp />
      <SweepView />
      <Toasts />
      <ContextMenu />
      <BenchBox result={bench} />
    </div>
  );
}

export function App() {
  return (
    <ReactFlowProvider>
      <Editor />
    </ReactFlowProvider>
  );
}
