/** The token store every flowtest-built bench server uses (kept apart from tokens.ts so baselines load none of the product). */
import { TokenStore } from '../../server/auth.ts';
import { SUITE, TOKENS } from './tokens.ts';

export function benchTokenStore(): TokenStore {
  return new TokenStore({ admin: [TOKENS.admin], suites: { [SUITE]: { worker: [TOKENS.worker], client: [TOKENS.client] } } });
}
