/**
 * The test LLM server (tests/helpers/llm-server.ts) in a process of its own, so that the direct
 * call and every tunnel reach the same server over real loopback sockets, and the server never
 * shares an event loop with the web client that measures it. Reports its port over IPC and exits
 * when the bench goes away.
 */
import { startLlmServer } from '../../../tests/helpers/llm-server';

async function main(): Promise<void> {
  // 5 ms between tokens is the streaming scenario; requests may override it (?delayMs=).
  const server = await startLlmServer({ tokenDelayMs: 5, tokens: 200, recordSeen: false });
  process.send?.({ type: 'listening', port: server.port });
  process.on('disconnect', () => void server.close().finally(() => process.exit(0)));
  process.on('SIGTERM', () => void server.close().finally(() => process.exit(0)));
}

void main();
