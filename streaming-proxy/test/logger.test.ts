import { createLogger } from '../src/logger';

function capture(level: 'error' | 'warn' | 'info' | 'debug') {
  const lines: string[] = [];
  return { lines, logger: createLogger(level, '0123456789abcdef', (line) => lines.push(line)) };
}

describe("the proxy's log lines", () => {
  it('are one JSON object per line with component, owner hash, level, message, time and the fields given', () => {
    const { lines, logger } = capture('info');
    logger.warn('desktop broke flow control; closing its tunnel', { link: 't1', detail: 'over window' });
    expect(lines).toHaveLength(1);
    expect(lines[0].endsWith('\n')).toBe(true);
    const entry = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(entry).toMatchObject({ component: 'streaming-proxy', owner: '0123456789abcdef', level: 'warn', message: 'desktop broke flow control; closing its tunnel', link: 't1', detail: 'over window' });
    expect(Number.isNaN(Date.parse(String(entry.timestamp)))).toBe(false);
  });

  it('leave out what is below LOG_LEVEL', () => {
    const { lines, logger } = capture('warn');
    logger.debug('tunnel credential renewed');
    logger.info('desktop connected');
    logger.error('listen failed');
    expect(lines.map((line) => (JSON.parse(line) as { level: string }).level)).toEqual(['error']);
  });

  it('never throw on a field JSON cannot hold, and keep the message', () => {
    const { lines, logger } = capture('info');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => logger.info('odd field', { cyclic, big: 10n })).not.toThrow();
    expect((JSON.parse(lines[0]) as { message: string }).message).toBe('odd field');
  });

  it('cannot be tricked into another level or owner by a field of the same name', () => {
    const { lines, logger } = capture('info');
    logger.info('hello', { level: 'error', message: 'forged', owner: 'ffffffffffffffff', component: 'api-backend' });
    expect(JSON.parse(lines[0])).toMatchObject({ level: 'info', message: 'hello', owner: '0123456789abcdef', component: 'streaming-proxy' });
  });
});
