/**
 * api-backend/src/config.ts is the one declaration of every setting: an operator reading
 * env.template or README, or deploying with compose, must meet the same settings and defaults.
 * A failure lists each problem with the file and the line to add (npm run settings:check says the same).
 */
import path from 'node:path';
import { checkCompose, checkEnvTemplate, checkReadme, declaredSettings, readDocs } from '../scripts/settings';

const declared = declaredSettings();
const docs = readDocs(path.join(__dirname, '..'));

describe('settings: one declaration, four documents', () => {
  it('env.template lists every setting under a comment, with the declared defaults', () => {
    expect(checkEnvTemplate(declared, docs.envTemplate)).toEqual([]);
  });

  it("README's settings table has a row for every setting, with the declared defaults", () => {
    expect(checkReadme(declared, docs.readme)).toEqual([]);
  });

  it("compose passes every setting to api-backend, falling back to the declared defaults", () => {
    expect(checkCompose(declared, docs.compose)).toEqual([]);
  });

  it('the swarm stack file passes every setting to api-backend too, falling back to the declared defaults', () => {
    expect(checkCompose(declared, docs.stack, 'docker-stack.yml')).toEqual([]);
  });

  it('a setting the stack file drops is named with the stack file and the line to add', () => {
    const dropped = docs.stack.replace(/^ {6}USER_MAX_STREAMS:.*\n/m, '');
    expect(checkCompose(declared, dropped, 'docker-stack.yml')).toEqual([
      `docker-stack.yml: api-backend's environment drops USER_MAX_STREAMS: add USER_MAX_STREAMS: "\${USER_MAX_STREAMS:-100}"`,
    ]);
  });

  it('a setting compose drops, or a default that drifted, is named with the line to fix', () => {
    const dropped = docs.compose.replace(/^ {6}AUDIT_BATCH_SIZE:.*\n/m, '').replace('${DATABASE_POOL_SIZE:-5}', '${DATABASE_POOL_SIZE:-7}');
    expect(checkCompose(declared, dropped)).toEqual([
      'docker-compose.production.yml: DATABASE_POOL_SIZE is "7" but its default in api-backend/src/config.ts is "5"',
      `docker-compose.production.yml: api-backend's environment drops AUDIT_BATCH_SIZE: add AUDIT_BATCH_SIZE: "\${AUDIT_BATCH_SIZE:-100}"`,
    ]);
  });

  it('a setting missing from env.template or README, or one that does not exist, is named', () => {
    const template = docs.envTemplate.replace(/^BRIDGE_MAX_QUEUE=.*\n/m, '').replace('PORT=8080\n', 'PORT=8080\nPORTS=9\n');
    expect(checkEnvTemplate(declared, template)).toEqual([
      expect.stringMatching(/^env\.template:\d+: PORTS is not a setting of api-backend\/src\/config\.ts/),
      expect.stringMatching(/^env\.template: BRIDGE_MAX_QUEUE is missing: add "BRIDGE_MAX_QUEUE=64"/),
    ]);
    const readme = docs.readme.replace(/^\| `BRIDGE_MAX_QUEUE` .*\n/m, '').replace('| `BRIDGE_GRACE_MS` | `30000` |', '| `BRIDGE_GRACE_MS` | `3000` |');
    expect(checkReadme(declared, readme)).toEqual([
      'README.md: BRIDGE_GRACE_MS\'s default is "3000" but api-backend/src/config.ts declares "30000"',
      expect.stringMatching(/^README\.md: BRIDGE_MAX_QUEUE is missing from the settings table/),
    ]);
  });
});
