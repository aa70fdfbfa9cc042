// The localtunnel client for the bench: opens one tunnel per requested subdomain from the
// localtunnel server at argv[2] to the local port argv[3], reports over IPC once all are up, and
// closes them when the bench goes away. Run with node from bench/peers (its own node_modules).
const localtunnel = require('localtunnel');

async function main() {
  const [host, localPort, names] = process.argv.slice(2);
  const tunnels = [];
  for (const subdomain of names.split(',')) {
    const tunnel = await localtunnel({ port: Number(localPort), host, subdomain, local_host: '127.0.0.1' });
    tunnel.on('error', (error) => process.send && process.send({ type: 'error', message: error.message }));
    tunnels.push(tunnel);
  }
  if (process.send) process.send({ type: 'ready', urls: tunnels.map((tunnel) => tunnel.url) });
  const close = () => {
    for (const tunnel of tunnels) tunnel.close();
    process.exit(0);
  };
  process.on('disconnect', close);
  process.on('SIGTERM', close);
}

main().catch((error) => {
  process.stderr.write(`lt-client: ${error.message}\n`);
  process.exit(1);
});
