/**
 * Where `ctll-bridge login` keeps the sign-in on each system, and that only its owner can read it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bridgeConfigDir } from '../src/config-dir';
import { CredentialStore, type StoredCredentials } from '../src/auth/credential-store';

describe('the sign-in file', () => {
  it('lives in the user configuration directory each system names', () => {
    expect(bridgeConfigDir('linux', { XDG_CONFIG_HOME: '/xdg', HOME: '/home/ann' })).toBe('/xdg/ctll');
    expect(bridgeConfigDir('linux', { HOME: '/home/ann' })).toBe('/home/ann/.config/ctll');
    // The XDG spec says a relative value is to be ignored.
    expect(bridgeConfigDir('linux', { XDG_CONFIG_HOME: 'relative/dir', HOME: '/home/ann' })).toBe('/home/ann/.config/ctll');
    expect(bridgeConfigDir('darwin', { XDG_CONFIG_HOME: '/xdg', HOME: '/Users/ann' })).toBe('/Users/ann/Library/Application Support/ctll');
    expect(bridgeConfigDir('win32', { APPDATA: 'C:\\Users\\ann\\AppData\\Roaming', USERPROFILE: 'C:\\Users\\ann' })).toBe('C:\\Users\\ann\\AppData\\Roaming\\ctll');
  });

  it('is written 0600 in a 0700 folder, even into a folder others could read, and removed on request', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-store-'));
    try {
      const dir = path.join(home, 'ctll');
      fs.mkdirSync(dir, { mode: 0o755 });
      const store = new CredentialStore(dir);
      expect(store.read()).toBeUndefined();
      const credentials: StoredCredentials = {
        server: 'https://relay.example.com',
        issuer: 'https://id.example.com/',
        clientId: 'native-app',
        audience: 'https://relay.example.com/api',
        scopes: ['openid', 'offline_access'],
        refreshToken: 'rt-1',
      };
      store.write(credentials);
      expect(fs.statSync(store.file).mode & 0o777).toBe(0o600);
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      store.write({ ...credentials, refreshToken: 'rt-2' });
      expect(store.read()).toEqual({ ...credentials, refreshToken: 'rt-2' });
      // No temporary file is left beside it.
      expect(fs.readdirSync(dir)).toEqual(['credentials.json']);
      expect(store.remove()).toBe(true);
      expect(store.read()).toBeUndefined();
      expect(store.remove()).toBe(false);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
