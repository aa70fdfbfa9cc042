/**
 * The subcommands beside running the bridge: `login`, `logout`, `whoami`. Each parses its own
 * flags and resolves to the process's exit code; the CLI only dispatches on the first word.
 */
import { parseArgs } from 'node:util';
import { OptionError, SignedOutError, SignInUnavailableError } from '../errors';
import { EXIT, type CommandContext } from './context';
import { login } from './login';
import { logout } from './logout';
import { whoami } from './whoami';

export { EXIT, credentialStore, type CommandContext } from './context';

export const SUBCOMMANDS = ['login', 'logout', 'whoami'] as const;
export type Subcommand = (typeof SUBCOMMANDS)[number];

export function isSubcommand(word: string | undefined): word is Subcommand {
  return (SUBCOMMANDS as readonly string[]).includes(word ?? '');
}

export const SUBCOMMAND_USAGE = `Sign-in:
  ctll-bridge login --server <url> [--no-browser]
                           sign in with your identity provider (you approve on any device);
                           afterwards run plain \`ctll-bridge\`: it stays signed in
  ctll-bridge whoami [--json]
                           who this computer is signed in as, and until when the token runs
  ctll-bridge logout       revoke the sign-in and delete it from this computer
`;

export async function runSubcommand(name: Subcommand, argv: string[], context: CommandContext): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    context.stdout.write(SUBCOMMAND_USAGE);
    return 0;
  }
  try {
    switch (name) {
      case 'login': {
        const { values } = parseArgs({ args: argv, options: { server: { type: 'string' }, 'no-browser': { type: 'boolean' } }, strict: true });
        if (!values.server) throw new OptionError('--server', 'is required (the relay, e.g. ctll-bridge login --server https://relay.example.com)');
        await login({ server: values.server, browser: !values['no-browser'] }, context);
        return 0;
      }
      case 'logout':
        parseArgs({ args: argv, options: {}, strict: true });
        await logout(context);
        return 0;
      case 'whoami': {
        const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } }, strict: true });
        return (await whoami(context, { json: values.json })) ? 0 : EXIT.FAILED;
      }
    }
  } catch (error) {
    return reportFailure(name, error as Error, context);
  }
}

function reportFailure(name: Subcommand, error: Error, context: CommandContext): number {
  context.stderr.write(`ctll-bridge ${name}: ${error.message}\n`);
  if (error instanceof SignedOutError) return EXIT.SIGNED_OUT;
  if (error instanceof SignInUnavailableError) return EXIT.SIGN_IN_UNAVAILABLE;
  // parseArgs's own errors carry a code; ours are OptionErrors.
  if (error instanceof OptionError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) return 2;
  return EXIT.FAILED;
}
