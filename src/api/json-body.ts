/**
 * Parsing of JSON request bodies. The nesting depth is checked first, in one linear pass
 * without recursion: JSON.parse copes with deep input, but everything after it that walks
 * the value recursively (JSON.stringify when a config is stored, validation, logging) runs
 * out of stack on a body of a few hundred KB of brackets, and that surfaced as a 500 after
 * a route had already acted on the request.
 */
import secureJson from 'secure-json-parse';
import { badRequest } from './errors.js';

/** No body we accept comes near this; a destination config is two or three levels deep. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * The deepest nesting of arrays and objects in `text`, or `limit + 1` as soon as it passes
 * `limit`. Brackets inside strings do not count. Malformed input gives some number; it is
 * JSON.parse's job to refuse it.
 */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return deepest;
}

/**
 * A request body as a value: undefined for an empty body, a 400 (ApiError) for one nested
 * deeper than `maxDepth`, and a 400 for malformed JSON or one that sets `__proto__` or
 * `constructor.prototype`.
 */
export function parseJsonBody(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  if (text.trim() === '') return undefined;
  if (jsonDepth(text, maxDepth) > maxDepth) {
    throw badRequest(`the JSON body nests arrays and objects deeper than ${maxDepth} levels`);
  }
  let value: unknown;
  try {
    value = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (e) {
    throw badRequest(`malformed JSON body: ${(e as Error).message}`);
  }
  // "\u0000" is valid JSON, but no text column of a PostgreSQL catalog can hold it: a 400
  // here instead of a 500 from the insert. The depth is bounded above, so recursion is safe.
  if (holdsNul(value)) throw badRequest('a string in the JSON body contains a NUL character (\\u0000)');
  return value;
}

function holdsNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(holdsNul);
  if (v !== null && typeof v === 'object') return Object.entries(v).some(([k, x]) => k.includes('\u0000') || holdsNul(x));
  return false;
}
