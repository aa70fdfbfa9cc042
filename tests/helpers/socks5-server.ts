/**
 * A SOCKS5 proxy for tests: no authentication, CONNECT only (RFC 1928), and only to this computer,
 * so a test can put a bridge behind it and see which connections it carried.
 */
import net from 'node:net';

export interface Socks5Server {
  /** socks5://127.0.0.1:<port> */
  url: string;
  /** Every CONNECT it carried, as host:port of the destination. */
  readonly connections: string[];
  close(): Promise<void>;
}

const VERSION = 5;
const NO_AUTH = 0;
const CONNECT = 1;
const REPLY = { succeeded: 0, notAllowed: 2, hostUnreachable: 4, commandNotSupported: 7 };

export async function startSocks5Server(): Promise<Socks5Server> {
  const connections: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    void handshake(client, connections, sockets);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `socks5://127.0.0.1:${port}`,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function handshake(client: net.Socket, connections: string[], sockets: Set<net.Socket>): Promise<void> {
  const read = reader(client);
  const [version, methodCount] = await read(2);
  const methods = await read(methodCount);
  if (version !== VERSION || !methods.includes(NO_AUTH)) return void client.end(Buffer.from([VERSION, 0xff]));
  client.write(Buffer.from([VERSION, NO_AUTH]));
  const [, command, , addressType] = await read(4);
  let host: string;
  if (addressType === 1) host = [...(await read(4))].join('.');
  else if (addressType === 3) host = (await read((await read(1))[0])).toString('latin1');
  else if (addressType === 4) host = ((await read(16)).toString('hex').match(/.{4}/g) ?? []).join(':');
  else return void client.destroy();
  const port = (await read(2)).readUInt16BE(0);
  if (command !== CONNECT) return reply(client, REPLY.commandNotSupported);
  // Tests reach only this computer.
  if (!['127.0.0.1', 'localhost', '0000:0000:0000:0000:0000:0000:0000:0001'].includes(host)) return reply(client, REPLY.notAllowed);
  const upstream = net.connect(port, host === 'localhost' ? '127.0.0.1' : host);
  sockets.add(upstream);
  upstream.once('close', () => sockets.delete(upstream));
  upstream.once('error', () => {
    if (!client.destroyed) reply(client, REPLY.hostUnreachable);
    client.destroy();
  });
  upstream.once('connect', () => {
    connections.push(`${host}:${port}`);
    client.write(Buffer.from([VERSION, REPLY.succeeded, 0, 1, 0, 0, 0, 0, 0, 0]));
    const rest = read.rest();
    if (rest.length > 0) upstream.write(rest);
    client.pipe(upstream).pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
}

function reply(client: net.Socket, code: number): void {
  client.end(Buffer.from([VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]));
}

/** Reads exactly n bytes at a time from a socket in paused mode; rest() hands over what came early. */
function reader(socket: net.Socket): ((n: number) => Promise<Buffer>) & { rest(): Buffer } {
  let buffered = Buffer.alloc(0);
  let waiting: { n: number; resolve: (data: Buffer) => void } | undefined;
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    serve();
  };
  const serve = () => {
    if (!waiting || buffered.length < waiting.n) return;
    const { n, resolve } = waiting;
    waiting = undefined;
    const data = buffered.subarray(0, n);
    buffered = buffered.subarray(n);
    resolve(data);
  };
  socket.on('data', onData);
  const read = (n: number) =>
    new Promise<Buffer>((resolve) => {
      waiting = { n, resolve };
      serve();
    });
  return Object.assign(read, {
    rest() {
      socket.off('data', onData);
      const rest = buffered;
      buffered = Buffer.alloc(0);
      return rest;
    },
  });
}
