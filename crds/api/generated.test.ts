/**
 * The API module is generated from the CRD YAML; this keeps the two from drifting apart.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { generate, generatedPath } from './generate.js';

test('the generated API module matches the CRD YAML', () => {
  assert.equal(
    readFileSync(generatedPath, 'utf8'),
    generate(),
    'crds/api/generated.ts has drifted from the CRD YAML: run `npm run generate`',
  );
});
