/**
 * A node:test reporter that writes, per test file, how many tests (not suites) passed,
 * failed or were skipped, as one JSON line per file at the end. Read by run.mjs.
 */
export default async function* countReporter(source) {
  const files = new Map();
  const entry = (file) => {
    const key = file ?? '(unknown)';
    if (!files.has(key)) files.set(key, { pass: 0, fail: 0, skip: 0, todo: 0 });
    return files.get(key);
  };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    // The file-level entries the runner adds for each file have nesting 0 and the file's path as name.
    if (data.details?.type === 'suite' || (data.nesting === 0 && data.name === data.file)) continue;
    const e = entry(data.file);
    if (data.skip) e.skip++;
    else if (data.todo) e.todo++;
    else if (event.type === 'test:pass') e.pass++;
    else e.fail++;
  }
  for (const [file, counts] of files) yield JSON.stringify({ file, ...counts }) + '\n';
}
