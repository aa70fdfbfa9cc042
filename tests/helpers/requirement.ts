/**
 * One rule for suites that need a part of the machine (a Docker engine, PostgreSQL, nginx,
 * promtool, the two-node swarm): with the part there, the suite runs; without it, it is skipped
 * with one line on stderr saying why, unless the part's CTLL_REQUIRE_* variable is 1 (.ci/run sets
 * them all), where the same absence is one failing test that names the reason. A run that skipped
 * its integration tests must not pass for one that ran them.
 */

export interface Requirement {
  /** What is needed, in a few words ("nginx", "a Docker engine and the proxy image"). */
  needs: string;
  /** The variable that turns the skip into a failure. */
  requireVar: string;
}

function required(requirement: Requirement): boolean {
  return process.env[requirement.requireVar] === '1';
}

function skipLine(requirement: Requirement, title: string, missing: string): void {
  process.stderr.write(`skipped "${title}": ${missing} (${requirement.requireVar}=1 makes this a failure)\n`);
}

/** `describe(title, body)` when `missing` is undefined; otherwise a skip, or one failing test when required. */
export function describeIf(requirement: Requirement, missing: string | undefined, title: string, body: () => void): void {
  if (missing === undefined) {
    describe(title, body);
    return;
  }
  if (required(requirement)) {
    describe(title, () => {
      it(`has ${requirement.needs} (${requirement.requireVar}=1)`, () => {
        throw new Error(`"${title}" cannot run: ${missing}`);
      });
    });
    return;
  }
  skipLine(requirement, title, missing);
  describe.skip(title, body);
}

/** One test under the same rule, for a suite where only that test needs the part. */
export function testIf(requirement: Requirement, missing: string | undefined, title: string, body: () => Promise<void>, timeoutMs?: number): void {
  if (missing === undefined) {
    test(title, body, timeoutMs);
    return;
  }
  if (required(requirement)) {
    test(title, () => {
      throw new Error(`${requirement.needs} is needed (${requirement.requireVar}=1) but cannot run: ${missing}`);
    });
    return;
  }
  skipLine(requirement, title, missing);
  test.skip(title, body);
}
