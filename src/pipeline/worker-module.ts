/**
 * Starting a worker thread on one of this folder's modules, compiled or not: the `.js` next to
 * this file in a build, or the `.ts` source through tsx's loader when running under tsx
 * (tests, `node --import tsx`), since a worker does not inherit the loader.
 */
import { Worker, type ResourceLimits } from 'node:worker_threads';

/** A worker running `./<name>.js` (or `./<name>.ts` under tsx), a module of src/pipeline. */
export function startModuleWorker(name: string, resourceLimits: ResourceLimits): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const url = new URL(`./${name}.ts`, here).href;
    return new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); })`, { eval: true, resourceLimits });
  }
  return new Worker(new URL(`./${name}.js`, here), { resourceLimits });
}
