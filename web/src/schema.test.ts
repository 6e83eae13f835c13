import { describe, expect, it } from 'vitest';
import { boundHints, configProblems, fieldsOf, formatValue, parseFieldText, placeholderOf, validateValue } from './schema';
import type { JsonSchema } from './types';

const schema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['input_dim'],
  properties: {
    input_dim: { type: 'integer', exclusiveMinimum: 0, title: 'Input Dim' },
    layers: { type: 'array', items: { type: 'integer' }, default: [64, 64] },
    activation: { type: 'string', enum: ['relu', 'tanh'], default: 'relu' },
    dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0 },
    shuffle: { type: 'boolean', default: true },
    path: { type: 'string' },
    target_columns: { anyOf: [{ type: 'array', items: { type: 'string' }, minItems: 1 }, { type: 'null' }], default: null },
  },
};

describe('fieldsOf', () => {
  it('reads kinds, defaults and nullable unions', () => {
    const f = Object.fromEntries(fieldsOf(schema).map((x) => [x.name, x]));
    expect(f.input_dim.kind).toBe('integer');
    expect(f.input_dim.required).toBe(true);
    expect(f.layers).toMatchObject({ kind: 'array', itemKind: 'integer', default: [64, 64] });
    expect(f.activation).toMatchObject({ kind: 'enum', enumValues: ['relu', 'tanh'] });
    expect(f.target_columns).toMatchObject({ kind: 'array', itemKind: 'string', nullable: true, title: 'target_columns' });
    expect(placeholderOf(f.layers)).toBe('default: 64, 64');
    expect(placeholderOf(f.target_columns)).toBe('default: none');
  });
});

describe('parse and validate', () => {
  const f = Object.fromEntries(fieldsOf(schema).map((x) => [x.name, x]));
  it('parses typed text', () => {
    expect(parseFieldText(f.input_dim, ' 10 ')).toEqual({ value: 10 });
    expect(parseFieldText(f.input_dim, '')).toEqual({ unset: true });
    expect(parseFieldText(f.input_dim, 'ten')).toEqual({ value: 'ten' });
    expect(parseFieldText(f.layers, '32, 16')).toEqual({ value: [32, 16] });
    expect(parseFieldText(f.layers, '[8]')).toEqual({ value: [8] });
    expect(parseFieldText(f.layers, '32, x')).toEqual({ value: [32, 'x'] });
    expect(validateValue(f.layers, [32, 'x'])).toMatch(/item 2 \('x'\) is not a number/);
    expect(parseFieldText(f.target_columns, 'a, b')).toEqual({ value: ['a', 'b'] });
    expect(formatValue(f.layers, [32, 16])).toBe('32, 16');
  });
  it('marks values outside the schema', () => {
    expect(validateValue(f.input_dim, 0)).toMatch(/greater than 0/);
    expect(validateValue(f.input_dim, 1.5)).toMatch(/whole number/);
    expect(validateValue(f.input_dim, 'ten')).toMatch(/not a number/);
    expect(validateValue(f.input_dim, undefined)).toMatch(/required/);
    expect(validateValue(f.dropout, 1)).toMatch(/less than 1/);
    expect(validateValue(f.dropout, -0.1)).toMatch(/at least 0/);
    expect(validateValue(f.activation, 'elu')).toMatch(/not one of/);
    expect(validateValue(f.layers, [64, 1.5])).toMatch(/item 2/);
    expect(validateValue(f.target_columns, [])).toMatch(/at least 1/);
    expect(validateValue(f.target_columns, null)).toBeNull();
    expect(validateValue(f.shuffle, 'yes')).toMatch(/true or false/);
  });
  it('lists a config\'s problems by field', () => {
    expect(configProblems(schema, { input_dim: 10 })).toEqual({});
    expect(Object.keys(configProblems(schema, { dropuot: 0.1 }))).toEqual(['input_dim', 'dropuot']);
  });
});

describe('integer bounds at int64 scale (batch_size: gt=0, le=2**63-1)', () => {
  // as the browser reads the server's schema: 9223372036854775807 arrives as the float 9223372036854775808
  const int64Schema: JsonSchema = JSON.parse(
    '{"type":"object","properties":{"batch_size":{"type":"integer","exclusiveMinimum":0,"maximum":9223372036854775807},' +
      '"start":{"type":"integer","minimum":0,"maximum":9223372036854775807},' +
      '"seed":{"type":"integer","minimum":-9223372036854775808,"maximum":18446744073709551615}}}',
  );
  const f = Object.fromEntries(fieldsOf(int64Schema).map((x) => [x.name, x]));

  it('hints only the meaningful bound, not the int64 maximum', () => {
    expect(boundHints(f.batch_size.schema)).toEqual(['> 0']);
    expect(boundHints(f.start.schema)).toEqual(['≥ 0']);
    expect(boundHints(f.seed.schema)).toEqual([]);
  });

  it('still hints small maxima', () => {
    expect(boundHints({ minimum: 0, exclusiveMaximum: 1 })).toEqual(['≥ 0', '< 1']);
  });

  it('refuses a typed int64 maximum, which the browser cannot keep exactly, with a sentence', () => {
    const typed = parseFieldText(f.batch_size, '9223372036854775807');
    expect(validateValue(f.batch_size, 'value' in typed ? typed.value : undefined)).toBe(
      'the value must be at most 9007199254740991, the largest whole number the editor keeps exactly',
    );
    expect(validateValue(f.seed, -(2 ** 63))).toMatch(/at least -9007199254740991/);
  });

  it('accepts the largest exact whole number and still names a small bound', () => {
    expect(validateValue(f.batch_size, Number.MAX_SAFE_INTEGER)).toBeNull();
    expect(validateValue(f.start, -1)).toBe('the value must be at least 0');
  });
});
