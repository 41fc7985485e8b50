/**
 * One rule set for the names users give to organizations, databases, branches and
 * destinations, shared by every dialect. Names end up in storage paths and log lines,
 * so they are kept to a safe alphabet rather than escaped everywhere.
 */
export const NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';
const NAME_RE = new RegExp(NAME_PATTERN);

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name);
}

export const NAME_RULE = 'names are 1-63 characters: lower-case letters, digits, "-" and "_", starting with a letter or digit';
