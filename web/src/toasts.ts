/** Short messages in a corner: why a link was refused, what was saved, what failed. */
import { createStore } from './store';

export type Tone = 'info' | 'error' | 'success';

/** A button in a message: what the message suggests, done in one click. */
export interface ToastAction {
  label: string;
  run: () => void;
}

export interface Toast {
  id: number;
  text: string;
  tone: Tone;
  action?: ToastAction;
}

export const toasts = createStore<{ items: Toast[] }>({ items: [] });
let next = 1;

/**
 * Show a message for `ms`. A success takes away the error messages before it: what they said is over (a run
 * that failed to start, then one that succeeded).
 */
export function toast(text: string, tone: Tone = 'info', ms = tone === 'error' ? 6000 : 3500, action?: ToastAction): void {
  const id = next++;
  toasts.set((s) => ({
    items: [...s.items.filter((t) => t.text !== text && !(tone === 'success' && t.tone === 'error')), { id, text, tone, action }].slice(-5),
  }));
  globalThis.setTimeout(() => dismiss(id), ms);
}

export function dismiss(id: number): void {
  toasts.set((s) => ({ items: s.items.filter((t) => t.id !== id) }));
}
