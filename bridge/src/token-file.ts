/**
 * `--token-file`: the token or relay key read from a file, so it never shows in the process list
 * (argv is readable by every user of the computer) or in a service's unit file.
 */
import fs from 'node:fs';
import { OptionError } from './errors';

export interface TokenFile {
  token: string;
  /** Set when others can read the file: the token is as good as a password. */
  warning?: string;
}

/** The file holds nothing but the token; surrounding whitespace (a trailing newline) is dropped. */
export function readTokenFile(file: string, platform: NodeJS.Platform = process.platform): TokenFile {
  let text: string;
  let mode: number;
  try {
    mode = fs.statSync(file).mode;
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new OptionError('--token-file', `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const token = text.trim();
  if (token === '') throw new OptionError('--token-file', `${file} is empty`);
  // Windows has ACLs instead of mode bits; Node reports a mode there that means nothing.
  const exposed = platform !== 'win32' && (mode & 0o077) !== 0;
  return { token, warning: exposed ? `${file} can be read by other users of this computer: chmod 600 it` : undefined };
}
