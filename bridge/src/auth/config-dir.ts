/**
 * Where a signed-in bridge keeps its credentials: the user's own configuration directory, as each
 * system names it. The caller passes the environment in (only the CLI reads process.env).
 */
import os from 'node:os';
import path from 'node:path';

export interface ConfigDirEnv {
  XDG_CONFIG_HOME?: string;
  APPDATA?: string;
}

/** `$XDG_CONFIG_HOME/ctll` (else `~/.config/ctll`) on Linux and the BSDs, `~/Library/Application Support/ctll` on macOS, `%APPDATA%\ctll` on Windows. */
export function configDir(env: ConfigDirEnv, platform: NodeJS.Platform = process.platform, home: string = os.homedir()): string {
  if (platform === 'win32') return path.win32.join(env.APPDATA || path.win32.join(home, 'AppData', 'Roaming'), 'ctll');
  if (platform === 'darwin') return path.posix.join(home, 'Library', 'Application Support', 'ctll');
  // XDG: a relative value is invalid and must be ignored.
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(home, '.config');
  return path.join(base, 'ctll');
}
