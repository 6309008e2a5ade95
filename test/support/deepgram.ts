/**
 * The official JavaScript SDK as a test client: a Flux socket that records what it
 * receives, and audio to send it.
 */
import { DeepgramClient } from '@deepgram/sdk';

/** `seconds` of a 440 Hz tone, 16 kHz linear16, in 80 ms chunks. */
export function tone(seconds: number): Buffer[] {
  const samples = Math.round(seconds * 16000);
  const audio = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++)
    audio.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)), i * 2);
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < audio.length; offset += 2560) chunks.push(audio.subarray(offset, offset + 2560));
  return chunks;
}

/** A Flux socket of the SDK against `baseUrl`; `reconnectAttempts` left out keeps the SDK's default. */
export async function fluxSocket(baseUrl: string, apiKey: string, reconnectAttempts?: number) {
  const client = new DeepgramClient({ apiKey, baseUrl });
  const socket = await client.listen.v2.connect({
    model: 'flux-general-en',
    encoding: 'linear16',
    sample_rate: 16000,
    ...(reconnectAttempts === undefined ? {} : { reconnectAttempts }),
  });
  const messages: { type: string; event?: string }[] = [];
  const errors: Error[] = [];
  socket.on('message', (message) => messages.push(message as { type: string; event?: string }));
  socket.on('error', (error) => errors.push(error));
  const closed = new Promise<{ code: number }>((resolve) => socket.on('close', (event) => resolve(event)));
  return { socket, messages, errors, closed };
}
