import { describe, expect, it } from 'vitest';
import { isConsistent, moveInOrder, stableTopoOrder, wouldCycle } from './order';

const l = (source: string, target: string) => ({ source, target });

describe('stableTopoOrder', () => {
  it('keeps an order that already fits the links', () => {
    expect(stableTopoOrder(['a', 'b', 'c', 'd'], [l('a', 'c'), l('b', 'd')])).toEqual(['a', 'b', 'c', 'd']);
  });

  it('moves the user card down right after its new source, the rest staying put', () => {
    expect(stableTopoOrder(['a', 't', 'b', 's', 'c'], [l('s', 't')])).toEqual(['a', 'b', 's', 't', 'c']);
  });

  it('moves what depends on the user card along with it', () => {
    const order = ['t', 'x', 'y', 's', 'z'];
    expect(stableTopoOrder(order, [l('t', 'x'), l('s', 't')])).toEqual(['y', 's', 't', 'x', 'z']);
  });

  it('says null for a cycle', () => {
    expect(stableTopoOrder(['a', 'b'], [l('a', 'b'), l('b', 'a')])).toBeNull();
  });

  it('handles 500 cards quickly', () => {
    const order = Array.from({ length: 500 }, (_, i) => `c${i}`);
    const links = order.slice(1).map((id, i) => l(order[i], id));
    links.push(l('c499', 'c0'));
    expect(stableTopoOrder(order, links.slice(0, -1))).toEqual(order);
    expect(stableTopoOrder(order, links)).toBeNull();
  });
});

describe('wouldCycle / isConsistent / moveInOrder', () => {
  const links = [l('a', 'b'), l('b', 'c')];
  it('finds cycles', () => {
    expect(wouldCycle(links, 'c', 'a')).toBe(true);
    expect(wouldCycle(links, 'a', 'c')).toBe(false);
    expect(wouldCycle(links, 'a', 'a')).toBe(true);
  });
  it('checks an order', () => {
    expect(isConsistent(['a', 'b', 'c'], links)).toBe(true);
    expect(isConsistent(['b', 'a', 'c'], links)).toBe(false);
  });
  it('moves a card only where the links allow', () => {
    expect(moveInOrder(['a', 'x', 'b'], links, 'x', -1)).toEqual(['x', 'a', 'b']);
    expect(moveInOrder(['a', 'b', 'c'], links, 'b', -1)).toMatch(/uses card 'a'/);
    expect(moveInOrder(['a', 'b', 'c'], links, 'b', 1)).toMatch(/'c' uses card 'b'/);
  });
});
