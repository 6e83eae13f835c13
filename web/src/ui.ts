/** State of the editor's chrome: the card search popup, the shortcut sheet, run settings, the unsaved marker. */
import type { PendingLink } from './editor';
import { createStore } from './store';

export interface SearchRequest {
  /** Where the popup opens, in screen coordinates. */
  screen: { x: number; y: number };
  /** Where the chosen card goes, in flow coordinates. */
  flow: { x: number; y: number };
  /** Set when a link was dropped on empty canvas: only card types that fit it, and the card arrives wired. */
  link?: PendingLink;
}

export interface UiState {
  search: SearchRequest | null;
  help: boolean;
  /** A registered executor's name (the toolbar offers GET /api/executors' list). */
  executor: string;
  /** For the ray executor: the cluster to join (HOST:PORT or ray://HOST:PORT); empty, a Ray started on this machine. */
  rayAddress: string;
  persist: 'checkpoint' | 'all';
  /** Serve unchanged cards from the store (off: run every card again). */
  cache: boolean;
  unsaved: boolean;
  runPanel: boolean;
  /** Bumps when the saved pipelines may have changed. */
  savedVersion: number;
  /** Bumps when the view should fit the pipeline (once its cards are measured). */
  fitRequest: number;
  /** The context menu of the canvas (right click on a card or a selection), in screen coordinates. */
  menu: { x: number; y: number } | null;
  /** The iteration chosen for each loop block (0-based) whose body cards' previews are shown. */
  iterations: Record<string, number>;
  /** The sweep view is open. */
  sweeps: boolean;
}

export const ui = createStore<UiState>({
  search: null,
  help: false,
  executor: 'local',
  rayAddress: '',
  persist: 'checkpoint',
  cache: true,
  unsaved: false,
  runPanel: true,
  savedVersion: 0,
  fitRequest: 0,
  menu: null,
  iterations: {},
  sweeps: false,
});
