/** The canvas's context menu (right click on a card or a selection): group into a loop, ungroup, expand. */
import { useEffect } from 'react';
import { groupSelection, ungroupSelection } from '../actions';
import { isExpanded } from '../blocks';
import { editor } from '../editor';
import { useStore } from '../store';
import { ui } from '../ui';

export function ContextMenu() {
  const menu = useStore(ui, (s) => s.menu);
  const selected = useStore(editor.doc, (s) =>
    s.nodes
      .filter((n) => n.selected)
      .map((n) => n.id)
      .join('\n'),
  );
  useEffect(() => {
    if (!menu) return;
    const close = () => ui.set({ menu: null });
    window.addEventListener('pointerdown', close);
    window.addEventListener('keydown', close);
    return () => {
      window.removeEventListener('pointerdown', close);
      window.removeEventListener('keydown', close);
    };
  }, [menu]);
  if (!menu) return null;
  const ids = selected ? selected.split('\n') : [];
  const block =
    ids.length === 1 ? editor.doc.get().nodes.find((n) => n.id === ids[0] && n.type === 'group') : undefined;
  const act = (what: () => void) => () => {
    ui.set({ menu: null });
    what();
  };
  return (
    <div
      className="context-menu"
      style={{ left: menu.x, top: menu.y }}
      data-testid="context-menu"
      role="menu"
      onPointerDown={(e) => e.stopPropagation()}
    >
      {ids.length > 0 && (
        <button role="menuitem" onClick={act(groupSelection)} data-testid="menu-group">
          Group into loop <span className="muted small">Ctrl+G</span>
        </button>
      )}
      {block && (
        <>
          <button role="menuitem" onClick={act(ungroupSelection)} data-testid="menu-ungroup">
            Ungroup <span className="muted small">Ctrl+Shift+G</span>
          </button>
          <button
            role="menuitem"
            onClick={act(() => editor.setExpanded(block.id, !isExpanded(block.data)))}
            data-testid="menu-expand"
          >
            {isExpanded(block.data) ? 'Collapse' : 'Expand'}
          </button>
        </>
      )}
    </div>
  );
}
