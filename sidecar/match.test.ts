import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RouteMatcher } from './match.js';

test('matches paths exactly and models by glob', () => {
  const flux = new RouteMatcher({ paths: ['/v2/listen'], models: ['flux-general-*'] });
  assert.equal(flux.covers({ path: '/v2/listen', model: 'flux-general-en' }), true);
  assert.equal(flux.covers({ path: '/v2/listen', model: 'flux-general-multi' }), true);
  assert.equal(flux.covers({ path: '/v2/listen', model: 'nova-3' }), false);
  assert.equal(flux.covers({ path: '/v2/listen', model: undefined }), false);
  assert.equal(flux.covers({ path: '/v1/listen', model: 'flux-general-en' }), false);
  assert.equal(flux.covers({ path: '/v2/listen/', model: 'flux-general-en' }), false);
});

test('treats regular-expression characters in patterns literally', () => {
  const dotted = new RouteMatcher({ models: ['nova-2.general'] });
  assert.equal(dotted.covers({ path: '/v1/listen', model: 'nova-2.general' }), true);
  assert.equal(dotted.covers({ path: '/v1/listen', model: 'nova-2xgeneral' }), false);
});

test('covers every stream without a match', () => {
  const all = new RouteMatcher(undefined);
  assert.equal(all.covers({ path: '/anything', model: undefined }), true);
});
