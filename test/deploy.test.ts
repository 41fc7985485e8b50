/**
 * The shipped Prometheus alert rules (deploy/prometheus/alerts.yml) and Grafana dashboard
 * (deploy/grafana/strongbox.json) are checked against a real server: the rules parse, every
 * expression is well-formed (balanced brackets, known functions, valid label matchers and
 * ranges), and every metric they use has samples in a real /metrics scrape taken after a
 * real backup and its verification.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { api, registerBranch, startServer, until, waitForBackup, type TestServer } from './helpers/server.js';
import { createDatabase, dropDatabase, pgUrl, uniqueName, withPgClient } from './helpers/databases.js';
import { familyOf, scrape, type Scrape } from './helpers/metrics.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const rulesFile = `${ROOT}deploy/prometheus/alerts.yml`;
const dashboardFile = `${ROOT}deploy/grafana/strongbox.json`;

/** PromQL functions and aggregation operators (Prometheus 2.x/3.x), and the modifiers written like calls. */
const FUNCTIONS = new Set(
  (
    'abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min count_over_time day_of_month day_of_week day_of_year ' +
    'days_in_month delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar ' +
    'histogram_sum hour idelta increase irate label_join label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month ' +
    'predict_linear present_over_time quantile_over_time rate resets round scalar sgn sort sort_desc sort_by_label sort_by_label_desc sqrt ' +
    'stddev_over_time stdvar_over_time sum_over_time time timestamp vector year ' +
    'sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio ' +
    'by without on ignoring group_left group_right'
  ).split(' '),
);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);
const DURATION = /^(\d+(ms|[smhdwy]))+$/;

/**
 * Check that a PromQL expression is well-formed enough to load, and return the metric names
 * it selects. (Grafana's $variables are replaced by plausible values first.)
 */
function checkPromQL(source: string): string[] {
  let expr = source.replace(/\$__(rate_interval|interval|range)\b/g, '5m').replace(/\$\{?\w+\}?/g, 'x');
  // String literals out of the way, checked for being closed.
  const strings: string[] = [];
  expr = expr.replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`/g, (s) => {
    strings.push(s);
    return ' STR ';
  });
  assert.doesNotMatch(expr, /["'`]/, `an unclosed string in: ${source}`);
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  for (const c of expr) {
    if ('([{'.includes(c)) stack.push(c);
    else if (c in pairs) assert.equal(stack.pop(), pairs[c], `unbalanced "${c}" in: ${source}`);
  }
  assert.equal(stack.length, 0, `unclosed "${stack.join('')}" in: ${source}`);
  for (const [, inside] of expr.matchAll(/\{([^}]*)\}/g)) {
    if (inside.trim() === '') continue;
    for (const matcher of inside.split(',')) assert.match(matcher.trim(), /^[a-zA-Z_]\w*\s*(=~|!~|!=|=)\s*STR$/, `a bad label matcher "${matcher.trim()}" in: ${source}`);
  }
  for (const [, range] of expr.matchAll(/\[([^\]]*)\]/g)) {
    const [r, step] = range.split(':').map((s) => s.trim());
    assert.match(r, DURATION, `a bad range [${range}] in: ${source}`);
    if (step) assert.match(step, DURATION, `a bad subquery step [${range}] in: ${source}`);
  }
  for (const [, name] of expr.matchAll(/([a-zA-Z_:][\w:]*)\s*\(/g)) assert.ok(FUNCTIONS.has(name), `unknown function "${name}" in: ${source}`);
  // Label lists of by/without/on/ignoring/group_* are names of labels, not metrics.
  const noLabelLists = expr.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of noLabelLists.replace(/\{[^}]*\}/g, ' ').matchAll(/(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()/g)) {
    const id = m[1];
    if (KEYWORDS.has(id.toLowerCase()) || id === 'STR' || DURATION.test(id)) continue;
    names.add(id);
  }
  // Nothing left but names, numbers, operators and brackets.
  const rest = noLabelLists.replace(/\{[^}]*\}|\[[^\]]*\]|[a-zA-Z_:][\w:]*|\d+(\.\d+)?(e[+-]?\d+)?|==|!=|<=|>=|[-+*/%^<>(),\s]/gi, '');
  assert.equal(rest, '', `unexpected characters "${rest}" in: ${source}`);
  return [...names];
}

/** A Go template's actions are closed ({{ ... }}), in a rule's summary or description. */
function checkTemplate(text: string, where: string): void {
  assert.equal((text.match(/\{\{/g) ?? []).length, (text.match(/\}\}/g) ?? []).length, `unbalanced {{ }} in ${where}`);
}

describe('the shipped alert rules and Grafana dashboard', () => {
  let server: TestServer;
  let metrics: Scrape;
  const source = uniqueName('sbx_deploy');

  before(async () => {
    server = await startServer();
    await createDatabase('postgresql', source);
    await withPgClient(pgUrl(source), (c) => c.query('create table t (id int primary key); insert into t select generate_series(1, 100)'));
    const branchPath = await registerBranch(server, 'default', 'deploydb', 'postgresql', 'main', pgUrl(source));
    const r = await api(server, 'POST', `${branchPath}/backups`, {});
    const backup = await waitForBackup(server, branchPath, r.body.id);
    assert.equal(backup.state, 'success');
    const v = await api(server, 'POST', `${branchPath}/backups/${backup.id}/verify`, {});
    assert.equal(v.status, 202);
    await until('the verification', async () => {
      const list = await api(server, 'GET', `${branchPath}/backups/${backup.id}/verifications`);
      return ['success', 'failed'].includes(list.body.data[0]?.state) ? true : undefined;
    });
    const s = await scrape(`${server.url}/metrics`, `Bearer ${server.token}`);
    assert.equal(s.status, 200);
    metrics = s.metrics!;
  });
  after(async () => {
    await server?.close();
    await dropDatabase('postgresql', source);
  });

  /** A metric name used by a rule or a panel has samples in the scrape (`up` is Prometheus' own). */
  function assertScraped(name: string, where: string): void {
    if (name === 'up') return;
    const family = familyOf(name, metrics.types);
    assert.ok(family, `${where} uses ${name}, which a real /metrics does not have`);
    assert.ok(metrics.samples.some((s) => s.name === name), `${where} uses ${name}, which has no sample in a real /metrics after a backup and a verification`);
  }

  test('the alert rules parse, are well-formed, and use only metrics that exist', () => {
    const doc = YAML.parse(fs.readFileSync(rulesFile, 'utf8'));
    assert.ok(Array.isArray(doc.groups) && doc.groups.length > 0, 'a rules file has groups');
    const alerts = new Set<string>();
    const used = new Set<string>();
    for (const group of doc.groups) {
      assert.equal(typeof group.name, 'string');
      assert.deepEqual(Object.keys(group).filter((k) => !['name', 'interval', 'rules', 'limit'].includes(k)), [], `unknown keys in group ${group.name}`);
      for (const rule of group.rules) {
        assert.match(rule.alert ?? '', /^[A-Za-z_]\w*$/, 'every rule is an alert with a valid name');
        assert.ok(!alerts.has(rule.alert), `alert ${rule.alert} defined twice`);
        alerts.add(rule.alert);
        assert.deepEqual(Object.keys(rule).filter((k) => !['alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations'].includes(k)), [], `unknown keys in ${rule.alert}`);
        assert.equal(typeof rule.expr, 'string', `${rule.alert} has an expr`);
        if (rule.for !== undefined) assert.match(rule.for, DURATION, `${rule.alert}: for`);
        assert.ok(['critical', 'warning', 'info'].includes(rule.labels?.severity), `${rule.alert} has a severity`);
        assert.ok(rule.annotations?.summary, `${rule.alert} has a summary`);
        for (const [k, v] of Object.entries(rule.annotations ?? {})) checkTemplate(String(v), `${rule.alert}.${k}`);
        for (const name of checkPromQL(rule.expr)) {
          used.add(name);
          assertScraped(name, `alert ${rule.alert}`);
        }
      }
    }
    // What the issue asks the rules to cover.
    for (const name of ['strongbox_branch_overdue', 'strongbox_last_backup_failed', 'strongbox_last_successful_backup_timestamp_seconds', 'strongbox_last_verification_failed', 'strongbox_verifications_total', 'strongbox_destination_last_write_failed', 'strongbox_notification_deliveries_total', 'strongbox_scheduler_lag_seconds', 'up']) {
      assert.ok(used.has(name), `no alert rule uses ${name}`);
    }
  });

  test('the Grafana dashboard is valid JSON whose panels query only metrics that exist', () => {
    const dash = JSON.parse(fs.readFileSync(dashboardFile, 'utf8'));
    assert.equal(dash.uid, 'strongbox');
    assert.ok(Number.isInteger(dash.schemaVersion));
    const exprs: Array<{ where: string; expr: string }> = [];
    const ids = new Set<number>();
    for (const p of dash.panels) {
      assert.ok(!ids.has(p.id), `panel id ${p.id} twice`);
      ids.add(p.id);
      assert.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the 24-column grid`);
      for (const t of p.targets ?? []) exprs.push({ where: `panel "${p.title}"`, expr: t.expr });
    }
    for (const v of dash.templating.list) {
      const q = typeof v.query === 'string' ? null : v.query?.query;
      const m = q ? /^label_values\((.*),\s*(\w+)\)$/.exec(q) : null;
      if (m) exprs.push({ where: `variable ${v.name}`, expr: m[1] });
    }
    assert.ok(exprs.length > 10);
    const used = new Set<string>();
    for (const { where, expr } of exprs) {
      assert.equal(typeof expr, 'string', `${where} has an expr`);
      for (const name of checkPromQL(expr)) {
        used.add(name);
        assertScraped(name, where);
      }
    }
    for (const name of ['strongbox_last_successful_backup_timestamp_seconds', 'strongbox_backup_duration_seconds_bucket', 'strongbox_backup_size_bytes_bucket', 'strongbox_job_failures_total', 'strongbox_stored_bytes', 'strongbox_jobs', 'strongbox_lease_takeovers_total', 'strongbox_scheduler_lag_seconds', 'strongbox_verifications_total', 'strongbox_notification_deliveries_total']) {
      assert.ok(used.has(name), `no panel shows ${name}`);
    }
  });

  test('the checker itself refuses what Prometheus would refuse', () => {
    assert.deepEqual(checkPromQL('sum by (le) (rate(strongbox_backup_duration_seconds_bucket{outcome="success"}[5m]))').sort(), ['strongbox_backup_duration_seconds_bucket']);
    assert.throws(() => checkPromQL('sum(rate(strongbox_jobs[5m])'), /unclosed/);
    assert.throws(() => checkPromQL('rates(strongbox_jobs[5m])'), /unknown function/);
    assert.throws(() => checkPromQL('strongbox_jobs{state=queued}'), /label matcher/);
    assert.throws(() => checkPromQL('increase(strongbox_jobs[5 minutes])'), /range/);
    assert.throws(() => checkPromQL('strongbox_jobs{state="queued}'), /unclosed string|label matcher|unbalanced|unclosed/);
  });
});
