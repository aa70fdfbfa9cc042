/**
 * WriteGather (write-gather.ts): the messages written in one turn of the event loop leave in one
 * write of the socket, none waits past its turn, and over a real WebSocket every message still
 * arrives whole and in order.
 */
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { WriteGather } from '../src';

/** A stream that records each write it is handed (writev gathers the corked ones). */
function recordingStream(): { stream: Writable; writes: string[][] } {
  const writes: string[][] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push([chunk.toString()]);
      done();
    },
    writev(chunks, done) {
      writes.push(chunks.map(({ chunk }) => (chunk as Buffer).toString()));
      done();
    },
  });
  return { stream, writes };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

it('sends the messages of one turn in one write, once the turn is over, and a later turn on its own', async () => {
  const { stream, writes } = recordingStream();
  const gather = new WriteGather(stream);
  for (const message of ['a', 'b', 'c']) {
    gather.hold();
    stream.write(message);
  }
  expect(writes).toEqual([]);
  await nextTurn();
  expect(writes).toEqual([['a', 'b', 'c']]);
  gather.hold();
  stream.write('d');
  await nextTurn();
  expect(writes).toEqual([['a', 'b', 'c'], ['d']]);
});

it('delivers every gathered message over a real WebSocket whole and in order, and the close after them', async () => {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const received: string[] = [];
  const closed = new Promise<number>((resolve) =>
    server.once('connection', (ws) => {
      ws.on('message', (data) => received.push(data.toString()));
      ws.on('close', (code) => resolve(code));
    }),
  );
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  let gather = new WriteGather(undefined);
  client.once('upgrade', (res) => (gather = new WriteGather(res.socket)));
  await new Promise<void>((resolve) => client.once('open', resolve));
  const sent = Array.from({ length: 50 }, (_, i) => `message ${i} ${'x'.repeat(i * 40)}`);
  for (const message of sent) {
    gather.hold();
    client.send(message);
  }
  gather.hold();
  client.close(1000, 'done');
  expect(await closed).toBe(1000);
  expect(received).toEqual(sent);
  server.close();
});
