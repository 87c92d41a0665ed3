// Records what ComfyUI's own frontend sends for every UI workflow of the template corpora:
// each workflow is loaded into the real frontend (headless Chromium, a few reused pages) with
// `app.loadGraphData`, and `(await app.graphToPrompt()).output` is saved. This is the ground truth
// for our UI -> API converter (tests/frontend/compare.py compares against it). Works with
// frontend 1.32.9 (ComfyUI 0.3.75) and 1.45.19 (ComfyUI 0.26.0); the version the page reports
// chooses what differs between them (frontendApi below).
//
// Usually run through tests/frontend/record, which installs Chromium and playwright-core and
// starts a rig. Directly:
//
//   node tests/frontend/record.mjs --url http://127.0.0.1:PORT --site-packages DIR \
//        [--out DIR | --out-root DIR] [--timeout-ms 30000] [--reload-every 200] [--workers 2] \
//        [--only SUBSTRING] [--limit N] [--corpus templates|templates-json]
//
// playwright-core is resolved from $PLAYWRIGHT_CORE_DIR (the package folder) or normally.
//
// Output (written to a temporary folder, then renamed into place):
//   <out>/object_info.json        the /object_info the frontend ran against
//   <out>/meta.json               versions, pins, counts, timings, skipped files
//   <out>/<corpus>/<file>.json    {source, corpus, workflow_file, package_path, pinned,
//                                  output | error, nondeterministic, console, ...}
//
// Determinism: graphToPrompt itself draws random numbers only for dynamic prompts ({a|b} in
// STRING widgets with dynamicPrompts) and reads the clock only for %date:...% in filename
// prefixes. control_after_generate ("randomize" seeds) is applied by queuePrompt, before or after
// graphToPrompt, never inside it: recorded seeds are the saved ones. So Math.random is replaced by
// a seeded generator (reseeded before each graphToPrompt, seed recorded) and Date is fixed while
// graphToPrompt runs (time and time zone recorded). When a workflow's graphToPrompt consumed random
// numbers or read the clock, it is converted again with other random values and another time,
// and every input that changed is listed in `nondeterministic` with its cause, for the
// comparison to exclude. A second graphToPrompt on the same loaded graph checks that nothing
// else changes from call to call (`repeat_identical`).

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const require = createRequire(import.meta.url);

// ----------------------------------------------------------------------------- options

function parseArgs(argv) {
  const options = {
    url: process.env.COMFYUI_MCP_TEST_URL || '',
    sitePackages: '',
    out: '',
    outRoot: path.join(os.homedir(), '.cache', 'comfyui-mcp', 'frontend-truth'),
    timeoutMs: 30000,
    readyTimeoutMs: 180000,
    reloadEvery: 200,
    workers: 2,
    only: '',
    limit: 0,
    corpus: '',
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case '--url': options.url = value(); break;
      case '--site-packages': options.sitePackages = value(); break;
      case '--out': options.out = value(); break;
      case '--out-root': options.outRoot = value(); break;
      case '--timeout-ms': options.timeoutMs = Number(value()); break;
      case '--ready-timeout-ms': options.readyTimeoutMs = Number(value()); break;
      case '--reload-every': options.reloadEvery = Number(value()); break;
      case '--workers': options.workers = Number(value()); break;
      case '--only': options.only = value(); break;
      case '--limit': options.limit = Number(value()); break;
      case '--corpus': options.corpus = value(); break;
      case '--chromium': options.chromium = value(); break;
      case '-h': case '--help':
        process.stdout.write(fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n')
          .filter((line, index, lines) => lines.slice(0, index + 1).every((l) => l.startsWith('//')))
          .map((line) => line.replace(/^\/\/ ?/, '')).join('\n') + '\n');
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${arg}`);
    }
  }
  if (!options.url) throw new Error('--url (or COMFYUI_MCP_TEST_URL) is required');
  if (!options.sitePackages) throw new Error('--site-packages is required');
  options.url = options.url.replace(/\/+$/, '');
  return options;
}

const log = (message) => process.stderr.write(`[record] ${message}\n`);

// ----------------------------------------------------------------------------- pins

// Local time while graphToPrompt runs (the browser context's time zone is UTC). Every field
// differs between the two, so any use of the clock shows up as a difference.
const PINNED_TIME = '2024-03-05T06:07:08.000Z';
const VARIANT_TIME = '2031-11-22T19:48:57.000Z';
const TIME_ZONE = 'UTC';
// Below the frontend's `lg` breakpoint, so the minimap (drawn on every change) is hidden by default;
// layout only, graphToPrompt does not depend on it.
const VIEWPORT = { width: 800, height: 600 };
// Math.random for the variant runs: always the first choice, then always the last.
const RANDOM_LOW = 0;
const RANDOM_HIGH = 1 - 2 ** -53;

// FNV-1a over the corpus-relative name: a seed per workflow, independent of the run order.
function seedFor(name) {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(name, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

// Runs in the page before any of its scripts. Math.random becomes mulberry32 (seeded) or a
// constant, and counts its calls; Date can be frozen on demand. The frontend keeps working: the
// real Date is back as soon as graphToPrompt returns.
function pageInit() {
  const state = { seed: 1, calls: 0, constant: null, dateCalls: 0, drawn: null };
  let a = 1;
  const mulberry32 = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  Math.random = function random() {
    state.calls++;
    const value = state.constant === null ? mulberry32() : state.constant;
    if (state.drawn && state.drawn.length < 1000) state.drawn.push(value);
    return value;
  };
  const RealDate = Date;
  const frozenDate = (fixed) => {
    class FrozenDate extends RealDate {
      constructor(...args) {
        if (args.length === 0) {
          state.dateCalls++;
          super(fixed);
        } else {
          super(...args);
        }
      }
      static now() {
        state.dateCalls++;
        return fixed;
      }
    }
    return FrozenDate;
  };
  window.__truth = {
    state,
    RealDate,
    reseed(seed, constant) {
      a = seed | 0;
      state.seed = seed;
      state.constant = constant;
      state.calls = 0;
      state.dateCalls = 0;
    },
    freeze(iso) {
      window.Date = frozenDate(RealDate.parse(iso));
    },
    // Back to the real clock and a seeded (never constant) Math.random.
    thaw() {
      window.Date = RealDate;
      state.constant = null;
    },
  };
}

// ----------------------------------------------------------------------------- page side

// Loads one workflow and converts it. Runs in the page; must not throw.
async function convertInPage({ workflow, seed, constant, time, repeat, loadOptions }) {
  const truth = window.__truth;
  const errorText = (error) => {
    if (error instanceof Error) return `${error.name}: ${error.message}`;
    try { return String(error); } catch { return 'unprintable error'; }
  };
  const stackOf = (error) => (error && typeof error.stack === 'string' ? error.stack.split('\n').slice(0, 8).join('\n') : undefined);
  // loadGraphData catches an exception from graph.configure, shows a dialog and returns as if it
  // had loaded: catch it on its way through configure.
  if (!truth.configureHooked) {
    const proto = Object.getPrototypeOf(window.app.graph);
    const original = proto.configure;
    proto.configure = function configure(...args) {
      try {
        return original.apply(this, args);
      } catch (error) {
        if (!truth.configureError) truth.configureError = error;
        throw error;
      }
    };
    truth.configureHooked = true;
  }
  truth.configureError = null;
  const result = { stage: 'reset' };
  try {
    // Reset: every load opens a new temporary workflow tab (and snapshots the previous one);
    // close the earlier ones, or they pile up and slow the page down. loadGraphData itself
    // clears the graph, node outputs and errors (app.clean()).
    const store = window.app.extensionManager?.workflow;
    if (store?.openWorkflows) {
      for (const open of [...store.openWorkflows]) {
        if (!store.isActive(open)) await store.closeWorkflow(open);
      }
    }
    result.stage = 'load';
    // Loading can draw random numbers too (1.45 puts `&rand=<Math.random()>` into the audio
    // players' URLs, which are sent), so the same seed or constant applies while it runs.
    truth.reseed(seed, constant);
    truth.state.drawn = [];
    try {
      await window.app.loadGraphData(workflow, true, false, null, loadOptions);
    } finally {
      result.loadRandomCalls = truth.state.calls;
      result.loadDraws = truth.state.drawn;
      truth.state.drawn = null;
    }
    if (truth.configureError) {
      result.error = { stage: 'load', message: errorText(truth.configureError), stack: stackOf(truth.configureError) };
      return result;
    }
    result.stage = 'convert';
    truth.reseed(seed, constant);
    truth.freeze(time);
    let prompt;
    try {
      prompt = await window.app.graphToPrompt();
    } finally {
      truth.thaw();
    }
    result.output = prompt.output;
    result.randomCalls = truth.state.calls;
    result.dateCalls = truth.state.dateCalls;
    if (repeat) {
      truth.reseed(seed, constant);
      truth.freeze(time);
      try {
        result.repeatOutput = (await window.app.graphToPrompt()).output;
      } finally {
        truth.thaw();
      }
    }
    result.nodeCount = window.app.graph.nodes.length;
  } catch (error) {
    result.error = { stage: result.stage, message: errorText(error), stack: stackOf(error) };
  }
  return result;
}

// ----------------------------------------------------------------------------- corpora

const JSON_CORPUS_EXCLUDED = /^(index.*|.*schema.*|fuse_options|.*search.*|.*locale.*)\.json$/i;

function isUiWorkflow(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Array.isArray(value.nodes);
}

function distVersion(sitePackages, packageName) {
  const prefix = packageName.replaceAll('-', '_') + '-';
  const dist = fs.readdirSync(sitePackages).find((entry) => entry.startsWith(prefix) && entry.endsWith('.dist-info'));
  return dist ? dist.slice(prefix.length, -'.dist-info'.length) : null;
}

// Every UI workflow of both corpora: [{corpus, name, file, source, packagePath}], plus skipped files.
function findWorkflows(sitePackages) {
  const workflows = [];
  const skipped = [];
  const corpora = {};
  const add = (corpus, pkgDir, distName, excluded) => {
    const templates = path.join(sitePackages, pkgDir, 'templates');
    if (!fs.existsSync(templates)) return;
    const version = distVersion(sitePackages, distName);
    const source = `${distName} ${version}`;
    corpora[corpus] = corpora[corpus] || { packages: [] };
    corpora[corpus].packages.push(source);
    for (const name of fs.readdirSync(templates).filter((f) => f.endsWith('.json')).sort()) {
      const file = path.join(templates, name);
      if (excluded.test(name)) {
        skipped.push({ corpus, file, reason: 'excluded by name' });
        continue;
      }
      let parsed;
      try {
        parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (error) {
        // The frontend parses template files with JSON.parse too; keep it as a workflow whose
        // loading fails.
        workflows.push({ corpus, name, file, source, packagePath: path.join(pkgDir, 'templates', name), parseError: String(error.message) });
        continue;
      }
      if (!isUiWorkflow(parsed)) {
        skipped.push({ corpus, file, reason: 'not a UI workflow (no nodes array)' });
        continue;
      }
      workflows.push({ corpus, name, file, source, packagePath: path.join(pkgDir, 'templates', name) });
    }
  };
  const mediaBundles = fs.readdirSync(sitePackages)
    .filter((entry) => /^comfyui_workflow_templates_media_[a-z0-9_]+$/.test(entry))
    .sort();
  for (const bundle of mediaBundles) {
    add('templates', bundle, bundle.replaceAll('_', '-'), /^index.*\.json$/i);
  }
  add('templates-json', 'comfyui_workflow_templates_json', 'comfyui-workflow-templates-json', JSON_CORPUS_EXCLUDED);
  if (corpora.templates) {
    corpora.templates.meta = `comfyui-workflow-templates ${distVersion(sitePackages, 'comfyui-workflow-templates')}`;
  }
  // One file per workflow and corpus: the media bundles must not share names.
  const seen = new Map();
  for (const workflow of workflows) {
    const key = `${workflow.corpus}/${workflow.name}`;
    if (seen.has(key)) throw new Error(`two workflows named ${key}: ${seen.get(key)} and ${workflow.file}`);
    seen.set(key, workflow.file);
  }
  return { workflows, skipped, corpora };
}

// ----------------------------------------------------------------------------- diffing

function canonical(value) {
  return JSON.stringify(value, (key, inner) => {
    if (inner && typeof inner === 'object' && !Array.isArray(inner)) {
      return Object.fromEntries(Object.keys(inner).sort().map((k) => [k, inner[k]]));
    }
    return inner;
  });
}

// [[nodeId, inputName|null], ...] where two outputs differ in class_type or inputs.
function differingInputs(first, second) {
  const found = [];
  const ids = new Set([...Object.keys(first || {}), ...Object.keys(second || {})]);
  for (const id of ids) {
    const a = first?.[id];
    const b = second?.[id];
    if (!a || !b || a.class_type !== b.class_type) {
      found.push([id, null]);
      continue;
    }
    const names = new Set([...Object.keys(a.inputs || {}), ...Object.keys(b.inputs || {})]);
    for (const name of names) {
      if (canonical(a.inputs?.[name]) !== canonical(b.inputs?.[name])) found.push([id, name]);
    }
  }
  return found.sort((x, y) => (x[0] + '\u0000' + (x[1] ?? '')).localeCompare(y[0] + '\u0000' + (y[1] ?? '')));
}

// [[nodeId, inputName], ...] whose value holds one of `texts` inside a string.
function inputsContaining(output, texts) {
  const found = [];
  const holds = (value) => {
    if (typeof value === 'string') return texts.some((text) => value.includes(text));
    if (Array.isArray(value)) return value.some(holds);
    if (value && typeof value === 'object') return Object.values(value).some(holds);
    return false;
  };
  for (const [id, node] of Object.entries(output || {})) {
    for (const [name, value] of Object.entries(node?.inputs || {})) {
      if (holds(value)) found.push([id, name]);
    }
  }
  return found;
}

// ----------------------------------------------------------------------------- main

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { timeout: true })), ms);
    }),
  ]);
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.json();
}

function chromiumVersion(executable) {
  try {
    return execFileSync(executable, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function loadPlaywright() {
  const dir = process.env.PLAYWRIGHT_CORE_DIR;
  const playwright = dir ? require(dir) : require('playwright-core');
  const pkg = dir ? JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) : require('playwright-core/package.json');
  return { chromium: playwright.chromium, version: pkg.version };
}

// What differs between the frontend releases this recorder drives, chosen by the version the page
// reports (window.__COMFYUI_FRONTEND_VERSION__). Both load a workflow with
// app.loadGraphData(workflow, clean, restoreView, workflow, options) and convert it with
// app.graphToPrompt(); only loadGraphData's options changed.
function frontendApi(version) {
  const [major, minor] = String(version || '0.0').split('.').map(Number);
  if (major > 1 || (major === 1 && minor >= 33)) {
    // 1.45: missing nodes and models are no longer dialogs but pending warnings, which
    // deferWarnings keeps from being shown; skipAssetScans skips the missing-model and
    // missing-media scans (they only report, and fetch model metadata from the network).
    return {
      generation: '1.45',
      loadOptions: { deferWarnings: true, skipAssetScans: true, silentAssetErrors: true },
    };
  }
  // 1.32: the missing-nodes and missing-models dialogs are turned off.
  return {
    generation: '1.32',
    loadOptions: { showMissingNodesDialog: false, showMissingModelsDialog: false },
  };
}

// One browser context and page per worker; each converts workflows from the shared queue.
class Worker {
  constructor(id, browser, options) {
    this.id = id;
    this.browser = browser;
    this.options = options;
    this.context = null;
    this.page = null;
    this.consoleSink = null;
    this.loadsSinceReload = 0;
    this.pageLoads = 0;
    this.frontendVersion = null;
    this.api = frontendApi(null);
  }

  // A fresh context and page: the frontend starts from scratch (no tabs, no storage).
  async open() {
    if (this.context) await this.context.close().catch(() => {});
    this.context = await this.browser.newContext({ timezoneId: TIME_ZONE, locale: 'en-US', viewport: VIEWPORT });
    await this.context.addInitScript(pageInit);
    const page = await this.context.newPage();
    this.page = page;
    page.on('console', (message) => {
      const type = message.type();
      if (!this.consoleSink || (type !== 'error' && type !== 'warning')) return;
      const text = message.text();
      if (text.startsWith('Failed to load resource')) return;
      if (this.consoleSink.length < 40) this.consoleSink.push(`${type}: ${text.slice(0, 400)}`);
    });
    page.on('pageerror', (error) => {
      if (this.consoleSink && this.consoleSink.length < 40) this.consoleSink.push(`pageerror: ${String(error.message).slice(0, 400)}`);
    });
    const t0 = Date.now();
    await page.goto(this.options.url + '/', { waitUntil: 'load', timeout: this.options.readyTimeoutMs });
    await page.waitForFunction(() => window.app && window.app.vueAppReady && window.app.graph, null, { timeout: this.options.readyTimeoutMs });
    this.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
    this.api = frontendApi(this.frontendVersion);
    this.pageLoads++;
    this.loadsSinceReload = 0;
    return Date.now() - t0;
  }

  // One load and conversion in the page, with the timeout; a hung or crashed page is replaced.
  async run(args) {
    if (this.options.reloadEvery > 0 && this.loadsSinceReload >= this.options.reloadEvery) await this.open();
    this.loadsSinceReload++;
    try {
      const inPage = { ...args, loadOptions: this.api.loadOptions };
      return await withTimeout(this.page.evaluate(convertInPage, inPage), this.options.timeoutMs, 'load and graphToPrompt');
    } catch (error) {
      const timedOut = Boolean(error.timeout);
      try {
        await this.open();
      } catch (reopenError) {
        throw new Error(`page could not be reopened: ${reopenError.message}`);
      }
      return { error: { stage: timedOut ? 'timeout' : 'page', message: String(error.message).split('\n')[0] } };
    }
  }

  // Everything recorded for one workflow.
  async record(workflow) {
    const key = `${workflow.corpus}/${workflow.name}`;
    const seed = seedFor(key);
    const record = {
      source: workflow.source,
      corpus: workflow.corpus,
      workflow_file: workflow.file,
      package_path: workflow.packagePath,
      pinned: { math_random_seed: seed, math_random: 'mulberry32', time: PINNED_TIME, time_zone: TIME_ZONE },
    };
    this.consoleSink = [];
    let result;
    if (workflow.parseError) {
      result = { error: { stage: 'parse', message: workflow.parseError } };
    } else {
      const ui = JSON.parse(fs.readFileSync(workflow.file, 'utf8'));
      result = await this.run({ workflow: ui, seed, constant: null, time: PINNED_TIME, repeat: true });
      if (!result.error) {
        record.output = result.output;
        record.frontend_node_count = result.nodeCount;
        record.random_calls = result.randomCalls;
        record.load_random_calls = result.loadRandomCalls;
        // Values drawn while loading that show up in the output (a `rand=` in a URL): the
        // recorder cannot vary them without loading again, so they are found by their text.
        const loadDrawn = (result.loadDraws ?? []).map(String);
        record.clock_reads = result.dateCalls;
        record.repeat_identical = canonical(result.output) === canonical(result.repeatOutput);
        // Whatever depends on Math.random or the clock: convert again with other values.
        const variants = [];
        if (result.randomCalls > 0) {
          variants.push(['Math.random', { seed, constant: RANDOM_LOW, time: PINNED_TIME }]);
          variants.push(['Math.random', { seed, constant: RANDOM_HIGH, time: PINNED_TIME }]);
          variants.push(['Math.random', { seed: seed ^ 0x5bd1e995, constant: null, time: PINNED_TIME }]);
        }
        if (result.dateCalls > 0) variants.push(['Date', { seed, constant: null, time: VARIANT_TIME }]);
        const nondeterministic = [];
        const seen = new Set();
        for (const [cause, variant] of variants) {
          const again = await this.run({ workflow: ui, ...variant, repeat: false });
          if (again.error) {
            nondeterministic.push({ node: null, input: null, cause, note: `variant run failed: ${again.error.message}` });
            continue;
          }
          for (const [node, input] of differingInputs(result.output, again.output)) {
            const id = `${node}\u0000${input}`;
            if (seen.has(id)) continue;
            seen.add(id);
            nondeterministic.push({
              node,
              input,
              cause,
              class_type: result.output[node]?.class_type ?? again.output[node]?.class_type ?? null,
            });
          }
        }
        if (loadDrawn.length) {
          for (const [node, input] of inputsContaining(result.output, loadDrawn)) {
            const id = `${node}\u0000${input}`;
            if (seen.has(id)) continue;
            seen.add(id);
            nondeterministic.push({ node, input, cause: 'Math.random while loading', class_type: result.output[node]?.class_type ?? null });
          }
        }
        record.nondeterministic = nondeterministic;
      }
    }
    if (result.error) record.error = result.error;
    record.console = this.consoleSink;
    this.consoleSink = null;
    return record;
  }

  async close() {
    if (this.context) await this.context.close().catch(() => {});
  }
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const { workflows: allWorkflows, skipped, corpora } = findWorkflows(options.sitePackages);
  let workflows = allWorkflows;
  if (options.corpus) workflows = workflows.filter((w) => w.corpus === options.corpus);
  if (options.only) workflows = workflows.filter((w) => w.name.includes(options.only));
  if (options.limit > 0) workflows = workflows.slice(0, options.limit);
  log(`${workflows.length} workflows (${Object.entries(corpora).map(([c, v]) => `${c}: ${v.packages.join(', ')}`).join('; ')}); ${skipped.length} files skipped`);

  const playwright = loadPlaywright();
  const origin = new URL(options.url);
  const browser = await playwright.chromium.launch({
    executablePath: options.chromium,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // Nothing but the rig: external fonts, analytics and the like fail at once instead of
      // waiting for DNS.
      `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE ${origin.hostname}`,
    ],
  });

  const workerCount = Math.max(1, Math.min(options.workers, workflows.length || 1));
  const workers = Array.from({ length: workerCount }, (_, i) => new Worker(i, browser, options));
  const firstLoads = await Promise.all(workers.map((worker) => worker.open()));
  const frontendVersion = workers[0].frontendVersion;
  log(`frontend ${frontendVersion} ready in ${Math.max(...firstLoads)} ms (${workerCount} pages)`);

  const out = options.out || path.join(options.outRoot, frontendVersion || 'unknown');
  const tmp = `${out}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });

  const objectInfo = await fetchJson(options.url + '/object_info');
  fs.writeFileSync(path.join(tmp, 'object_info.json'), JSON.stringify(objectInfo));
  const systemStats = await fetchJson(options.url + '/system_stats').catch(() => null);
  const settings = await fetchJson(options.url + '/settings').catch(() => null);

  const counts = {};
  const timings = [];
  const nondeterministicWorkflows = [];
  const repeatDiffers = [];
  const errors = [];
  let next = 0;
  let done = 0;
  const work = async (worker) => {
    while (next < workflows.length) {
      const workflow = workflows[next++];
      const key = `${workflow.corpus}/${workflow.name}`;
      const t0 = Date.now();
      const record = await worker.record(workflow);
      record.ms = Date.now() - t0;
      timings.push(record.ms);
      const outcome = record.error ? `error:${record.error.stage}` : 'ok';
      counts[workflow.corpus] = counts[workflow.corpus] || {};
      counts[workflow.corpus][outcome] = (counts[workflow.corpus][outcome] || 0) + 1;
      if (record.nondeterministic?.length) nondeterministicWorkflows.push(key);
      if (record.repeat_identical === false) repeatDiffers.push(key);
      if (record.error) {
        errors.push({ workflow: key, ...record.error, stack: undefined });
        log(`${key}: ${record.error.stage}: ${record.error.message.slice(0, 200)}`);
      }
      fs.mkdirSync(path.join(tmp, workflow.corpus), { recursive: true });
      fs.writeFileSync(path.join(tmp, workflow.corpus, workflow.name), JSON.stringify(record, null, 1) + '\n');
      done++;
      if (done % 50 === 0 || done === workflows.length) {
        log(`${done}/${workflows.length} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
    }
  };
  await Promise.all(workers.map(work));
  const pageLoads = workers.reduce((sum, worker) => sum + worker.pageLoads, 0);
  await Promise.all(workers.map((worker) => worker.close()));
  await browser.close();

  const totalS = (Date.now() - started) / 1000;
  const sorted = [...timings].sort((a, b) => a - b);
  const meta = {
    frontend_version: frontendVersion,
    frontend_api: workers[0].api,
    server: systemStats?.system ?? null,
    url: options.url,
    chromium: chromiumVersion(options.chromium),
    playwright_core: playwright.version,
    node: process.version,
    corpora,
    recorded_at: new Date().toISOString(),
    pins: {
      math_random: 'mulberry32, reseeded before each graphToPrompt with FNV-1a("<corpus>/<file>")',
      time: PINNED_TIME,
      time_zone: TIME_ZONE,
      variant_time: VARIANT_TIME,
      variant_math_random: [RANDOM_LOW, RANDOM_HIGH, 'mulberry32(seed ^ 0x5bd1e995)'],
    },
    viewport: VIEWPORT,
    settings,
    options: {
      timeout_ms: options.timeoutMs, reload_every: options.reloadEvery, workers: workerCount,
      only: options.only, limit: options.limit, corpus: options.corpus,
    },
    workflows: workflows.length,
    counts,
    errors: errors.sort((a, b) => a.workflow.localeCompare(b.workflow)),
    skipped,
    nondeterministic_workflows: nondeterministicWorkflows.sort(),
    repeat_differs: repeatDiffers.sort(),
    page_loads: pageLoads,
    timing: {
      total_s: Number(totalS.toFixed(1)),
      first_page_load_ms: Math.max(...firstLoads),
      per_workflow_ms: sorted.length ? { median: sorted[Math.floor(sorted.length / 2)], p95: sorted[Math.floor(sorted.length * 0.95)], max: sorted[sorted.length - 1] } : null,
    },
  };
  fs.writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 1) + '\n');
  fs.rmSync(out, { recursive: true, force: true });
  fs.renameSync(tmp, out);
  log(`done in ${totalS.toFixed(1)} s: ${JSON.stringify(counts)}; nondeterministic: ${nondeterministicWorkflows.length}; repeat differs: ${repeatDiffers.length}`);
  process.stdout.write(JSON.stringify({ out, frontend_version: frontendVersion, workflows: workflows.length, counts, nondeterministic: nondeterministicWorkflows.length, total_s: meta.timing.total_s }) + '\n');
}

main().catch((error) => {
  process.stderr.write(`[record] fatal: ${error.stack || error}\n`);
  process.exit(1);
});
