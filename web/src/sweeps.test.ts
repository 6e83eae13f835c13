import { describe, expect, it } from 'vitest';
import { cellText, higherIsBetter, settingText, sortRows, sweepColumns, variantLabel } from './sweeps';

const results = [
  { variant: 0, 'opt.learning_rate': 0.001, status: 'succeeded', run_id: 'r0', error: null, best_epoch: 1, best_metric: 'epochs.validate.mse', best_value: 0.5, 'evaluate.mse': 0.5, 'evaluate.accuracy': 'NaN', 'evaluate.r2': 0.2 },
  { variant: 1, 'opt.learning_rate': 0.01, status: 'succeeded', run_id: 'r1', error: null, best_epoch: 0, best_metric: 'epochs.validate.mse', best_value: 0.3, 'evaluate.mse': 0.3, 'evaluate.accuracy': 'NaN', 'evaluate.r2': 0.6 },
  { variant: 2, 'opt.learning_rate': 0.1, status: 'failed', run_id: 'r2', error: 'no', best_epoch: 'NaN', best_metric: null, best_value: 'NaN', 'evaluate.mse': 'NaN', 'evaluate.accuracy': 'NaN', 'evaluate.r2': 'NaN' },
  { variant: 3, 'opt.learning_rate': 1.0, status: 'succeeded', run_id: 'r3', error: null, best_epoch: 0, best_metric: 'epochs.validate.mse', best_value: 0.9, 'evaluate.mse': 'Infinity', 'evaluate.accuracy': 'NaN', 'evaluate.r2': -1 },
];
const sweep = { settings: { 'opt.learning_rate': [0.001, 0.01, 0.1, 1.0] }, results };

describe('sweepColumns', () => {
  it('separates the settings from the metrics and leaves out a metric with no value in any row', () => {
    expect(sweepColumns(sweep)).toEqual({ settings: ['opt.learning_rate'], metrics: ['evaluate.mse', 'evaluate.r2'] });
  });
});

describe('sortRows', () => {
  it('sorts a loss-like metric ascending, infinities after numbers and NaN last', () => {
    expect(sortRows(results, 'evaluate.mse').map((r) => r.variant)).toEqual([1, 0, 3, 2]);
  });
  it('sorts a metric that is better higher descending', () => {
    expect(higherIsBetter('evaluate.r2')).toBe(true);
    expect(sortRows(results, 'evaluate.r2').map((r) => r.variant)).toEqual([1, 0, 3, 2]);
  });
  it('reversed, keeps NaN last and leaves the rows given untouched', () => {
    expect(sortRows(results, 'evaluate.mse', true).map((r) => r.variant)).toEqual([3, 0, 1, 2]);
    expect(results.map((r) => r.variant)).toEqual([0, 1, 2, 3]);
  });
});

describe('labels and cells', () => {
  it('names a variant by its settings as its run is named', () => {
    expect(variantLabel({ 'opt.learning_rate': 0.003, 'model.layers': [128, 128], 'net.kwargs': { a: 'x,y' } })).toBe(
      'opt.learning_rate=0.003, model.layers=[128, 128], net.kwargs={"a": "x,y"}',
    );
  });
  it('writes numbers to 4 digits, lists as JSON and nothing for a missing value', () => {
    expect([cellText(0.123456), cellText(0.001), cellText(3), cellText([8, 8]), cellText(null), cellText('NaN')]).toEqual([
      '0.1235',
      '0.001',
      '3',
      '[8,8]',
      '',
      'NaN',
    ]);
  });
  it('writes a setting exactly as given', () => {
    expect([settingText(0.0012345678), settingText([64, 64]), settingText('mse')]).toEqual(['0.0012345678', '[64, 64]', '"mse"']);
  });
});
