/** The tokens every bench server accepts (loopback only, made up for the run). */
import { TokenStore } from '../../server/auth.ts';

export const SUITE = 'bench';
export const POOL = 'p1';

export const TOKENS = {
  admin: 'bench-admin-token-0123456789',
  worker: 'bench-worker-token-0123456789',
  client: 'bench-client-token-0123456789',
} as const;

export function benchTokenStore(): TokenStore {
  return new TokenStore({ admin: [TOKENS.admin], suites: { [SUITE]: { worker: [TOKENS.worker], client: [TOKENS.client] } } });
}
