/** An error as the user should read it: the server's message, announced to screen readers. */
import { ApiError } from '../api.js';

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.status === 403 ? `Not allowed: ${error.message}` : error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

export function ErrorBox({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return (
    <div class="error-box" role="alert">
      <strong>Error: </strong>
      <span class="error-text">{errorText(error)}</span>
    </div>
  );
}
