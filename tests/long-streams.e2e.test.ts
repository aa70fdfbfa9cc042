/**
 * Timeouts judge silence, never length. A generation that keeps streaming for six minutes, on
 * the WebSocket and on the long-poll transport, and an upload that keeps trickling in for six
 * minutes, reach their end whole: nothing on the way (api-backend's server, the proxy's, the
 * bridge) cuts a request at Node's default 300 s requestTimeout or any other clock.
 *
 * Slow by nature: the scenarios run at once, so the file takes about six and a half minutes.
 */
import http from 'node:http';
import { createHash } from 'node:crypto';
import { Ollama } from 'ollama';
import { startLayout, type Layout } from './helpers/layout';
import { TRANSPORTS } from './helpers/matrix';

/** Longer than Node's default requestTimeout (300 s), with room to spare. */
const STREAM_SECONDS = 370;
const TOKEN_GAP_MS = 1000;

let layout: Layout;
const user = (transport: string) => `lena-${transport}`;

beforeAll(async () => {
  layout = await startLayout({ driver: 'process', llm: { tokenDelayMs: TOKEN_GAP_MS } });
  for (const transport of TRANSPORTS) await layout.connectBridge(user(transport), { transport });
}, 180_000);
afterAll(() => layout?.close());

/** A generation of one token a second, read through the official Ollama client. */
async function generate(transport: string): Promise<{ tokens: number; done: boolean; seconds: number }> {
  const ollama = new Ollama({ host: layout.tunnelUrl(user(transport)), headers: { authorization: `Bearer ${layout.token(user(transport))}` } });
  const began = Date.now();
  let tokens = 0;
  let done = false;
  const stream = await ollama.generate({ model: 'test-model', prompt: 'tell a long story', stream: true, options: { num_predict: STREAM_SECONDS } });
  for await (const part of stream) {
    if (part.done) done = true;
    else tokens += 1;
  }
  return { tokens, done, seconds: (Date.now() - began) / 1000 };
}

/** A chunked upload written one piece a second, as a slow link would send it; the desktop answers its hash. */
function slowUpload(transport: string): Promise<{ status: number; answer: { sha256: string; bytes: number }; sent: { sha256: string; bytes: number }; seconds: number }> {
  const { hostname, port } = new URL(layout.relay.url);
  const began = Date.now();
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    const req = http.request({
      hostname,
      port,
      method: 'POST',
      path: `/api/tunnel/${user(transport)}/sha256`,
      headers: { authorization: `Bearer ${layout.token(user(transport))}`, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      // An answer before the upload ended (a 408, say) ends the writing too.
      clearInterval(timer);
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          answer: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'),
          sent: { sha256: hash.digest('hex'), bytes },
          seconds: (Date.now() - began) / 1000,
        }),
      );
    });
    let second = 0;
    const timer = setInterval(() => {
      if (second >= STREAM_SECONDS) {
        clearInterval(timer);
        req.end();
        return;
      }
      const piece = Buffer.from(`second ${second} of a slow upload\n`.repeat(32));
      hash.update(piece);
      bytes += piece.byteLength;
      second += 1;
      req.write(piece);
    }, 1000);
  });
}

it(
  `carries ${STREAM_SECONDS} s generations (WebSocket and long-poll) and ${STREAM_SECONDS} s uploads to the end, uncut`,
  async () => {
    const [generations, uploads] = await Promise.all([
      Promise.all(TRANSPORTS.map((transport) => generate(transport))),
      Promise.all(TRANSPORTS.map((transport) => slowUpload(transport))),
    ]);
    for (const generation of generations) {
      expect(generation).toEqual({ tokens: STREAM_SECONDS, done: true, seconds: expect.any(Number) });
      // It really outlived Node's default 300 s cut.
      expect(generation.seconds).toBeGreaterThan(300);
    }
    for (const upload of uploads) {
      expect(upload.status).toBe(200);
      expect(upload.answer).toEqual(upload.sent);
      expect(upload.seconds).toBeGreaterThan(300);
    }
  },
  (STREAM_SECONDS + 180) * 1000,
);
