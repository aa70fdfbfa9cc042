/**
 * What each audience sees of a share. The owner sees everything they registered, share token
 * included; the user's proxy sees only what it needs to connect (never the token or the
 * desktop's local address). Nothing else ever sees a share.
 */
import type { ShareRecord } from './registry';

export interface ProxyShareView {
  tunnelId: string;
  publicUrl: string;
  registeredAt: string;
  lastHeartbeatAt: string;
  expiresAt: string;
}

export interface OwnerShareView extends ProxyShareView {
  localUrl: string | null;
  shareToken: string | null;
}

export function proxyView(record: ShareRecord): ProxyShareView {
  return {
    tunnelId: record.tunnelId,
    publicUrl: record.publicUrl,
    registeredAt: new Date(record.registeredAt).toISOString(),
    lastHeartbeatAt: new Date(record.lastHeartbeatAt).toISOString(),
    expiresAt: new Date(record.expiresAt).toISOString(),
  };
}

export function ownerView(record: ShareRecord): OwnerShareView {
  return { ...proxyView(record), localUrl: record.localUrl ?? null, shareToken: record.shareToken ?? null };
}
