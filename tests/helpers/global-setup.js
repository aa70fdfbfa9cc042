// Once per jest run, before any test file: a fresh, empty record of the error bodies the run sees
// (tests/helpers/error-bodies.ts). Plain JavaScript, since jest loads it without a transform.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

module.exports = async () => {
  const file = path.join(os.tmpdir(), `ctll-error-bodies-${process.pid}.ndjson`);
  fs.rmSync(file, { force: true });
  process.env.CTLL_ERROR_BODIES = file;
};
