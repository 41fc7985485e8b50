/**
 * A page's heading: sets the window title and, after a navigation, takes the focus so a
 * keyboard or screen-reader user lands at the top of the new page.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { navigationCount } from '../router.js';

export function PageHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Strongbox`;
  }, [title]);
  useEffect(() => {
    if (navigationCount() > 0) ref.current?.focus();
  }, []);
  return (
    <div class="page-header">
      <h1 tabIndex={-1} ref={ref}>
        {title}
      </h1>
      {children && <div class="page-actions">{children}</div>}
    </div>
  );
}
