/** A hash that names no page. */
import { PageHeader } from '../components/PageHeader.js';
import { href } from '../router.js';

export function NotFound({ path }: { path: string }) {
  return (
    <>
      <PageHeader title="No such page" />
      <p>
        Nothing lives at <code>#{path}</code>. Go to the <a href={href('/')}>overview</a>.
      </p>
    </>
  );
}
