/**
 * The single encode/decode pair for frames and JSON bodies. Nobody else calls
 * JSON.parse on protocol data: decoding never throws, it returns a typed result.
 */
import type { z } from 'zod';
import { fastJobFrame, fastResultFrame } from './hot-frames.ts';
import { PROTOCOL_SCAN_LIMITS, scanJson, type ScanLimits } from './json-scan.ts';
import { agentFrameSchema, serverFrameSchema, type AgentFrame, type ServerFrame } from './protocol.ts';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Close reasons are limited to 123 bytes by RFC 6455; keep them short and ASCII. */
const MAX_REASON = 120;

/** Formats the first zod issue as `field.path: message`, so an error names the field. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.map(String).join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}

/**
 * Parses JSON text and validates it against `schema`. With `limits`, text nested too deep
 * or holding too many values is refused by a linear scan before JSON.parse builds anything
 * (untrusted input: dispatch bodies and agent frames). With `fast` (hot-frames.ts), a value it
 * accepts skips zod; anything it is not sure of goes to `schema`, which has the last word.
 */
export function decodeJson<S extends z.ZodType>(schema: S, text: string, limits?: ScanLimits, fast?: (data: unknown) => z.output<S> | undefined): Decoded<z.output<S>> {
  if (limits) {
    const scan = scanJson(text, limits);
    if (!scan.ok) return { ok: false, reason: scan.reason };
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not valid JSON' };
  }
  if (fast) {
    const value = fast(data);
    if (value !== undefined) return { ok: true, value };
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) return { ok: false, reason: describeIssue(parsed.error) };
  return { ok: true, value: parsed.data };
}

function truncate(reason: string): string {
  return reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 3)}...` : reason;
}

/** The text of a ws message, or null when it is not one ws hands over. */
export function frameText(data: unknown): string | null {
  // Buffer[] is how ws hands over fragments; any other array is not a frame (and Buffer.concat would throw on it).
  return typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) && data.every((d) => Buffer.isBuffer(d)) ? Buffer.concat(data).toString('utf8') : data instanceof ArrayBuffer ? Buffer.from(data).toString('utf8') : null;
}

function decodeFrame<S extends z.ZodType>(schema: S, data: unknown, isBinary: boolean, limits?: ScanLimits, fast?: (data: unknown) => z.output<S> | undefined): Decoded<z.output<S>> {
  if (isBinary) return { ok: false, reason: 'binary frames are not accepted' };
  const text = frameText(data);
  if (text === null) return { ok: false, reason: 'unreadable frame' };
  const result = decodeJson(schema, text, limits, fast);
  return result.ok ? result : { ok: false, reason: truncate(`bad frame: ${result.reason}`) };
}

/** Decodes a frame the server received from an agent (untrusted: scanned before it is parsed). */
export function decodeAgentFrame(data: unknown, isBinary = false): Decoded<AgentFrame> {
  return decodeFrame(agentFrameSchema, data, isBinary, PROTOCOL_SCAN_LIMITS, fastResultFrame);
}

/**
 * Decodes the text of an agent frame that has already passed the scan (the server's
 * result guard scans every frame once and parses only those it keeps).
 */
export function decodeScannedAgentFrame(text: string): Decoded<AgentFrame> {
  const result = decodeJson(agentFrameSchema, text, undefined, fastResultFrame);
  return result.ok ? result : { ok: false, reason: truncate(`bad frame: ${result.reason}`) };
}

/** Decodes a frame the agent received from the server. */
export function decodeServerFrame(data: unknown, isBinary = false): Decoded<ServerFrame> {
  return decodeFrame(serverFrameSchema, data, isBinary, undefined, fastJobFrame);
}

/** Encodes a frame for either direction. */
export function encodeFrame(frame: AgentFrame | ServerFrame): string {
  return JSON.stringify(frame);
}
