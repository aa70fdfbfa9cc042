/**
 * Stand-in for the streaming-proxy bundle in the streams scenario: the process driver starts it
 * through PROXY_SCRIPT. It installs the garbage-collection hook (gc-hook.ts) and loads the real
 * bundle, which keeps its IPC channel to api-backend. The driver passes proxies a fixed
 * environment, so paths come from this file's place.
 */
import path from 'node:path';
import './gc-hook';

require(path.resolve(__dirname, '../../../streaming-proxy/dist/streaming-proxy.js'));
