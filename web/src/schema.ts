/**
 * Config forms from a card type's JSON Schema (as pydantic writes it): the fields, how text typed into a field
 * becomes a value, and what is wrong with a value before anything runs (types, bounds, enums, required).
 */
import type { JsonSchema } from './types';

export type FieldKind = 'number' | 'integer' | 'boolean' | 'string' | 'enum' | 'array' | 'json';

export interface FieldSpec {
  name: string;
  title: string;
  description?: string;
  kind: FieldKind;
  /** For arrays: the kind of the items. */
  itemKind?: 'number' | 'integer' | 'string' | 'json';
  nullable: boolean;
  required: boolean;
  hasDefault: boolean;
  default?: unknown;
  enumValues?: unknown[];
  schema: JsonSchema;
  itemSchema?: JsonSchema;
}

function resolve(schema: JsonSchema, root: JsonSchema): JsonSchema {
  if (schema.$ref?.startsWith('#/$defs/')) return root.$defs?.[schema.$ref.slice(8)] ?? schema;
  return schema;
}

function typeOf(schema: JsonSchema): string | undefined {
  if (Array.isArray(schema.type)) return schema.type.find((t) => t !== 'null');
  return schema.type;
}

/** The fields of a config schema, in the schema's order. */
export function fieldsOf(schema: JsonSchema | undefined): FieldSpec[] {
  if (!schema?.properties) return [];
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, raw]) => {
    let s = resolve(raw, schema);
    let nullable = Array.isArray(s.type) && s.type.includes('null');
    const variants = s.anyOf ?? s.oneOf;
    if (variants) {
      const nonNull = variants.filter((v) => v.type !== 'null');
      nullable = nullable || nonNull.length < variants.length;
      if (nonNull.length === 1) s = { ...resolve(nonNull[0], schema), title: raw.title, description: raw.description };
    }
    const base: FieldSpec = {
      name,
      title: raw.title ?? name,
      description: raw.description,
      kind: 'json',
      nullable,
      required: required.has(name),
      hasDefault: 'default' in raw,
      default: raw.default,
      schema: s,
    };
    const t = typeOf(s);
    if (s.enum) return { ...base, kind: 'enum', enumValues: s.enum };
    if (t === 'integer' || t === 'number' || t === 'boolean' || t === 'string') return { ...base, kind: t };
    if (t === 'array' && s.items) {
      const items = resolve(s.items, schema);
      const it = typeOf(items);
      const itemKind = it === 'integer' || it === 'number' || it === 'string' ? it : 'json';
      return { ...base, kind: 'array', itemKind, itemSchema: items };
    }
    return base;
  });
}

export type Parsed = { unset: true } | { value: unknown };

/** What typing `text` into a field means: unset (back to the default), a value, or the raw text when it is
 * not one (so that the card shows it and says why). */
export function parseFieldText(field: FieldSpec, text: string): Parsed {
  const trimmed = text.trim();
  if (trimmed === '') return { unset: true };
  if (field.nullable && trimmed === 'null') return { value: null };
  switch (field.kind) {
    case 'integer':
    case 'number': {
      const n = Number(trimmed);
      return { value: Number.isFinite(n) ? n : text };
    }
    case 'boolean':
      return { value: trimmed === 'true' ? true : trimmed === 'false' ? false : text };
    case 'enum': {
      const match = field.enumValues?.find((v) => String(v) === trimmed);
      return { value: match !== undefined ? match : text };
    }
    case 'array': {
      const body = trimmed.replace(/^\[/, '').replace(/\]$/, '').trim();
      if (body === '') return { value: [] };
      if (field.itemKind === 'json') {
        try {
          return { value: JSON.parse(trimmed.startsWith('[') ? trimmed : `[${trimmed}]`) };
        } catch {
          return { value: text };
        }
      }
      const parts = body.split(',').map((p) => p.trim().replace(/^["']|["']$/g, ''));
      if (field.itemKind === 'number' || field.itemKind === 'integer') {
        // a part that is not a number stays text, so that the field can say which item is wrong
        return { value: parts.map((p) => (p !== '' && Number.isFinite(Number(p)) ? Number(p) : p)) };
      }
      return { value: parts };
    }
    case 'json':
      try {
        return { value: JSON.parse(trimmed) };
      } catch {
        return { value: text };
      }
    default:
      return { value: text };
  }
}

/** A value as text in its field. */
export function formatValue(field: FieldSpec, value: unknown): string {
  if (value === undefined) return '';
  if (value === null) return 'null';
  if (field.kind === 'array' && Array.isArray(value) && field.itemKind !== 'json') return value.join(', ');
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
}

/** Bounds at or beyond this size are technical limits (int64, torch's seed range), not advice for a user. */
const HINT_LIMIT = 2 ** 31;

/** A field's meaningful bounds as short hints ('≥ 0', '< 1'); technical limits such as int64's are left out,
 * and could not be shown exactly anyway: JSON numbers beyond 2**53 reach the editor rounded. */
export function boundHints(s: JsonSchema): string[] {
  const bounds: [string, number | undefined][] = [
    ['≥', s.minimum],
    ['>', s.exclusiveMinimum],
    ['≤', s.maximum],
    ['<', s.exclusiveMaximum],
  ];
  return bounds.filter(([, b]) => b !== undefined && Math.abs(b) < HINT_LIMIT).map(([op, b]) => `${op} ${b}`);
}

function checkNumber(value: number, s: JsonSchema, integer: boolean, what: string): string | null {
  if (integer && !Number.isInteger(value)) return `${what} must be a whole number`;
  // an integer bound beyond 2**53 arrived rounded and would be named wrongly: it is left to the check below that
  // the value is exact (every exact whole number lies within the int64 and seed limits) and to the server's
  const exact = (b: number | undefined) => (b !== undefined && (!integer || Number.isSafeInteger(b)) ? b : undefined);
  const [min, max, exMin, exMax] = [s.minimum, s.maximum, s.exclusiveMinimum, s.exclusiveMaximum].map(exact);
  if (min !== undefined && value < min) return `${what} must be at least ${min}`;
  if (max !== undefined && value > max) return `${what} must be at most ${max}`;
  if (exMin !== undefined && value <= exMin) return `${what} must be greater than ${exMin}`;
  if (exMax !== undefined && value >= exMax) return `${what} must be less than ${exMax}`;
  // a larger whole number is not what the user typed (9223372036854775807 becomes 9223372036854775808) and is
  // sent to the server rounded again (as 9223372036854776000), so it is refused here rather than changed
  if (integer && value > Number.MAX_SAFE_INTEGER) {
    return `${what} must be at most ${Number.MAX_SAFE_INTEGER}, the largest whole number the editor keeps exactly`;
  }
  if (integer && value < -Number.MAX_SAFE_INTEGER) {
    return `${what} must be at least ${-Number.MAX_SAFE_INTEGER}, the smallest whole number the editor keeps exactly`;
  }
  return null;
}

/** Why a value does not fit its field, or null when it does. */
export function validateValue(field: FieldSpec, value: unknown): string | null {
  if (value === undefined) return field.required && !field.hasDefault ? 'required: give a value' : null;
  if (value === null) return field.nullable ? null : 'may not be empty (null)';
  const s = field.schema;
  switch (field.kind) {
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return `${describe(value)} is not a number`;
      return checkNumber(value, s, field.kind === 'integer', 'the value');
    case 'boolean':
      return typeof value === 'boolean' ? null : `${describe(value)} is not true or false`;
    case 'string':
      if (typeof value !== 'string') return `${describe(value)} is not text`;
      if (s.minLength !== undefined && value.length < s.minLength) return `must have at least ${s.minLength} characters`;
      if (s.maxLength !== undefined && value.length > s.maxLength) return `must have at most ${s.maxLength} characters`;
      return null;
    case 'enum':
      return field.enumValues?.some((v) => v === value)
        ? null
        : `${describe(value)} is not one of ${field.enumValues?.map(describe).join(', ')}`;
    case 'array': {
      if (!Array.isArray(value)) return `${describe(value)} is not a list; separate the items with commas`;
      if (s.minItems !== undefined && value.length < s.minItems) return `needs at least ${s.minItems} item${s.minItems === 1 ? '' : 's'}`;
      if (s.maxItems !== undefined && value.length > s.maxItems) return `takes at most ${s.maxItems} items`;
      for (const [i, item] of value.entries()) {
        const what = `item ${i + 1}`;
        if (field.itemKind === 'number' || field.itemKind === 'integer') {
          if (typeof item !== 'number' || !Number.isFinite(item)) return `${what} (${describe(item)}) is not a number`;
          const problem = checkNumber(item, field.itemSchema ?? {}, field.itemKind === 'integer', what);
          if (problem) return problem;
        } else if (field.itemKind === 'string' && typeof item !== 'string') {
          return `${what} is not text`;
        }
      }
      return null;
    }
    default:
      return null;
  }
}

/** Every problem of a card's config, by field ('' for the config as a whole). */
export function configProblems(schema: JsonSchema | undefined, config: Record<string, unknown>): Record<string, string> {
  const problems: Record<string, string> = {};
  const fields = fieldsOf(schema);
  for (const field of fields) {
    const problem = validateValue(field, config[field.name]);
    if (problem) problems[field.name] = problem;
  }
  if (schema?.additionalProperties === false) {
    const known = new Set(fields.map((f) => f.name));
    for (const key of Object.keys(config)) {
      if (!known.has(key)) problems[key] = `unknown config field; valid fields: ${[...known].join(', ') || 'none'}`;
    }
  }
  return problems;
}

/** A default as the placeholder of its field. */
export function placeholderOf(field: FieldSpec): string {
  if (!field.hasDefault) return field.required ? 'required' : '';
  if (field.default === null) return 'default: none';
  return `default: ${formatValue(field, field.default)}`;
}
