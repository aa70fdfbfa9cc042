/**
 * The bridge's batches of short answers (src/poll-answers.ts) against a relay played by a plain
 * HTTP server that records what reaches it: the answers of one turn leave in one POST, a lone
 * answer as its own whole POST, and answers the relay refused (or a batch that failed) are
 * abandoned so their local requests stop.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeWhole, encodeWhole, POLL_BATCH_CONTENT_TYPE, RecordReader, type WholeHead } from '@ctll/protocol';
import { AnswerBatcher } from '../src/poll-answers';
import { RelayHttp } from '../src/poll-http';

interface Posted {
  path: string;
  contentType: string | undefined;
  /** The stream ids of the whole answers the POST held. */
  ids: string[];
}

let server: http.Server;
let posted: Posted[];
/** What the relay answers a batch with. */
let batchAnswer: { status: number; body: unknown };
let relay: RelayHttp;
const abandoned: Array<{ id: string; why?: string }> = [];

beforeEach(async () => {
  posted = [];
  abandoned.length = 0;
  batchAnswer = { status: 200, body: { refused: [] } };
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const batch = req.headers['content-type'] === POLL_BATCH_CONTENT_TYPE;
      const records = batch ? new RecordReader().push(body) : { ok: true as const, value: [body] };
      if (!records.ok) throw new Error(records.error);
      const ids = records.value.map((record) => {
        const frame = decodeWhole(record);
        if (!frame.ok) throw new Error(frame.error);
        return frame.value.head.id;
      });
      posted.push({ path: req.url ?? '', contentType: req.headers['content-type'], ids });
      const { status, body: answer } = batch ? batchAnswer : { status: 200, body: { ok: true } };
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new http.Agent({ keepAlive: true });
  relay = new RelayHttp(new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), agent, {}, () => 'tok');
});

afterEach(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const head = (id: string): WholeHead => ({ type: 'http_response', id, status: 200, headers: { 'content-length': '2' }, end: true });
const frame = (id: string) => encodeWhole(head(id), Buffer.from('{}'))!;

function batcher(): AnswerBatcher {
  return new AnswerBatcher({ http: relay, bridgeId: 'b1', abandon: (id, why) => abandoned.push({ id, why }) });
}

/** Sends `id` alone, as a port would without batches. */
const alone = (id: string) => () => {
  const req = relay.request('POST', `respond/b1/${id}`, { 'content-type': 'application/vnd.ctll.whole' });
  req.on('response', (res) => res.resume());
  req.end(frame(id));
};

async function until(check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > 5000) throw new Error('condition not met in 5 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

it('sends the answers ready in one turn as one POST, and a lone answer as its own whole POST', async () => {
  const answers = batcher();
  for (const id of ['s1', 's2', 's3']) answers.add(id, frame(id), alone(id));
  await until(() => posted.length === 1);
  expect(posted[0]).toEqual({ path: '/api/bridge/answers/b1', contentType: POLL_BATCH_CONTENT_TYPE, ids: ['s1', 's2', 's3'] });

  answers.add('s4', frame('s4'), alone('s4'));
  await until(() => posted.length === 2);
  expect(posted[1]).toMatchObject({ path: '/api/bridge/respond/b1/s4', ids: ['s4'] });
  expect(abandoned).toEqual([]);
});

it('abandons the answers the relay refused, saying why only for a malformed one', async () => {
  batchAnswer = {
    status: 200,
    body: { refused: [{ id: 'gone', code: 'unknown_request', message: 'no request gone is waiting' }, { id: 'bad', code: 'malformed_answer', message: 'broken head' }] },
  };
  const answers = batcher();
  for (const id of ['gone', 'fine', 'bad']) answers.add(id, frame(id), alone(id));
  await until(() => abandoned.length === 2);
  expect(abandoned).toEqual([{ id: 'gone', why: undefined }, { id: 'bad', why: expect.stringContaining('broken head') }]);
});

it('abandons every answer of a batch the relay refused whole', async () => {
  batchAnswer = { status: 400, body: { error: { code: 'malformed_answer', message: 'not a batch' } } };
  const answers = batcher();
  for (const id of ['a', 'b']) answers.add(id, frame(id), alone(id));
  await until(() => abandoned.length === 2);
  expect(abandoned.map(({ id }) => id)).toEqual(['a', 'b']);
  expect(abandoned[0].why).toContain('not a batch');
});
