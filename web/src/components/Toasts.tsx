import { dismiss, toasts } from '../toasts';
import { useStore } from '../store';

export function Toasts() {
  const items = useStore(toasts, (s) => s.items);
  return (
    <div className="toasts" aria-live="polite">
      {items.map((t) => (
        <div key={t.id} className={`toast tone-${t.tone}`} data-testid="toast" role={t.tone === 'error' ? 'alert' : 'status'} onClick={() => dismiss(t.id)}>
          {t.text}
          {t.action && (
            <button
              className="toast-action"
              data-testid="toast-action"
              onClick={(e) => {
                e.stopPropagation();
                dismiss(t.id);
                t.action!.run();
              }}
            >
              {t.action.label}
            </button>
          )}
        </div>
      ))}
    </div>
  );
}
