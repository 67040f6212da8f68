/**
 * A linear byte scan of JSON text, run before JSON.parse on untrusted input.
 *
 * JSON.parse of 10 MiB costs up to ~2 s on a small box when the text holds millions of
 * tiny values (`[[],[],…]`, `{"k1":1,"k2":1,…}`), and deep nesting costs more again in
 * the validation that follows. No protocol body needs either: a dispatch has a handful
 * of fields and at most 256 header lines. So the scan refuses text nested deeper than
 * `maxDepth` or holding more than `maxValues` values before anything is built from it,
 * and can read a few top-level string fields (a frame's `type` and `id`) without
 * parsing the rest. It never throws and does not validate the JSON: JSON.parse still
 * has the last word on anything the scan lets through.
 */

export interface ScanLimits {
  /** Deepest nesting of objects and arrays allowed (the outermost object is level 1). */
  maxDepth: number;
  /** Most values allowed: every array element and object member counts one. */
  maxValues: number;
}

/** Limits for protocol bodies and frames: far above anything valid, far below what stalls the loop. */
export const PROTOCOL_SCAN_LIMITS: ScanLimits = { maxDepth: 64, maxValues: 10_000 };

export type ScanResult =
  | {
      ok: true;
      /** Top-level string members asked for (the last one wins, as in JSON.parse); absent or non-string: missing. */
      fields: Map<string, string>;
      /** Values counted (containers and commas): what `maxValues` limits. */
      values: number;
    }
  | { ok: false; reason: string };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const COMMA = 0x2c;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** Index of the quote that closes the string whose opening quote is at `open`, or -1. */
function stringEnd(text: string, open: number): number {
  let i = open + 1;
  for (;;) {
    const q = text.indexOf('"', i);
    if (q < 0) return -1;
    // A quote preceded by an odd run of backslashes is escaped.
    let b = q - 1;
    while (b > open && text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q;
    i = q + 1;
  }
}

function stringValue(text: string, open: number, close: number): string | undefined {
  const raw = text.slice(open + 1, close);
  if (!raw.includes('\\')) return raw;
  try {
    return JSON.parse(text.slice(open, close + 1)) as string;
  } catch {
    return undefined;
  }
}

/**
 * Scans `text` once. Refuses it when nesting or value count go over `limits`; otherwise
 * returns the top-level string members named in `keys` (of a top-level object).
 */
export function scanJson(text: string, limits: ScanLimits = PROTOCOL_SCAN_LIMITS, keys: readonly string[] = []): ScanResult {
  const fields = new Map<string, string>();
  const readFields = keys.length > 0;
  let depth = 0;
  let values = 0;
  // In the top-level object (depth 1): whether a key comes next, and the wanted key whose value is awaited.
  let topObject = false;
  let expectKey = false;
  let pendingKey: string | null = null;
  // One pass over the characters (no match objects); strings are skipped by indexOf.
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (end < 0) break; // unterminated: JSON.parse will say so
      if (readFields && depth === 1 && topObject) {
        if (expectKey) {
          const key = stringValue(text, i, end);
          pendingKey = key !== undefined && keys.includes(key) ? key : null;
          expectKey = false;
        } else if (pendingKey !== null) {
          const value = stringValue(text, i, end);
          if (value === undefined) fields.delete(pendingKey);
          else fields.set(pendingKey, value);
          pendingKey = null;
        }
      }
      i = end;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth === 0) {
        topObject = c === OPEN_BRACE;
        expectKey = topObject;
      } else if (depth === 1 && pendingKey !== null) {
        fields.delete(pendingKey); // a later non-string value replaces an earlier string one
        pendingKey = null;
      }
      depth += 1;
      if (depth > limits.maxDepth) return { ok: false, reason: `nested deeper than ${limits.maxDepth} levels` };
      if (++values > limits.maxValues) return { ok: false, reason: `more than ${limits.maxValues} values` };
    } else if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      // A comma or a closing bracket ends a member: a wanted key still awaiting its value had a number, true, false or null.
      if (depth === 1 && pendingKey !== null) {
        fields.delete(pendingKey);
        pendingKey = null;
      }
      if (c === COMMA) {
        if (++values > limits.maxValues) return { ok: false, reason: `more than ${limits.maxValues} values` };
        if (depth === 1 && topObject) expectKey = true;
      } else depth -= 1;
    }
  }
  return { ok: true, fields, values };
}
