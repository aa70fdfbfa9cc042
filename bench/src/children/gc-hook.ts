/**
 * Preloaded into a process the streams scenario measures (`node --require gc-hook.cjs`, or from
 * gc-proxy.ts): on SIGUSR2 it runs a full garbage collection through the in-process inspector and
 * writes `process.memoryUsage()` to bench/.tmp/gc/<pid>.json. Resident memory alone mixes what a
 * process holds with garbage it has not collected yet; after a full collection, heap and
 * external memory are what it really holds.
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';

const gcDir = path.resolve(__dirname, '../gc');
const session = new inspector.Session();
session.connect();

process.on('SIGUSR2', () => {
  session.post('HeapProfiler.collectGarbage', () => {
    fs.mkdirSync(gcDir, { recursive: true });
    const file = path.join(gcDir, `${process.pid}.json`);
    // Written whole under another name, then renamed, so the bench never reads half a file.
    fs.writeFileSync(`${file}.part`, JSON.stringify(process.memoryUsage()));
    fs.renameSync(`${file}.part`, file);
  });
});
