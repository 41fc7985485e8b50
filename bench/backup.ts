/**
 * `npm run bench`: the PostgreSQL backup benchmark (bench/backup-pg.ts), kept under its old
 * name. bench/backup-mysql.ts and bench/restore.ts are its MariaDB and restore siblings.
 */
import './backup-pg.js';
