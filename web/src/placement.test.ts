import { describe, expect, it } from 'vitest';
import { freeSpot, PLACE_GAP, type Box } from './placement';

const size = { width: 240, height: 100 };
const overlap = (a: Box, b: Box) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe('freeSpot', () => {
  it('puts a card on an empty canvas exactly at the target', () => {
    expect(freeSpot({ x: 10, y: 20 }, size, [])).toEqual({ x: 10, y: 20 });
  });

  it('puts five cards added at the same target side by side, none overlapping another', () => {
    const boxes: Box[] = [];
    for (let i = 0; i < 5; i++) boxes.push({ ...freeSpot({ x: 0, y: 0 }, size, boxes), ...size });
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) expect(overlap(a, b), JSON.stringify([a, b])).toBe(false);
    }
    expect(boxes[1]).toMatchObject({ x: size.width + PLACE_GAP, y: 0 }); // the next slot, a card's width away
  });

  it('moves down a row when the row of the target is full', () => {
    const row = [-2, -1, 0, 1, 2].map((c) => ({ x: c * (size.width + PLACE_GAP), y: 0, ...size }));
    expect(freeSpot({ x: 0, y: 0 }, size, row)).toEqual({ x: 0, y: size.height + PLACE_GAP });
  });
});
