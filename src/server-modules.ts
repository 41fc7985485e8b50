/**
 * What the server commands of `strongbox` (serve, worker, token create, catalog rebuild,
 * secrets) need: Fastify, the catalog, the engines, the job runner. main.ts imports this
 * only when it runs one of them, so a client command such as `strongbox backup list`
 * starts without loading any of it (several times faster on a busy machine).
 */
export { createContext, secretKeySource } from './context.js';
export { bootstrap } from './bootstrap.js';
export { buildApp } from './app.js';
export { JobRunner } from './jobs/runner.js';
export { Scheduler } from './jobs/scheduler.js';
export { NotificationService } from './notify/dispatch.js';
export { ArchiveManager } from './archive/manager.js';
export { ALL_ACCESSES, createToken, grantAccesses } from './catalog/tokens.js';
export { findOrganizationByName } from './catalog/organizations.js';
export { rebuildCatalog } from './jobs/rebuild.js';
export { rotateSecretKey } from './rotate.js';
export { startMetricsListener } from './api/metrics-route.js';
