/**
 * The open pipeline kept in the browser (localStorage) as it is edited, so that a reload or a closed tab
 * reopens it as it was: the file, and the file as last saved (to tell whether edits are still unsaved).
 */
import type { PipelineFile } from './types';

export const DRAFT_KEY = 'cardloop.editor.draft';

export interface Draft {
  file: PipelineFile;
  /** The pipeline as last saved or opened (its JSON text): the draft is unsaved when it differs. */
  savedText: string;
}

/** The part of the Web Storage API the draft uses (localStorage in the page). */
export type DraftStorage = Pick<Storage, 'getItem' | 'setItem'>;

/** Keep a pipeline given as its JSON text (what the unsaved check has just made), with its saved text. */
export function writeDraft(storage: DraftStorage, fileText: string, savedText: string): void {
  try {
    storage.setItem(DRAFT_KEY, `{"file":${fileText},"savedText":${JSON.stringify(savedText)}}`);
  } catch {
    /* storage full or refused (a private window): the page still works, it just forgets on reload */
  }
}

/** The kept draft, or null when there is none or what is kept is not a version-1 pipeline. */
export function readDraft(storage: DraftStorage): Draft | null {
  let draft: Partial<Draft> | null;
  try {
    draft = JSON.parse(storage.getItem(DRAFT_KEY) ?? 'null');
  } catch {
    return null;
  }
  const file = draft?.file;
  if (!file || file.version !== 1 || !Array.isArray(file.cards) || typeof draft?.savedText !== 'string') return null;
  return { file, savedText: draft.savedText };
}
