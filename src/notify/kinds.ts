/** The events a webhook or channel can ask for, and how loud each one is. */

export const EVENT_KINDS = [
  'backup.succeeded',
  'backup.failed',
  'backup.overdue',
  'restore.succeeded',
  'restore.failed',
  'verification.failed',
  'destination.failed',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export type Severity = 'info' | 'warning' | 'error';

export const SEVERITY: Record<EventKind, Severity> = {
  'backup.succeeded': 'info',
  'backup.failed': 'error',
  'backup.overdue': 'warning',
  'restore.succeeded': 'info',
  'restore.failed': 'error',
  'verification.failed': 'error',
  'destination.failed': 'error',
};

/** A title for people (chat messages, email subjects): "Backup failed", "Backup overdue"... */
export const TITLE: Record<string, string> = {
  'backup.succeeded': 'Backup succeeded',
  'backup.failed': 'Backup failed',
  'backup.overdue': 'Backup overdue',
  'restore.succeeded': 'Restore succeeded',
  'restore.failed': 'Restore failed',
  'verification.failed': 'Verification failed',
  'destination.failed': 'Copy to a destination failed',
  test: 'Test notification',
};
