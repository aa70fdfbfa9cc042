/**
 * The idle sweep, on PROXY_CLEANUP_CRON (every minute by default). A sweep that is still running
 * when the next tick comes is not doubled.
 */
import cron from 'node-cron';
import type { StreamingProxyManager } from './manager';
import type { Logger } from '../logger';

export interface Culler {
  stop(): void;
}

export function startCuller(manager: StreamingProxyManager, expression: string, logger: Logger): Culler {
  let running = false;
  const task = cron.schedule(expression, async () => {
    if (running) return;
    running = true;
    try {
      await manager.sweep();
    } catch (error) {
      logger.warn('StreamingProxy idle sweep failed', { error: (error as Error).message });
    } finally {
      running = false;
    }
  });
  return { stop: () => void task.stop() };
}
