/** The card search that opens where the canvas was double-clicked or a link was dropped. */
import { useEffect, useMemo, useRef, useState } from 'react';
import { compatible, kindColour } from '../catalogue';
import { editor } from '../editor';
import { useStore } from '../store';
import type { CardType } from '../types';
import { ui } from '../ui';
import { matches } from './Palette';

export function CardSearch() {
  const request = useStore(ui, (s) => s.search);
  if (!request) return null;
  return <SearchPopup key={`${request.screen.x},${request.screen.y}`} />;
}

function SearchPopup() {
  const request = useStore(ui, (s) => s.search)!;
  const [query, setQuery] = useState('');
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  const link = request.link;
  const fits = useMemo(() => {
    if (!link) return () => true;
    return (t: CardType) =>
      link.handleType === 'source'
        ? t.inputs.some((p) => compatible(link.kind, p.kind))
        : t.outputs.some((p) => compatible(p.kind, link.kind));
  }, [link]);
  const results = useMemo(
    () => editor.catalogue.catalogue.cards.filter((t) => fits(t) && matches(t, query)),
    [fits, query],
  );
  useEffect(() => input.current?.focus(), []);
  useEffect(() => setActive(0), [query]);
  const close = () => ui.set({ search: null });
  const pick = (type: CardType | undefined) => {
    if (!type) return;
    close();
    editor.addCard(type.id, request.flow, link);
  };
  const left = Math.min(request.screen.x, window.innerWidth - 330);
  const top = Math.min(request.screen.y, window.innerHeight - 360);
  return (
    <div className="search-backdrop" onMouseDown={close}>
      <div
        className="card-search"
        style={{ left, top }}
        onMouseDown={(e) => e.stopPropagation()}
        data-testid="card-search"
        role="dialog"
        aria-label="add a card"
      >
        {link && (
          <div className="search-hint">
            cards with {link.handleType === 'source' ? 'an input' : 'an output'} for{' '}
            <i className="dot" style={{ background: kindColour(link.kind) }} /> <b>{link.kind}</b>
          </div>
        )}
        <input
          ref={input}
          type="search"
          placeholder="Add a card…"
          value={query}
          data-testid="card-search-input"
          onChange={(e) => setQuery(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Escape') close();
            else if (e.key === 'Enter') pick(results[active]);
            else if (e.key === 'ArrowDown') setActive((a) => Math.min(a + 1, results.length - 1));
            else if (e.key === 'ArrowUp') setActive((a) => Math.max(a - 1, 0));
            else return;
            e.preventDefault();
          }}
        />
        <ul>
          {results.length === 0 && <li className="muted">no card type fits</li>}
          {results.map((type, i) => (
            <li
              key={type.id}
              className={i === active ? 'active' : ''}
              onMouseEnter={() => setActive(i)}
              onClick={() => pick(type)}
              data-testid={`search-item-${type.id}`}
            >
              <span className="search-title">{type.title}</span>
              <span className="search-meta">
                {type.category} · {type.id}
              </span>
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}
