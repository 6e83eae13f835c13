/** The shortcut reference ("?"). */
import { useStore } from '../store';
import { ui } from '../ui';

export const SHORTCUTS: [string, string][] = [
  ['Ctrl+Enter', 'run the pipeline'],
  ['Ctrl+Z', 'undo (outside form fields)'],
  ['Ctrl+Shift+Z / Ctrl+Y', 'redo'],
  ['Ctrl+C / Ctrl+V', 'copy / paste the selected cards'],
  ['Ctrl+D', 'duplicate the selected cards'],
  ['Delete / Backspace', 'delete the selected cards and links'],
  ['Ctrl+A', 'select every card'],
  ['Ctrl+G', 'group the selected cards into a loop block (also: right click)'],
  ['Ctrl+Shift+G', 'ungroup the selected block'],
  ['Shift+drag', 'select cards in a box'],
  ['Shift+click', 'add a card to the selection'],
  ['Ctrl+S', 'save'],
  ['double-click the canvas', 'search card types to add one there'],
  ['drop a link on the canvas', 'add a card that fits it, already wired'],
  ['arrow keys', 'move the selected cards'],
  ['F', 'fit the pipeline to the view'],
  ['Escape', 'close a popup, clear the selection'],
  ['?', 'this reference'],
];

export function ShortcutHelp() {
  const open = useStore(ui, (s) => s.help);
  if (!open) return null;
  const close = () => ui.set({ help: false });
  return (
    <div className="modal-backdrop" onClick={close}>
      <div className="modal" role="dialog" aria-label="keyboard shortcuts" data-testid="shortcut-help" onClick={(e) => e.stopPropagation()}>
        <header>
          <h2>Shortcuts</h2>
          <button className="icon" onClick={close} aria-label="close">
            ✕
          </button>
        </header>
        <table>
          <tbody>
            {SHORTCUTS.map(([keys, what]) => (
              <tr key={keys}>
                <td>
                  {keys.split(' / ').map((k, i) => (
                    <span key={k}>
                      {i > 0 && ' / '}
                      <kbd>{k}</kbd>
                    </span>
                  ))}
                </td>
                <td>{what}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <p className="muted small">On a Mac, Cmd works wherever Ctrl is written.</p>
      </div>
    </div>
  );
}
