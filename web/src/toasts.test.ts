import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { toast, toasts } from './toasts';

beforeEach(() => {
  vi.useFakeTimers();
  toasts.set({ items: [] });
});
afterEach(() => vi.useRealTimers());

describe('toast', () => {
  it('takes the error messages away when a later success is shown', () => {
    toast('the run did not start: no', 'error');
    toast('copied 2 cards');
    toast('run succeeded', 'success');
    expect(toasts.get().items.map((t) => [t.text, t.tone])).toEqual([
      ['copied 2 cards', 'info'],
      ['run succeeded', 'success'],
    ]);
  });

  it('keeps an earlier error when the later message is not a success', () => {
    toast('the run did not start: no', 'error');
    toast('copied 2 cards');
    expect(toasts.get().items.map((t) => t.tone)).toEqual(['error', 'info']);
  });

  it('lets a message go after its time', () => {
    toast('saved', 'success', 1000);
    vi.advanceTimersByTime(1001);
    expect(toasts.get().items).toEqual([]);
  });
});
