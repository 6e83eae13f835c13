import { describe, expect, it } from 'vitest';
import { DRAFT_KEY, readDraft, writeDraft, type DraftStorage } from './draft';
import type { PipelineFile } from './types';

/** Web Storage as the page has it: strings by key. */
class MemoryStorage implements DraftStorage {
  items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

const file: PipelineFile = { version: 1, name: 'mine', cards: [{ id: 'data', type: 'data_load', config: { path: 'x.csv' } }] };

describe('draft', () => {
  it('reads back the pipeline and its saved text as written', () => {
    const storage = new MemoryStorage();
    writeDraft(storage, JSON.stringify(file), '{"version":1}');
    expect(readDraft(storage)).toEqual({ file, savedText: '{"version":1}' });
  });

  it('is null when nothing was kept', () => {
    expect(readDraft(new MemoryStorage())).toBeNull();
  });

  it('is null when what was kept is not a version-1 pipeline', () => {
    const storage = new MemoryStorage();
    storage.setItem(DRAFT_KEY, 'not json');
    expect(readDraft(storage)).toBeNull();
    storage.setItem(DRAFT_KEY, JSON.stringify({ file: { version: 2, cards: [] }, savedText: '' }));
    expect(readDraft(storage)).toBeNull();
  });
});
