/** Short messages in a corner: why a link was refused, what was saved, what failed. */
import { createStore } from './store';

export type Tone = 'info' | 'error' | 'success';

export interface Toast {
  id: number;
  text: string;
  tone: Tone;
}

export const toasts = createStore<{ items: Toast[] }>({ items: [] });
let next = 1;

export function toast(text: string, tone: Tone = 'info', ms = tone === 'error' ? 6000 : 3500): void {
  const id = next++;
  toasts.set((s) => ({ items: [...s.items.filter((t) => t.text !== text), { id, text, tone }].slice(-5) }));
  window.setTimeout(() => dismiss(id), ms);
}

export function dismiss(id: number): void {
  toasts.set((s) => ({ items: s.items.filter((t) => t.id !== id) }));
}
