/**
 * The script order. A pipeline is an ordered list of cards and a card may only use outputs of cards above it.
 * When a new link makes a card use one below it, the user card and what depends on it move down after the
 * source: a topological sort that keeps the existing order wherever the links allow (Kahn's algorithm, always
 * taking the ready card that stood highest).
 */

export interface Link {
  source: string;
  target: string;
}

/** Min-heap of positions. */
class Heap {
  private items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(value: number): void {
    const a = this.items;
    a.push(value);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= a[i]) break;
      [a[parent], a[i]] = [a[i], a[parent]];
      i = parent;
    }
  }
  pop(): number {
    const a = this.items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * An order of `order`'s ids in which every link's source stands above its target, as close to `order` as the
 * links allow; null when the links make a cycle. Links between ids not in `order` are ignored.
 */
export function stableTopoOrder(order: readonly string[], links: readonly Link[]): string[] | null {
  const index = new Map(order.map((id, i) => [id, i]));
  const indegree = new Array<number>(order.length).fill(0);
  const out: number[][] = order.map(() => []);
  const seen = new Set<string>();
  for (const { source, target } of links) {
    const s = index.get(source);
    const t = index.get(target);
    if (s === undefined || t === undefined || s === t) continue;
    const key = `${s}>${t}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out[s].push(t);
    indegree[t]++;
  }
  const ready = new Heap();
  indegree.forEach((d, i) => d === 0 && ready.push(i));
  const result: string[] = [];
  while (ready.size) {
    const i = ready.pop();
    result.push(order[i]);
    for (const t of out[i]) if (--indegree[t] === 0) ready.push(t);
  }
  return result.length === order.length ? result : null;
}

/** Whether every link's source stands above its target in `order`. */
export function isConsistent(order: readonly string[], links: readonly Link[]): boolean {
  const index = new Map(order.map((id, i) => [id, i]));
  return links.every((l) => {
    const s = index.get(l.source);
    const t = index.get(l.target);
    return s === undefined || t === undefined || s < t;
  });
}

/** Whether a new link source -> target would close a cycle (target already reaches source, or they are one). */
export function wouldCycle(links: readonly Link[], source: string, target: string): boolean {
  if (source === target) return true;
  const out = new Map<string, string[]>();
  for (const l of links) {
    const list = out.get(l.source) ?? [];
    list.push(l.target);
    out.set(l.source, list);
  }
  const stack = [target];
  const visited = new Set<string>();
  while (stack.length) {
    const id = stack.pop()!;
    if (id === source) return true;
    if (visited.has(id)) continue;
    visited.add(id);
    for (const next of out.get(id) ?? []) stack.push(next);
  }
  return false;
}

/**
 * Move `id` by `delta` places (negative: up) if the links allow it; returns the new order, or a sentence
 * saying why not.
 */
export function moveInOrder(order: readonly string[], links: readonly Link[], id: string, delta: number): string[] | string {
  const from = order.indexOf(id);
  if (from < 0) return `card '${id}' is not in the script`;
  const to = Math.max(0, Math.min(order.length - 1, from + delta));
  if (to === from) return delta < 0 ? `card '${id}' is already first` : `card '${id}' is already last`;
  const next = [...order];
  next.splice(from, 1);
  next.splice(to, 0, id);
  if (isConsistent(next, links)) return next;
  const other = order[to];
  return delta < 0
    ? `card '${id}' uses card '${other}', so it must stay below it`
    : `card '${other}' uses card '${id}', so '${id}' must stay above it`;
}
