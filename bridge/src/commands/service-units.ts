/**
 * The files and command lines that make the bridge start with the person's session: a systemd user
 * unit (Linux), a launchd agent (macOS), a Task Scheduler entry (Windows). Each is plain text made
 * from the bridge's command line; none ever holds a token (the command line carries --token-file
 * or nothing, and the bridge reads the stored login itself).
 */

export const SERVICE_NAME = 'ctll-bridge';
export const LAUNCHD_LABEL = 'com.cloudtolocalllm.bridge';

/** Exit codes restarting cannot fix: 2 is a bad flag, 77 a refused credential (see cli.ts). */
export const FINAL_EXIT_CODES = [2, 77] as const;

export interface ServiceSpec {
  /** The program and its arguments, absolute paths throughout. */
  command: readonly string[];
  /** Variables the service needs to find the same stored login as the person who installed it. */
  environment: Readonly<Record<string, string>>;
}

export function systemdUnit(spec: ServiceSpec): string {
  const environment = Object.entries(spec.environment).map(([name, value]) => `Environment=${systemdQuote(`${name}=${value}`)}\n`);
  return (
    '[Unit]\n' +
    'Description=CloudToLocalLLM bridge: connects the LLM server on this computer to the relay\n' +
    'Documentation=https://www.npmjs.com/package/ctll-bridge\n' +
    '\n' +
    '[Service]\n' +
    'Type=simple\n' +
    `ExecStart=${spec.command.map(systemdQuote).join(' ')}\n` +
    environment.join('') +
    // Network failures are the bridge's own business (it retries with backoff); this restarts it
    // after a crash, and leaves it stopped when restarting cannot help.
    'Restart=on-failure\n' +
    'RestartSec=10\n' +
    `RestartPreventExitStatus=${FINAL_EXIT_CODES.join(' ')}\n` +
    'NoNewPrivileges=yes\n' +
    '\n' +
    '[Install]\n' +
    'WantedBy=default.target\n'
  );
}

/**
 * One ExecStart word: bare when it is plain, else double-quoted with C-style escapes. `%` (a unit
 * specifier) and `$` (variable expansion) are doubled so a path containing them stays literal.
 */
export function systemdQuote(word: string): string {
  const literal = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(literal)) return literal;
  return `"${literal.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

export function launchdPlist(spec: ServiceSpec, logFile: string): string {
  const strings = (values: readonly string[]) => values.map((value) => `    <string>${xml(value)}</string>\n`).join('');
  const environment = Object.entries(spec.environment);
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
    '<plist version="1.0">\n' +
    '<dict>\n' +
    `  <key>Label</key>\n  <string>${LAUNCHD_LABEL}</string>\n` +
    `  <key>ProgramArguments</key>\n  <array>\n${strings(spec.command)}  </array>\n` +
    (environment.length === 0
      ? ''
      : `  <key>EnvironmentVariables</key>\n  <dict>\n${environment
          .map(([name, value]) => `    <key>${xml(name)}</key>\n    <string>${xml(value)}</string>\n`)
          .join('')}  </dict>\n`) +
    '  <key>RunAtLoad</key>\n  <true/>\n' +
    // Restarted after a failure, left alone after a clean stop; launchd has no list of final exit
    // codes, so the throttle keeps a refused credential from spinning.
    '  <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n' +
    '  <key>ThrottleInterval</key>\n  <integer>30</integer>\n' +
    `  <key>StandardOutPath</key>\n  <string>${xml(logFile)}</string>\n` +
    `  <key>StandardErrorPath</key>\n  <string>${xml(logFile)}</string>\n` +
    '</dict>\n' +
    '</plist>\n'
  );
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * Windows: a Task Scheduler entry that starts the bridge when the person logs on, as them (so it
 * finds their stored login under %APPDATA%). Not `sc.exe create`: a Windows service must answer
 * the Service Control Manager, which node.exe does not, so it would be killed after 30 s
 * (error 1053) unless wrapped by a service host such as WinSW.
 */
export function windowsCommands(spec: ServiceSpec): { install: string; uninstall: string; status: string } {
  const setEnv = Object.entries(spec.environment).map(([name, value]) => `set "${name}=${value}" && `).join('');
  const program = spec.command.map(windowsQuote).join(' ');
  const run = setEnv === '' ? program : `cmd.exe /d /c ${setEnv}${program}`;
  // /TR takes the whole command as one argument: its inner quotes are escaped with \ for schtasks.
  return {
    install: `schtasks.exe /Create /F /TN ${SERVICE_NAME} /SC ONLOGON /RL LIMITED /TR "${run.replace(/"/g, '\\"')}"`,
    uninstall: `schtasks.exe /Delete /F /TN ${SERVICE_NAME}`,
    status: `schtasks.exe /Query /V /FO LIST /TN ${SERVICE_NAME}`,
  };
}

function windowsQuote(word: string): string {
  return /^[A-Za-z0-9_@+=:,./\\-]+$/.test(word) ? word : `"${word.replace(/"/g, '""')}"`;
}
