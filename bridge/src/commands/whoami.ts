/**
 * `ctll-bridge whoami`: who the bridge is signed in as, at which relay, and until when its access
 * token runs. A token near its end is renewed first, which also proves the sign-in still works.
 */
import { signedInTokenSource } from '../auth/signed-in';
import { describeUser } from './login';
import { credentialStore, type CommandContext } from './context';

/**
 * False when nobody is signed in. Rejects with SignedOutError when the provider refuses the sign-in.
 * The answer goes to stdout (as one JSON object with `json`); "not signed in" is an error, on stderr.
 */
export async function whoami(context: CommandContext, options: { json?: boolean } = {}): Promise<boolean> {
  const store = credentialStore(context);
  const stored = store.read();
  if (!stored) {
    context.stderr.write('Not signed in. Sign in with: ctll-bridge login --server <relay>\n');
    return false;
  }
  const source = await signedInTokenSource(store, stored);
  try {
    await source.get();
  } finally {
    source.close();
  }
  const { server, subject, displayName } = source.current;
  const expiresAt = source.expiresAt();
  if (options.json) {
    const expires = expiresAt === undefined ? null : new Date(expiresAt).toISOString();
    context.stdout.write(`${JSON.stringify({ server, subject, displayName: displayName ?? null, accessTokenExpiresAt: expires })}\n`);
    return true;
  }
  context.stdout.write(`${describeUser(displayName, subject)} at ${server}\n`);
  if (expiresAt !== undefined) {
    context.stdout.write(`access token expires ${new Date(expiresAt).toISOString()} (in ${Math.max(0, Math.round((expiresAt - Date.now()) / 1000))} s); renewed automatically\n`);
  }
  return true;
}
