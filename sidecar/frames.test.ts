import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { buildFrame, closeFrame, FrameError, FrameSplitter, Opcode, type Piece, parseClose } from './frames.js';

function split(bytes: Buffer, cuts: number[], expectMasked: boolean, maxPayload = 1 << 20): Piece[] {
  const splitter = new FrameSplitter({ expectMasked, maxPayload });
  const pieces: Piece[] = [];
  let last = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length)].sort((a, b) => a - b).concat(bytes.length)) {
    pieces.push(...splitter.push(bytes.subarray(last, cut)));
    last = cut;
  }
  assert.ok(splitter.atBoundary);
  return pieces;
}

describe('FrameSplitter', () => {
  test('passes data frames through byte for byte and lifts out control frames, however the bytes arrive', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              opcode: fc.constantFrom(Opcode.binary, Opcode.text),
              size: fc.integer({ min: 0, max: 70_000 }),
            }),
            fc.record({
              opcode: fc.constantFrom(Opcode.ping, Opcode.pong, Opcode.close),
              size: fc.integer({ min: 0, max: 125 }),
            }),
          ),
          { maxLength: 6 },
        ),
        fc.boolean(),
        fc.array(fc.integer({ min: 0, max: 300_000 }), { maxLength: 8 }),
        (specs, masked, cuts) => {
          const frames = specs
            .map(({ opcode, size }) => ({
              opcode,
              payload: Buffer.alloc(size, opcode),
            }))
            .map((frame) => ({ ...frame, raw: buildFrame(frame.opcode, frame.payload, masked) }));
          const pieces = split(Buffer.concat(frames.map((f) => f.raw)), cuts, masked);
          const data = Buffer.concat(pieces.flatMap((p) => (p.kind === 'data' ? [p.bytes] : [])));
          const dataFrames = frames.filter((f) => f.opcode < 8);
          assert.deepEqual(data, Buffer.concat(dataFrames.map((f) => f.raw)));
          const controls = pieces.filter((p) => p.kind === 'control');
          assert.deepEqual(
            controls.map((p) => [p.header.opcode, p.payload, p.raw]),
            frames.filter((f) => f.opcode >= 8).map((f) => [f.opcode, f.payload, f.raw]),
          );
          assert.equal(pieces.filter((p) => p.kind === 'start').length, dataFrames.length);
        },
      ),
    );
  });

  test('refuses what RFC 6455 forbids, with the close code it calls for', () => {
    const cases: [Buffer, boolean, number][] = [
      [buildFrame(Opcode.binary, Buffer.alloc(4), false), true, 1002], // unmasked from a client
      [buildFrame(Opcode.binary, Buffer.alloc(4), true), false, 1002], // masked from a server
      [Buffer.from([0xc2, 0x00]), false, 1002], // RSV1 without an extension
      [Buffer.from([0x83, 0x00]), false, 1002], // unknown opcode
      [Buffer.from([0x09, 0x00]), false, 1002], // fragmented ping
      [Buffer.from([0x80, 0x00]), false, 1002], // continuation out of nowhere
      [buildFrame(Opcode.binary, Buffer.alloc(2000), false), false, 1009], // over maxPayload
    ];
    for (const [bytes, expectMasked, code] of cases) {
      const splitter = new FrameSplitter({ expectMasked, maxPayload: 1024 });
      const good = buildFrame(Opcode.text, Buffer.from('ok'), expectMasked);
      const pieces = splitter.push(Buffer.concat([good, bytes]));
      const last = pieces.at(-1);
      assert.ok(last?.kind === 'error' && last.error instanceof FrameError && last.error.closeCode === code);
      assert.deepEqual(
        Buffer.concat(pieces.flatMap((p) => (p.kind === 'data' ? [p.bytes] : []))),
        good,
        'the whole frame before it',
      );
      assert.deepEqual(splitter.push(good), [], 'nothing after a violation');
    }
  });
});

test('close frames round-trip their code and reason, and an empty one has no code', () => {
  const frame = closeFrame(1000, 'done', true);
  const [piece] = split(frame, [], true);
  assert.equal(piece?.kind, 'control');
  assert.deepEqual(parseClose((piece as { payload: Buffer }).payload), { code: 1000, reason: 'done' });
  assert.deepEqual(parseClose(Buffer.alloc(0)), { code: undefined, reason: '' });
});
