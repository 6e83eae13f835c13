/** The card types, grouped by category, with search; drag one onto the canvas (or click it) to add a card. */
import { memo, useMemo, useState, type DragEvent } from 'react';
import { kindColour, type CatalogueIndex } from '../catalogue';
import type { CardType } from '../types';

export const DRAG_TYPE = 'application/x-cardloop-card-type';

export function matches(type: CardType, query: string): boolean {
  const q = query.trim().toLowerCase();
  if (!q) return true;
  const text = [type.id, type.title, type.category, type.description, ...type.inputs.map((p) => `${p.name} ${p.kind}`), ...type.outputs.map((p) => `${p.name} ${p.kind}`)]
    .join(' ')
    .toLowerCase();
  return q.split(/\s+/).every((word) => text.includes(word));
}

function onDragStart(event: DragEvent, type: string) {
  event.dataTransfer.setData(DRAG_TYPE, type);
  event.dataTransfer.setData('text/plain', type);
  event.dataTransfer.effectAllowed = 'move';
}

export const Palette = memo(function Palette({ catalogue, onAdd }: { catalogue: CatalogueIndex; onAdd: (type: string) => void }) {
  const [query, setQuery] = useState('');
  const groups = useMemo(
    () => catalogue.categories.map((g) => ({ ...g, types: g.types.filter((t) => matches(t, query)) })).filter((g) => g.types.length),
    [catalogue, query],
  );
  return (
    <section className="palette" aria-label="card types">
      <h2>Cards</h2>
      <input
        className="palette-search"
        type="search"
        placeholder="Search card types…"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        data-testid="palette-search"
        aria-label="search card types"
      />
      {groups.length === 0 && <p className="muted">No card type matches “{query}”.</p>}
      {groups.map((group) => (
        <div className="palette-group" key={group.category}>
          <h3>{group.category}</h3>
          {group.types.map((type) => (
            <div
              key={type.id}
              className="palette-item"
              draggable
              onDragStart={(e) => onDragStart(e, type.id)}
              onClick={() => onAdd(type.id)}
              title={`${type.description}\n\nDrag onto the canvas, or click to add.`}
              data-testid={`palette-item-${type.id}`}
              role="button"
              tabIndex={0}
              onKeyDown={(e) => e.key === 'Enter' && onAdd(type.id)}
            >
              <span className="palette-title">{type.title}</span>
              <span className="palette-ports">
                {type.inputs.map((p) => (
                  <i key={`i${p.name}`} className={`dot kind-${p.kind}`} style={{ background: kindColour(p.kind) }} />
                ))}
                <span className="arrow">→</span>
                {type.outputs.map((p) => (
                  <i key={`o${p.name}`} className={`dot kind-${p.kind}`} style={{ background: kindColour(p.kind) }} />
                ))}
              </span>
              <span className="palette-id">{type.id}</span>
            </div>
          ))}
        </div>
      ))}
    </section>
  );
});

export const Legend = memo(function Legend({ kinds }: { kinds: Record<string, string> }) {
  return (
    <section className="legend" aria-label="port kinds" data-testid="kind-legend">
      <h2>Port kinds</h2>
      <ul>
        {Object.entries(kinds).map(([kind, description]) => (
          <li key={kind} title={description}>
            <i className={`dot kind-${kind}${kind === 'any' ? ' ring' : ''}`} style={{ background: kind === 'any' ? '#fff' : kindColour(kind), borderColor: kindColour(kind) }} />
            {kind}
          </li>
        ))}
      </ul>
      <p className="muted small">A link joins equal kinds, or goes into an input of kind <b>any</b>.</p>
    </section>
  );
});
