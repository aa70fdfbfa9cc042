/**
 * The operator's routes, for callers whose token carries ADMIN_CLAIM (a relay key never does):
 *   GET  /api/admin/overview                 the relay at a glance (operator/overview.ts)
 *   POST /api/admin/proxies/:ownerHash/stop  stop one user's proxy, recorded with reason `operator`
 * Users are named by owner hash only, here and in what is answered.
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { BadRequestError, NotOperatorError, type OperatorStop } from '@ctll/protocol';
import type { Caller } from '../auth/authenticator';
import type { StreamingProxyManager } from '../proxy/manager';
import type { ProxyClient } from '../proxy/proxy-client';
import { userHash } from '../proxy/naming';
import { OperatorView } from '../operator/overview';
import type { RecentErrors } from '../operator/recent-errors';
import type { Logger } from '../logger';

export interface OperatorRouteOptions {
  manager: StreamingProxyManager;
  client: ProxyClient;
  /** PROXY_MAX */
  maxProxies: number;
  errors: RecentErrors;
  logger: Logger;
}

const OWNER_HASH = /^[0-9a-f]{16}$/;

export function operatorRoutes({ manager, client, maxProxies, errors, logger }: OperatorRouteOptions): Router {
  const view = new OperatorView({ driver: manager.driver, client, maxProxies, errors });
  manager.on('swept', (look) => view.sample(look.running, look.statuses, look.at.getTime()));
  const router = Router();
  router.use('/api/admin', onlyOperators);

  router.get('/api/admin/overview', async (_req, res, next) => {
    try {
      res.set('cache-control', 'no-store').json(await view.overview());
    } catch (error) {
      next(error);
    }
  });

  router.post('/api/admin/proxies/:ownerHash/stop', async (req, res, next) => {
    try {
      const { ownerHash } = req.params;
      if (!OWNER_HASH.test(ownerHash)) throw new BadRequestError('expected an owner hash: 16 lower-case hex digits');
      const operator = userHash((res.locals.caller as Caller).userId);
      logger.info('StreamingProxy stop asked by an operator', { owner: ownerHash, operator });
      const body: OperatorStop = { owner: ownerHash, stopped: await manager.stopOwnerHash(ownerHash, 'operator') };
      res.json(body);
    } catch (error) {
      next(error);
    }
  });

  return router;
}

function onlyOperators(_req: Request, res: Response, next: NextFunction): void {
  const caller = res.locals.caller as Caller;
  // A key acts for its user within a narrow scope; even an operator's key is not the operator.
  if (caller.key || caller.operator !== true) {
    next(new NotOperatorError("this is the relay operator's view: your sign-in does not carry the operator role"));
    return;
  }
  next();
}
