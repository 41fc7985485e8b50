/** A state in words with a symbol, so it never depends on color alone. */
const SYMBOLS: Record<string, string> = {
  success: '✓',
  passed: '✓',
  failed: '✗',
  canceled: '⊘',
  ignored: '–',
  pending: '…',
  running: '▶',
  deleted: '🗑',
};

export function StateBadge({ state }: { state: string }) {
  return (
    <span class={`badge state-${state}`}>
      <span aria-hidden="true">{SYMBOLS[state] ?? '•'} </span>
      {state}
    </span>
  );
}
