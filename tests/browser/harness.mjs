// Shared by the browser tests: the real `shopchat` server on a loopback
// port (real SmolLM2, a real index built at first start, a real SQLite
// file), and headless Chromium from the Debian package.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const workspace = path.resolve(here, '../..');
export const artifacts = path.join(here, 'artifacts');
const binary = path.join(workspace, 'target/release/shopchat');

export const STAFF = { name: 'sam', password: 'correct horse battery' };

/** Starts `shopchat serve` on a free port; resolves once it prints its URL. */
export async function startServer() {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'shopchat-browser-'));
  const env = {
    ...process.env,
    SHOPCHAT_MODELS_DIR: path.join(workspace, 'models'),
    SHOPCHAT_STAFF_PASSWORD: STAFF.password,
    SHOPCHAT_LOG: 'warn',
  };
  execFileSync(binary, ['staff', 'add', STAFF.name, '--data-dir', dataDir], { env, cwd: workspace });
  // SmolLM2 alone: Chinese is answered from the passages' own text.
  const config = path.join(dataDir, 'shopchat.toml');
  writeFileSync(config, '[models]\nextra = ""\n');
  const server = spawn(
    binary,
    ['serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir, '--config', config],
    { env, cwd: workspace, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  server.stderr.on('data', (chunk) => { stderr += chunk; });
  const url = await new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${stderr}`)), 180_000);
    server.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = stdout.match(/at (http:\/\/[^\s]+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1].replace(/\/$/, ''));
      }
    });
    server.on('exit', (code) => reject(new Error(`the server exited (${code}):\n${stderr}`)));
  });
  return {
    url,
    dataDir,
    async stop() {
      server.kill('SIGINT');
      await new Promise((resolve) => server.on('exit', resolve));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
}

/** Saves a screenshot under tests/browser/artifacts/. */
export async function screenshot(target, name) {
  mkdirSync(artifacts, { recursive: true });
  await target.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

/**
 * Polls `fn(arg)` in the page until it returns something truthy, and returns
 * that. Unlike `page.waitForFunction`, each poll is a plain `evaluate` from
 * the driver, which the pages' Content-Security-Policy (no eval, no inline
 * script) does not block, so the tests run the pages under their real policy.
 */
export async function waitInPage(page, fn, arg, { timeout = 30_000, polling = 50 } = {}) {
  const interval = typeof polling === 'number' ? polling : 50;
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await page.evaluate(fn, arg);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${fn}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
