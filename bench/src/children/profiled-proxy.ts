/**
 * Stand-in for the streaming-proxy bundle while profiling (`--profile`): the process driver
 * starts it through PROXY_SCRIPT. It starts V8's sampling profiler in-process, loads the real
 * bundle (which keeps its IPC channel to api-backend), and writes a .cpuprofile when it gets
 * SIGUSR2. The driver passes proxies a fixed environment, so paths come from this file's place.
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';

const realProxy = path.resolve(__dirname, '../../../streaming-proxy/dist/streaming-proxy.js');
const profileDir = path.resolve(__dirname, '../profiles');

const session = new inspector.Session();
session.connect();
session.post('Profiler.enable', () => {
  session.post('Profiler.setSamplingInterval', { interval: 200 }, () => {
    session.post('Profiler.start', () => {
      require(realProxy);
    });
  });
});

process.on('SIGUSR2', () => {
  session.post('Profiler.stop', (error, result) => {
    if (error) return;
    fs.mkdirSync(profileDir, { recursive: true });
    fs.writeFileSync(path.join(profileDir, `streaming-proxy-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    process.send?.({ type: 'profile-written' });
  });
});
