/** Plain-text renderings of a notification that several channels share. */
import type { Notification } from './channel.js';

/** A few lines: the message, then where and when. */
export function plainText(n: Notification): string {
  return `${n.message}\n\n${n.organization} · ${n.kind} · ${n.created_at}`;
}

/** Cut `s` to `max` characters, saying so. */
export function cap(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
