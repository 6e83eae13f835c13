/** Looking things up in the card catalogue: card types, ports, kinds and their colours, legal links. */
import type { CardType, Catalogue, PortSpec } from './types';

const KIND_COLOURS: Record<string, string> = {
  dataframe: '#1f9e89',
  batch: '#d4a017',
  model: '#e4572e',
  optimizer: '#8e5cd9',
  scheduler: '#c2649a',
  tensor: '#2f7fe0',
  loss: '#c81d25',
  scalar: '#6b7785',
  info: '#4caf50',
  any: '#222222',
};

export function kindColour(kind: string): string {
  const known = KIND_COLOURS[kind];
  if (known) return known;
  let hash = 0;
  for (const ch of kind) hash = (hash * 31 + ch.charCodeAt(0)) | 0;
  return `hsl(${Math.abs(hash) % 360} 55% 45%)`;
}

/** A link is legal only between equal kinds, or into a port of kind `any` (as the server's `compatible`). */
export function compatible(outputKind: string, inputKind: string): boolean {
  return inputKind === 'any' || outputKind === inputKind;
}

export class CatalogueIndex {
  readonly types: Map<string, CardType>;
  readonly kinds: Record<string, string>;
  readonly categories: { category: string; types: CardType[] }[];

  constructor(readonly catalogue: Catalogue) {
    this.types = new Map(catalogue.cards.map((t) => [t.id, t]));
    this.kinds = catalogue.kinds;
    const groups = new Map<string, CardType[]>();
    for (const t of catalogue.cards) {
      const list = groups.get(t.category) ?? [];
      list.push(t);
      groups.set(t.category, list);
    }
    this.categories = [...groups.entries()].map(([category, types]) => ({ category, types }));
  }

  get(type: string): CardType | undefined {
    return this.types.get(type);
  }

  input(type: string, port: string): PortSpec | undefined {
    return this.types.get(type)?.inputs.find((p) => p.name === port);
  }

  output(type: string, port: string): PortSpec | undefined {
    return this.types.get(type)?.outputs.find((p) => p.name === port);
  }
}

export const EMPTY_CATALOGUE = new CatalogueIndex({ cards: [], kinds: {} });

/** A short id base for a new card of a type: `training_forward` -> `forward`. */
export function idBase(type: string): string {
  const base = type.replace(/^training_/, '').replace(/[^A-Za-z0-9_-]/g, '_');
  return /^[A-Za-z_]/.test(base) ? base : `card_${base}`;
}

/** The first id `base`, `base2`, `base3`, ... not in `taken`. */
export function freshId(base: string, taken: Set<string>): string {
  if (!taken.has(base)) return base;
  const digits = /\d+$/.exec(base);
  const stem = digits ? base.slice(0, digits.index) : base;
  for (let n = digits ? Number(digits[0]) + 1 : 2; ; n++) {
    const id = `${stem}${n}`;
    if (!taken.has(id)) return id;
  }
}

export const CARD_ID = /^[A-Za-z_][A-Za-z0-9_-]*$/;
