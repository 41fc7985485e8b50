/**
 * Schema snapshots: the DDL of a database, normalized so that an unchanged schema gives
 * byte-identical text (and a meaningful diff when it changes).
 */
import type { EngineKind } from './engine.js';

/** A schema dump larger than this is refused rather than held in memory. */
export const SCHEMA_LIMIT = 32 * 1024 * 1024;

/**
 * Remove what changes between two dumps of the same schema: version banners, dump dates,
 * pg_dump's random `\restrict` keys, MySQL's AUTO_INCREMENT counters and host lines.
 */
export function normalizeDdl(kind: EngineKind, ddl: string): string {
  let lines = ddl.replace(/\r\n/g, '\n').split('\n');
  if (kind === 'postgresql') {
    lines = lines.filter((l) => !/^\\(un)?restrict\b/.test(l) && !/^-- Dumped (from database|by pg_dump) version/.test(l) && !/^-- (Started|Completed) on/.test(l));
  } else {
    lines = lines
      .filter((l) => !/^-- (MySQL dump|MariaDB dump|Host:|Server version|Dump completed)/.test(l))
      .map((l) => l.replace(/ AUTO_INCREMENT=\d+/, ''));
  }
  return lines.join('\n').replace(/\n{3,}/g, '\n\n').trim() + '\n';
}
