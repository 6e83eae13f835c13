/** Where a card added without a drop point goes: near the middle of the view, on a spot no card covers. */

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Space left between a new card and the cards around it. */
export const PLACE_GAP = 24;
const MAX_ROWS = 200;
/** Columns tried on each row: the target's, then alternately right and left of it. */
const COLUMN_STEPS = [0, 1, -1, 2, -2];

function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/**
 * The top-left corner for a card of `size` at `target` or, when cards are there, the nearest free spot on a grid
 * of card-sized steps from it (row by row downwards, each row from the target's column outwards), a gap clear
 * of every card in `boxes`.
 */
export function freeSpot(target: { x: number; y: number }, size: { width: number; height: number }, boxes: readonly Box[]): { x: number; y: number } {
  const stepX = size.width + PLACE_GAP;
  const stepY = size.height + PLACE_GAP;
  for (let row = 0; row < MAX_ROWS; row++) {
    for (const column of COLUMN_STEPS) {
      const spot = { x: target.x + column * stepX, y: target.y + row * stepY };
      const padded = { x: spot.x - PLACE_GAP / 2, y: spot.y - PLACE_GAP / 2, width: stepX, height: stepY };
      if (!boxes.some((b) => overlaps(padded, b))) return spot;
    }
  }
  return target;
}
