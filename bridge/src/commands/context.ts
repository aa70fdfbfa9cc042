/**
 * What a subcommand gets from the CLI (the only module that reads process.env and argv), and the
 * exit codes they share with the bridge itself.
 */
import { CredentialStore } from '../auth/credential-store';
import { bridgeConfigDir, type HomeEnv } from '../config-dir';

/** Exit codes besides 0 (done), 2 (usage) and 70 (an error nobody caught). */
export const EXIT = Object.freeze({
  /** The identity provider refused the stored sign-in (revoked, expired): run `ctll-bridge login`. */
  SIGNED_OUT: 77,
  /** The relay offers no device login (dev auth, or no device client set): the message says what to use instead. */
  SIGN_IN_UNAVAILABLE: 78,
  /** Signing in or out failed for another reason (the relay or the provider unreachable, the login timed out). */
  FAILED: 1,
});

export interface CommandContext {
  env: HomeEnv & { CI?: string; DISPLAY?: string; WAYLAND_DISPLAY?: string };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  platform: NodeJS.Platform;
}

export function credentialStore(context: CommandContext): CredentialStore {
  return new CredentialStore(bridgeConfigDir(context.platform, context.env));
}
