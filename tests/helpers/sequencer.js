// jest's default order (slowest and previously failed first), except that the suite-wide checks
// (`*.last.test.ts`, e.g. the error-body audit) run after everything else, when there is a whole
// run to check. Plain JavaScript, since jest loads it without a transform.
const Sequencer = require('@jest/test-sequencer').default;

class LastChecksSequencer extends Sequencer {
  async sort(tests) {
    const sorted = await super.sort(tests);
    const isLast = (test) => test.path.endsWith('.last.test.ts');
    return [...sorted.filter((test) => !isLast(test)), ...sorted.filter(isLast)];
  }
}

module.exports = LastChecksSequencer;
