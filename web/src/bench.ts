/**
 * A dev harness for performance: `?bench=500` opens a generated pipeline of that many cards (the guide's
 * training loop, repeated) and measures the time to the first complete render and the frame times while
 * dragging one card and then a selection of 50, with performance.now() in a requestAnimationFrame loop.
 * The figures appear in a box on the page, on `window.__cardloopBench`, and in the console.
 */
import type { PipelineFile } from './types';

export function benchPipeline(size: number): PipelineFile {
  const cards: PipelineFile['cards'] = [
    { id: 'data', type: 'data_load', config: { path: 'cardloop:diabetes.csv' } },
    { id: 'split', type: 'data_split', inputs: { dataset: 'data.dataset' } },
    { id: 'normalize', type: 'data_normalize', inputs: { train_dataset: 'split.train_dataset', test_dataset: 'split.test_dataset' }, config: { normalize_targets: true } },
    { id: 'model', type: 'model_define', config: { input_dim: 10, layers: [64, 64], seed: 0 } },
    { id: 'opt', type: 'training_init_optimizer', inputs: { model: 'model.model' }, config: { learning_rate: 0.01 } },
  ];
  let model = 'model.model';
  let optimizer = 'opt.optimizer';
  for (let i = 0; cards.length + 6 <= size - 1; i++) {
    cards.push(
      { id: `batch${i}`, type: 'training_prepare_batch', inputs: { train_dataset: 'normalize.train_dataset' }, config: { batch_index: i % 11, batch_size: 32 } },
      { id: `zero${i}`, type: 'training_zero_grad', inputs: { optimizer } },
      { id: `fwd${i}`, type: 'training_forward', inputs: { model, batch_data: `batch${i}.batch_data` }, config: { batch_index: i } },
      { id: `loss${i}`, type: 'training_loss', inputs: { predictions: `fwd${i}.predictions`, batch_data: `batch${i}.batch_data` } },
      { id: `back${i}`, type: 'training_backward', inputs: { loss: `loss${i}.loss`, model: `fwd${i}.model` } },
      { id: `step${i}`, type: 'training_optimizer_step', inputs: { optimizer: `zero${i}.optimizer`, model: `back${i}.model` } },
    );
    model = `step${i}.model`;
    optimizer = `step${i}.optimizer`;
  }
  while (cards.length < size) {
    const n = cards.length;
    cards.push({ id: `eval${n}`, type: 'evaluate', inputs: { model, dataset: 'normalize.test_dataset' } });
  }
  return { version: 1, name: `bench-${size}`, description: `${size} generated cards for measuring the editor`, cards };
}

export interface FrameStats {
  frames: number;
  meanMs: number;
  p95Ms: number;
  maxMs: number;
}

function stats(deltas: number[]): FrameStats {
  const sorted = [...deltas].sort((a, b) => a - b);
  const mean = deltas.reduce((a, b) => a + b, 0) / Math.max(1, deltas.length);
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    frames: deltas.length,
    meanMs: round(mean),
    p95Ms: round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? 0),
    maxMs: round(sorted[sorted.length - 1] ?? 0),
  };
}

const nextFrame = () => new Promise<number>((resolve) => requestAnimationFrame(resolve));

function mouse(type: string, target: EventTarget, x: number, y: number): void {
  target.dispatchEvent(new MouseEvent(type, { clientX: x, clientY: y, button: 0, buttons: type === 'mouseup' ? 0 : 1, bubbles: true, cancelable: true, view: window }));
}

/** Drag the card element `el` along a path for `frames` frames, one mouse move per frame. */
export async function measureDrag(el: HTMLElement, frames = 120): Promise<FrameStats> {
  const box = el.getBoundingClientRect();
  const x0 = box.left + box.width / 2;
  const y0 = box.top + 12;
  mouse('mousedown', el, x0, y0);
  await nextFrame();
  const deltas: number[] = [];
  let last = performance.now();
  for (let i = 1; i <= frames; i++) {
    const angle = (i / frames) * Math.PI * 2;
    mouse('mousemove', window, x0 + Math.sin(angle) * 120, y0 + (1 - Math.cos(angle)) * 60);
    const now = await nextFrame();
    deltas.push(now - last);
    last = now;
  }
  mouse('mouseup', window, x0, y0);
  await nextFrame();
  return stats(deltas);
}

export interface BenchResult {
  cards: number;
  links: number;
  renderedNodes: number;
  firstRenderMs: number;
  sincePageStartMs: number;
  dragOne?: FrameStats;
  dragFifty?: FrameStats;
  idle?: FrameStats;
}

export async function measureIdle(frames = 60): Promise<FrameStats> {
  const deltas: number[] = [];
  let last = await nextFrame();
  for (let i = 0; i < frames; i++) {
    const now = await nextFrame();
    deltas.push(now - last);
    last = now;
  }
  return stats(deltas);
}

declare global {
  interface Window {
    __cardloopBench?: BenchResult;
  }
}
