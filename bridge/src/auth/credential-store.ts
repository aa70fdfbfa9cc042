/**
 * The signed-in bridge's credentials on disk: one JSON file, readable and writable by its owner
 * only (0600, in a 0700 directory), replaced atomically so a crash never leaves half a refresh
 * token. The refresh token is a password's equal: it is never printed or logged.
 */
import fs from 'node:fs';
import path from 'node:path';

export const CREDENTIALS_FILE = 'credentials.json';

export interface StoredCredentials {
  /** The relay signed in to, as given to `login --server`. */
  server: string;
  issuer: string;
  clientId: string;
  audience: string;
  scopes: string[];
  refreshToken: string;
  /** The last access token and when it expires (ms since the epoch): a restart within its life needs no refresh. */
  accessToken?: string;
  accessTokenExpiresAt?: number;
  /** Who signed in: the token's subject, and a name or e-mail when the provider gave one. */
  subject?: string;
  displayName?: string;
}

export class CredentialStore {
  readonly file: string;

  constructor(readonly dir: string) {
    this.file = path.join(dir, CREDENTIALS_FILE);
  }

  /** The stored credentials, or undefined when nobody is signed in. */
  read(): StoredCredentials | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = JSON.parse(text) as Partial<StoredCredentials>;
    if (typeof parsed.refreshToken !== 'string' || typeof parsed.issuer !== 'string' || typeof parsed.clientId !== 'string') {
      throw new Error(`${this.file} is not a ctll-bridge credentials file`);
    }
    return parsed as StoredCredentials;
  }

  write(credentials: StoredCredentials): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // mkdir's mode applies only to a directory it creates; an existing one is tightened too.
    fs.chmodSync(this.dir, 0o700);
    const temp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(temp, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(temp, this.file);
  }

  /** Removes the file; true when there was one. */
  remove(): boolean {
    try {
      fs.unlinkSync(this.file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }
}
