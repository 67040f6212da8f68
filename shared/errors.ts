/**
 * The one registry of error codes: each code with its HTTP status and meaning.
 * Server answers, agent results and the CLI all use these codes; the README's
 * error table is kept equal to this registry by a test.
 */

export const ERROR_CODES = {
  invalid_request: { status: 400, summary: 'body fails validation; message names the field' },
  unauthorized: { status: 401, summary: 'missing or unknown token' },
  forbidden: { status: 403, summary: 'token not valid for the suite' },
  not_found: { status: 404, summary: 'no such route' },
  method_not_allowed: { status: 405, summary: 'the route exists with another method' },
  payload_too_large: { status: 413, summary: 'the request body, as sent, is over --max-payload-bytes' },
  overloaded: { status: 429, summary: "the pool's queue is full" },
  rate_limited: { status: 429, summary: 'more than 20 failed authentications from this address in 10 s; retry after Retry-After seconds' },
  worker_disconnected: { status: 502, summary: "the worker's socket closed while it held the job" },
  target_unreachable: { status: 502, summary: 'agent: connecting to or talking with the target failed' },
  target_timeout: { status: 502, summary: 'agent: the target did not answer within the job timeout' },
  target_forbidden: { status: 502, summary: "agent: the target host is not in the agent's --allow-host list" },
  response_too_large: { status: 502, summary: "agent: the target's response is over the agent's size limit" },
  invalid_job: { status: 502, summary: 'agent: the job could not be performed as given' },
  cancelled: { status: 502, summary: "the job was given up: the CI client went away (metrics only), or the agent's drain grace ran out" },
  no_worker: { status: 503, summary: 'no open worker in the pool (after waitForWorkerMs)' },
  shutting_down: { status: 503, summary: 'the server is draining' },
  timeout: { status: 504, summary: 'the deadline passed; the worker is sent cancel' },
  internal: { status: 500, summary: 'a bug in the server; reported with a log line' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Codes an agent may put in a `result` frame. */
export const AGENT_ERROR_CODES = [
  'target_unreachable',
  'target_timeout',
  'target_forbidden',
  'response_too_large',
  'invalid_job',
  'cancelled',
] as const satisfies readonly ErrorCode[];

export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** A failure with a stable code; `status` is the HTTP status the code maps to. */
export class FlowtestError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FlowtestError';
    this.code = code;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** WebSocket close codes the server uses. */
export const CLOSE_CODES = {
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  messageTooBig: 1009,
} as const;
