/**
 * How much audio a stream's bytes carry, from its `encoding` and `sample_rate`
 * query parameters, so the emulator paces its answers by audio time as the real
 * service does. Compressed encodings are assumed to run at a typical bit rate.
 */

const bytesPerSample: Record<string, number> = { linear16: 2, linear32: 4, mulaw: 1, alaw: 1 };

/** Typical bytes per second of compressed encodings (their real rate varies). */
const compressedBytesPerSecond: Record<string, number> = {
  opus: 4000,
  'ogg-opus': 4000,
  flac: 32000,
  'amr-nb': 1600,
  'amr-wb': 3000,
  speex: 2000,
  g729: 1000,
};

export const fluxEncodings = ['linear16', 'linear32', 'mulaw', 'alaw', 'opus', 'ogg-opus'];
export const fluxSampleRates = [8000, 16000, 24000, 44100, 48000];
export const novaEncodings = [...Object.keys(bytesPerSample), ...Object.keys(compressedBytesPerSecond)];

/** Bytes per second of audio, or a problem to answer with HTTP 400. */
export function audioRate(
  encoding: string | null,
  sampleRate: string | null,
  allowed: { encodings: string[]; sampleRates?: number[] },
): { bytesPerSecond: number } | { problem: string } {
  if (encoding === null) {
    // Containerised audio (WAV, Ogg, ...) describes itself; pace it like 16 kHz linear16.
    return { bytesPerSecond: 32000 };
  }
  if (!allowed.encodings.includes(encoding)) {
    return { problem: `unsupported encoding ${JSON.stringify(encoding)}; use one of ${allowed.encodings.join(', ')}` };
  }
  const width = bytesPerSample[encoding];
  if (width === undefined) return { bytesPerSecond: compressedBytesPerSecond[encoding] as number };
  const rate = Number(sampleRate);
  if (sampleRate === null || !Number.isInteger(rate) || rate <= 0) {
    return { problem: `sample_rate is required with encoding=${encoding}` };
  }
  if (allowed.sampleRates && !allowed.sampleRates.includes(rate)) {
    return { problem: `unsupported sample_rate ${rate}; use one of ${allowed.sampleRates.join(', ')}` };
  }
  return { bytesPerSecond: rate * width };
}

const words = ['sluice', 'keeps', 'the', 'fleet', 'inside', 'its', 'budget', 'and', 'every', 'stream', 'is', 'counted'];

/** A deterministic word for a position in the transcript. */
export function syntheticWord(index: number): string {
  return words[index % words.length] as string;
}
