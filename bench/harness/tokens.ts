/** The tokens every bench server accepts (loopback only, made up for the run). Constants only: baselines import this. */
export const SUITE = 'bench';
export const POOL = 'p1';

export const TOKENS = {
  admin: 'bench-admin-token-0123456789',
  worker: 'bench-worker-token-0123456789',
  client: 'bench-client-token-0123456789',
} as const;
