/**
 * Where the bridge keeps what outlives one run (the stored login, its settings), per platform:
 * $XDG_CONFIG_HOME/ctll or ~/.config/ctll on Linux, ~/Library/Application Support/ctll on macOS,
 * %APPDATA%\ctll on Windows. The caller passes the environment in; nothing here reads process.env.
 */
import path from 'node:path';

/** The variables the locations are made of, as the CLI read them. */
export interface HomeEnv {
  HOME?: string;
  XDG_CONFIG_HOME?: string;
  APPDATA?: string;
  USERPROFILE?: string;
}

/** Path functions for the platform a file is meant for (a Windows path is built with \ even on Linux). */
export function pathFor(platform: NodeJS.Platform): path.PlatformPath {
  return platform === 'win32' ? path.win32 : path.posix;
}

export function homeDir(platform: NodeJS.Platform, env: HomeEnv): string {
  const home = platform === 'win32' ? (env.USERPROFILE ?? env.HOME) : env.HOME;
  if (!home) throw new Error(`cannot tell the home directory: ${platform === 'win32' ? 'USERPROFILE' : 'HOME'} is not set`);
  return home;
}

/** The platform's per-user configuration directory, which other programs' settings share. */
export function userConfigBase(platform: NodeJS.Platform, env: HomeEnv): string {
  const p = pathFor(platform);
  if (platform === 'win32') return env.APPDATA ?? p.join(homeDir(platform, env), 'AppData', 'Roaming');
  if (platform === 'darwin') return p.join(homeDir(platform, env), 'Library', 'Application Support');
  // XDG says a relative XDG_CONFIG_HOME is invalid and to be ignored.
  return env.XDG_CONFIG_HOME && p.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : p.join(homeDir(platform, env), '.config');
}

/** The bridge's own directory inside it. */
export function bridgeConfigDir(platform: NodeJS.Platform, env: HomeEnv): string {
  return pathFor(platform).join(userConfigBase(platform, env), 'ctll');
}
