/**
 * A secret the server shows once (a token, a webhook's signing secret): shown in full with a
 * Copy button and a plain warning that it will not be shown again. Dismissing it removes it
 * from the page; nothing keeps it (no storage, no URL).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import './settings.css';

export function SecretOnce({ title, secret, hint, onDone }: { title: string; secret: string; hint?: string; onDone: () => void }) {
  const [copied, setCopied] = useState<'yes' | 'no' | null>(null);
  const box = useRef<HTMLElement>(null);
  const code = useRef<HTMLElement>(null);
  // Announce it and bring it into view: it appears after a form was sent.
  useEffect(() => box.current?.focus(), []);
  async function copy() {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('yes');
    } catch {
      // No clipboard (plain http on another host): select it so Ctrl+C works.
      const range = document.createRange();
      if (code.current) {
        range.selectNodeContents(code.current);
        window.getSelection()?.removeAllRanges();
        window.getSelection()?.addRange(range);
      }
      setCopied('no');
    }
  }
  return (
    <section class="secret-once card" tabIndex={-1} ref={box} aria-labelledby="secret-once-h" role="region">
      <h2 id="secret-once-h">{title}</h2>
      <p class="secret-warning">
        <strong>Copy it now: you will not see this again.</strong> Strongbox keeps only a hash of it (or keeps it sealed) and never shows it a second time.
      </p>
      {hint && <p class="hint">{hint}</p>}
      <div class="secret-row">
        <code class="secret-value" ref={code}>
          {secret}
        </code>
        <button type="button" class="primary" onClick={copy}>
          Copy
        </button>
      </div>
      <p class="status-line" role="status">
        {copied === 'yes' ? 'Copied to the clipboard.' : copied === 'no' ? 'The browser did not allow copying: it is selected, press Ctrl+C (⌘C).' : ''}
      </p>
      <button type="button" onClick={onDone}>
        I have copied it
      </button>
    </section>
  );
}
