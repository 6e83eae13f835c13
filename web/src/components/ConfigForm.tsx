/** A card's config form, generated from its type's JSON Schema, with problems marked on the fields. */
import { memo, useEffect, useMemo, useState } from 'react';
import { annotations } from '../derive';
import { editor } from '../editor';
import { useStore } from '../store';
import {
  boundHints, fieldsOf, formatValue, parseFieldText, placeholderOf, validateValue, type FieldSpec,
} from '../schema';
import type { CardType, Problem } from '../types';

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function FieldInput({ cardId, field, value, serverProblem }: { cardId: string; field: FieldSpec; value: unknown; serverProblem?: string }) {
  const [text, setText] = useState(() => formatValue(field, value));
  // a problem the server found before this field was last edited is out of date: hide it until the next check
  const [editedAt, setEditedAt] = useState(-1);
  const validatedVersion = useStore(annotations, (s) => s.validatedVersion);
  useEffect(() => {
    // the value changed from outside (undo, another card selected): show it, unless the text already means it
    setText((current) => {
      const parsed = parseFieldText(field, current);
      const meant = 'unset' in parsed ? undefined : parsed.value;
      return same(meant, value) ? current : formatValue(field, value);
    });
  }, [field, value]);
  const local = validateValue(field, value);
  const problem = local ?? (validatedVersion >= editedAt ? serverProblem : undefined);
  const set = (next: unknown) => {
    editor.setConfig(cardId, field.name, next);
    setEditedAt(editor.doc.get().version);
  };
  const onText = (next: string) => {
    setText(next);
    const parsed = parseFieldText(field, next);
    set('unset' in parsed ? undefined : parsed.value);
  };
  const id = `field-${cardId}-${field.name}`;
  let control;
  if (field.kind === 'boolean') {
    const checked = typeof value === 'boolean' ? value : Boolean(field.default);
    control = (
      <label className="checkbox">
        <input
          id={id}
          type="checkbox"
          checked={checked}
          onChange={(e) => set(e.target.checked)}
          data-testid={`config-${field.name}`}
          aria-invalid={!!problem}
        />
        {value === undefined ? <span className="muted">{`default (${String(field.default ?? false)})`}</span> : String(value)}
      </label>
    );
  } else if (field.kind === 'enum') {
    const values = field.enumValues ?? [];
    const known = value === undefined || values.some((v) => v === value);
    control = (
      <select
        id={id}
        value={value === undefined ? '' : String(value)}
        onChange={(e) => {
          const match = values.find((v) => String(v) === e.target.value);
          set(e.target.value === '' ? undefined : match ?? e.target.value);
        }}
        data-testid={`config-${field.name}`}
        className={problem ? 'invalid' : ''}
        aria-invalid={!!problem}
      >
        <option value="">{field.hasDefault ? `${placeholderOf(field)}` : '(choose)'}</option>
        {values.map((v) => (
          <option key={String(v)} value={String(v)}>
            {String(v)}
          </option>
        ))}
        {!known && <option value={String(value)}>{String(value)} (not valid)</option>}
      </select>
    );
  } else {
    control = (
      <input
        id={id}
        type="text"
        inputMode={field.kind === 'integer' ? 'numeric' : field.kind === 'number' ? 'decimal' : undefined}
        value={text}
        placeholder={placeholderOf(field)}
        onChange={(e) => onText(e.target.value)}
        data-testid={`config-${field.name}`}
        className={problem ? 'invalid' : ''}
        aria-invalid={!!problem}
        spellCheck={false}
        autoComplete="off"
      />
    );
  }
  const constraints = boundHints(field.schema);
  return (
    <div className={`field${problem ? ' has-problem' : ''}`} data-field={field.name}>
      <div className="field-head">
        <label htmlFor={id} title={field.name}>
          {field.title}
          {field.required && !field.hasDefault && <span className="req"> *</span>}
        </label>
        <span className="field-type">
          {field.kind === 'array' ? `list of ${field.itemKind}` : field.kind}
          {field.nullable ? ' or none' : ''}
          {constraints.length ? ` ${constraints.join(' ')}` : ''}
        </span>
        {value !== undefined && (
          <button className="link-button" title="back to the default" onClick={() => { setText(''); set(undefined); }} data-testid={`reset-${field.name}`}>
            reset
          </button>
        )}
      </div>
      {control}
      {problem && (
        <div className="field-error" role="alert" data-testid={`config-error-${field.name}`}>
          {problem}
        </div>
      )}
      {field.description && <div className="field-help">{field.description}</div>}
    </div>
  );
}

export const ConfigForm = memo(function ConfigForm({
  cardId,
  type,
  config,
  problems,
}: {
  cardId: string;
  type: CardType;
  config: Record<string, unknown>;
  problems: Problem[];
}) {
  const fields = useMemo(() => fieldsOf(type.config_schema), [type]);
  const known = new Set(fields.map((f) => f.name));
  const unknown = Object.keys(config).filter((k) => !known.has(k));
  const serverProblem = (name: string) =>
    problems
      .filter((p) => p.field === name || p.field?.startsWith(`${name}.`))
      .map((p) => p.message.replace(/^card '[^']*' \([^)]*\): /, ''))
      .join('; ') || undefined;
  if (!fields.length && !unknown.length) return <p className="muted">This card type takes no config.</p>;
  return (
    <form className="config-form" onSubmit={(e) => e.preventDefault()} autoComplete="off">
      {fields.map((field) => (
        <FieldInput key={field.name} cardId={cardId} field={field} value={config[field.name]} serverProblem={serverProblem(field.name)} />
      ))}
      {unknown.map((key) => (
        <div className="field has-problem" key={key} data-field={key}>
          <div className="field-head">
            <label>{key}</label>
            <button className="link-button" onClick={() => editor.setConfig(cardId, key, undefined)}>
              remove
            </button>
          </div>
          <code>{JSON.stringify(config[key])}</code>
          <div className="field-error">unknown config field; valid fields: {[...known].join(', ')}</div>
        </div>
      ))}
    </form>
  );
});
