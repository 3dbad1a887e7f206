// The staff console (web/console.html + web/console.js) in headless
// Chromium against the real server: login, the list and its filters, a
// transcript with everything about an answer, live handoffs over SSE, staff
// replies reaching the shopper, tags, notes, export and search.
//
// Shoppers are played by websockets opened inside a page on the server's own
// origin, speaking docs/protocol.md, so these tests do not depend on the
// widget.
//
//   cd tests/browser && node --test --test-concurrency=1 console.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, launchBrowser, screenshot, waitInPage, STAFF } from './harness.mjs';

const QUESTION = 'How long does delivery to the UK take?';
const COMMENT = 'It did not say when my parcel leaves the warehouse.';
// A word nothing else in these conversations contains, for full-text search,
// and markup that must stay text.
const HANDOFF_TEXT = 'My flamingo-pink scarf never arrived <img src=x onerror="window.__xss=1"> <b>help</b>';
const REPLY = 'Hi, this is Sam from Northwind Threads: I have asked the carrier about your scarf.';

let server;
let browser;
let shoppers; // a browser context for the shoppers' sockets
let staff; // the staff member's browser context
let page; // the console, open for most of the file
const people = {}; // name -> Shopper
const pageErrors = []; // uncaught errors in the console's page

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  shoppers = await browser.newContext();
  staff = await browser.newContext({ viewport: { width: 1280, height: 900 } });
}, { timeout: 300_000 });

after(async () => {
  // The browser first: an open console keeps its event stream (and so the
  // server's graceful shutdown) waiting.
  await browser?.close();
  await server?.stop();
});

// ---------------------------------------------------------------- helpers

/** Retries `check` (which throws while its condition does not hold). */
async function eventually(check, { timeout = 15_000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  }
}

async function text(locator) {
  return (await locator.innerText()).replace(/\s+/g, ' ').trim();
}

/** A row of the console's list, by conversation id. */
function row(id) {
  return page.locator(`#conversation-list li[data-id="${id}"]`);
}

async function listedIds() {
  return page.locator('#conversation-list li[data-id]').evaluateAll((items) => items.map((li) => li.dataset.id));
}

/** Waits until the list shows exactly these conversations (in any order). */
async function expectListed(ids, timeout) {
  await eventually(async () => {
    assert.deepEqual((await listedIds()).sort(), [...ids].sort());
  }, { timeout });
}

/** The staff API as the console's browser context (its cookie). */
async function apiJson(path) {
  const response = await page.request.get(`${server.url}${path}`);
  assert.equal(response.status(), 200, `${path}: ${await response.text()}`);
  return response.json();
}

/** A shopper: a websocket to /ws opened inside a page on the server's origin. */
class Shopper {
  static async connect(context) {
    const tab = await context.newPage();
    await tab.goto(`${server.url}/healthz`);
    await tab.evaluate((url) => new Promise((resolve, reject) => {
      window.frames_ = [];
      window.socket = new WebSocket(url);
      window.socket.onmessage = (event) => window.frames_.push(JSON.parse(event.data));
      window.socket.onopen = () => resolve();
      window.socket.onerror = () => reject(new Error('the websocket did not open'));
    }), `${server.url.replace(/^http/, 'ws')}/ws`);
    const shopper = new Shopper(tab);
    await shopper.send({ type: 'hello', v: 1, lang: 'en' });
    shopper.conversationId = (await shopper.next('welcome')).conversation_id;
    return shopper;
  }

  constructor(tab) {
    this.tab = tab;
  }

  send(frame) {
    return this.tab.evaluate((f) => window.socket.send(JSON.stringify(f)), frame);
  }

  /** The first frame of this type that has these field values. */
  async next(type, fields = {}, timeout = 30_000) {
    try {
      return await waitInPage(this.tab,
        ({ type, fields }) => window.frames_.find(
          (f) => f.type === type && Object.entries(fields).every(([k, v]) => f[k] === v),
        ),
        { type, fields },
        { timeout, polling: 100 },
      );
    } catch (error) {
      const frames = await this.tab.evaluate(() => window.frames_).catch(() => []);
      throw new Error(`no ${type} ${JSON.stringify(fields)} frame: ${error.message}\nframes: ${JSON.stringify(frames)}`);
    }
  }

  /** Frames are handled in order: a pong means everything before it is done. */
  async settle() {
    const before = await this.tab.evaluate(() => window.frames_.filter((f) => f.type === 'pong').length);
    await this.send({ type: 'ping' });
    await waitInPage(this.tab, (n) => window.frames_.filter((f) => f.type === 'pong').length > n, before, { polling: 50 });
  }
}

async function login(target, password = STAFF.password) {
  await target.getByLabel('Name').fill(STAFF.name);
  await target.getByLabel('Password').fill(password);
  await target.getByRole('button', { name: 'Log in' }).click();
}

// ------------------------------------------------------------------ tests

test('without a session, /console shows the login form and the API refuses', async () => {
  const context = await browser.newContext();
  const visitor = await context.newPage();
  await visitor.goto(`${server.url}/console`);
  await visitor.getByRole('heading', { name: 'ShopChat staff console' }).waitFor();
  assert.ok(await visitor.getByLabel('Name').isVisible());
  assert.ok(await visitor.getByLabel('Password').isVisible());
  assert.ok(await visitor.locator('#app').isHidden(), 'the console itself stays hidden');
  const response = await visitor.request.get(`${server.url}/api/conversations`);
  assert.equal(response.status(), 401);
  await context.close();
});

test('a wrong password shows an error; the right one opens the console', async () => {
  page = await staff.newPage();
  page.on('pageerror', (error) => pageErrors.push(error));
  await page.goto(`${server.url}/console`);
  await login(page, 'battery horse correct');
  const error = page.getByRole('alert');
  await error.waitFor();
  assert.equal(await text(error), 'Wrong name or password.');
  assert.ok(await page.locator('#app').isHidden());

  await login(page);
  await page.locator('#app').waitFor();
  assert.ok(await page.locator('#login').isHidden());
  assert.equal(await text(page.locator('#staff-name')), STAFF.name);
  await page.getByText('No conversations yet.').waitFor();
  // The session is an HttpOnly cookie: the page's script cannot read it.
  assert.equal(await page.evaluate(() => document.cookie), '');
  const [cookie] = await staff.cookies(server.url);
  assert.equal(cookie.name, 'shopchat_session');
  assert.ok(cookie.httpOnly);
  assert.equal(cookie.sameSite, 'Strict');
});

test('a handoff shows up live, highlighted and announced, without reloading', async () => {
  await page.evaluate(() => { window.sameDocument = true; });
  const emma = await Shopper.connect(shoppers);
  people.emma = emma;
  await emma.send({ type: 'handoff' });
  await emma.next('handoff', { status: 'requested' });

  const line = row(emma.conversationId);
  await line.waitFor();
  await eventually(async () => {
    assert.match(await line.getAttribute('class'), /needs-human/);
    assert.match(await line.getAttribute('class'), /attention/);
  });
  assert.equal(await text(line.locator('.badge.needs-human')), 'Needs a person');
  await eventually(async () => {
    assert.match(await page.locator('#announcer').textContent(), /A shopper needs a person/);
  });
  assert.match(await page.title(), /^\(1\) Needs a person/);

  // The shopper writes while waiting (the assistant keeps out of it): the
  // row shows the question without a reload, as text, not markup.
  await emma.send({ type: 'message', client_id: 'e-1', text: HANDOFF_TEXT });
  await emma.next('ack', { client_id: 'e-1' });
  await eventually(async () => {
    assert.equal(await line.locator('.question').textContent(), HANDOFF_TEXT);
  });
  assert.equal(await page.locator('#conversation-list img, #conversation-list b').count(), 0);
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'the page was not reloaded');

  // The "Needs a person" filter (a new conversation is listed at the next
  // reload: starting one is no event for the console).
  const other = await Shopper.connect(shoppers);
  await page.getByLabel('Needs a person').check();
  await expectListed([emma.conversationId]);
  await page.getByLabel('Needs a person').uncheck();
  await expectListed([emma.conversationId, other.conversationId]);
  // Needs-human first.
  assert.equal((await listedIds())[0], emma.conversationId);
  await screenshot(page, 'console-list');
});

test('a staff reply typed in the console reaches the shopper; resolving ends the handoff', async () => {
  const emma = people.emma;
  await row(emma.conversationId).getByRole('link').click();
  await page.locator('#transcript').waitFor();
  assert.match(page.url(), new RegExp(`#c=${emma.conversationId}$`));
  assert.equal(await page.locator('#messages .role-shopper .text').textContent(), HANDOFF_TEXT);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'shopper markup never runs');
  assert.match(await text(page.locator('#handoff-box')), /the shopper asked for a person/);
  // Opened: no longer highlighted.
  await eventually(async () => {
    assert.doesNotMatch(await row(emma.conversationId).getAttribute('class'), /attention/);
  });

  // While it is open, what the shopper writes appears and is announced.
  await emma.send({ type: 'message', client_id: 'e-2', text: 'Are you still there?' });
  await page.locator('#messages .role-shopper', { hasText: 'Are you still there?' }).waitFor();
  await eventually(async () => {
    assert.equal(await page.locator('#announcer').textContent(), 'New message from the shopper: Are you still there?');
  });

  await page.getByLabel('Reply text').fill(REPLY);
  await page.getByRole('button', { name: 'Send reply' }).click();
  const frame = await emma.next('staff_message', { text: REPLY });
  assert.equal(frame.author, STAFF.name);
  await page.locator('#messages .role-staff', { hasText: REPLY }).waitFor();
  assert.equal(await page.getByLabel('Reply text').inputValue(), '');
  assert.match(await text(page.locator('#messages .role-staff .who')), new RegExp(`Staff · ${STAFF.name}`));

  await page.getByRole('button', { name: 'Resolve handoff' }).click();
  await emma.next('handoff', { status: 'resolved' });
  await page.locator('#handoff-box').waitFor({ state: 'hidden' });
  await eventually(async () => {
    assert.equal(await row(emma.conversationId).locator('.badge.needs-human').count(), 0);
  });
});

test("a shopper's thumbs-down shows in the transcript with the cited passages, timings and check", { timeout: 300_000 }, async () => {
  const noah = await Shopper.connect(shoppers);
  people.noah = noah;
  await noah.send({ type: 'message', client_id: 'n-1', text: QUESTION });
  await noah.next('ack', { client_id: 'n-1' });
  const end = await noah.next('answer_end', {}, 240_000);
  await noah.send({ type: 'feedback', message_seq: end.seq, rating: 'down', comment: COMMENT });
  await noah.settle();

  // The list follows without a reload: the question is there.
  const line = row(noah.conversationId);
  await eventually(async () => assert.equal(await line.locator('.question').textContent(), QUESTION));
  await line.getByRole('link').click();
  await page.locator('#transcript-title', { hasText: QUESTION }).waitFor();

  const transcript = await apiJson(`/api/conversations/${noah.conversationId}`);
  const message = transcript.messages.find((m) => m.role === 'assistant');
  const answer = message.answer;
  assert.ok(answer.sources.length > 0, `the answer cites passages: ${JSON.stringify(message)}`);
  assert.ok(answer.check, 'the answer check ran');

  const details = page.locator(`#messages li[data-seq="${message.seq}"] .details`);
  await eventually(async () => {
    assert.equal(await text(details.locator('dd.feedback')), `👎 Thumbs down “${COMMENT}”`);
  });
  for (const source of answer.sources) {
    const link = details.getByRole('link', { name: source.title });
    assert.equal(await link.getAttribute('href'), source.url);
    assert.ok(await details.locator('code.passage-id', { hasText: source.id }).isVisible());
  }
  const timings = await text(details.locator('dd.timings'));
  const t = answer.timings;
  if (t.ttft_ms !== null) assert.match(timings, new RegExp(`first token ${t.ttft_ms} ms`));
  assert.match(timings, new RegExp(`total ${t.total_ms} ms`));
  assert.match(timings, new RegExp(`${t.tokens} tokens? · ${t.tokens_per_s.toFixed(1)} tokens/s`));
  const check = await text(details.locator('dd.check'));
  assert.equal(check, answer.check.passed ? 'passed' : `failed${answer.check.reason ? `: ${answer.check.reason}` : ''}`);
  if (answer.gate) assert.match(await text(details.locator('dd.gate')), new RegExp(`score ${answer.gate.score.toFixed(3)}`));
  assert.equal(await text(details.locator('dd.outcome')), answer.outcome[0].toUpperCase() + answer.outcome.slice(1));
  assert.equal(await text(details.locator('dd.model')), answer.model);
  assert.equal(await text(details.locator('dd.prompt-version')), answer.prompt_version);
  await screenshot(page, 'console-transcript');
});

test('the feedback filter finds the thumbs-down conversation; outcome and date filters', async () => {
  const feedback = page.getByLabel('Feedback');
  await feedback.selectOption('down');
  await expectListed([people.noah.conversationId]);
  await feedback.selectOption('up');
  await expectListed([]);
  await page.getByText('No conversations match these filters.').waitFor();
  await feedback.selectOption('');
  await eventually(async () => assert.equal((await listedIds()).length, 3));

  const { messages } = await apiJson(`/api/conversations/${people.noah.conversationId}`);
  const { outcome } = messages.find((m) => m.role === 'assistant').answer;
  await page.getByLabel('Outcome').selectOption(outcome);
  await expectListed([people.noah.conversationId]);
  await page.getByLabel('Outcome').selectOption('');

  // Dates are the staff member's local days; "to" includes its day.
  const day = (offset) => page.evaluate((offset) => {
    const d = new Date();
    d.setDate(d.getDate() + offset);
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  }, offset);
  await page.getByLabel('To (date, inclusive)').fill(await day(-1));
  await expectListed([]);
  await page.getByLabel('From (date)').fill(await day(0));
  await page.getByRole('alert').filter({ hasText: 'The "From" date is after the "To" date.' }).waitFor();
  await page.getByLabel('To (date, inclusive)').fill(await day(0));
  await page.locator('#filter-error').waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal((await listedIds()).length, 3));
  await page.getByRole('button', { name: 'Clear' }).click();
  await eventually(async () => assert.equal((await listedIds()).length, 3));
});

test('full-text search finds a conversation by a word of its question', async () => {
  const search = page.getByLabel('Search messages');
  await search.fill('flamingo');
  await expectListed([people.emma.conversationId]);
  await search.fill('delivery');
  await expectListed([people.noah.conversationId]);
  await search.fill('');
  await eventually(async () => assert.ok((await listedIds()).length >= 3));
});

test('tags and a note are saved and still there after a reload', async () => {
  const emma = people.emma;
  await row(emma.conversationId).getByRole('link').click();
  await page.locator('#transcript-title', { hasText: 'flamingo' }).waitFor();
  for (const tag of ['carrier', 'vip']) {
    await page.getByLabel('New tag').fill(tag);
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.locator('#tag-list .tag', { hasText: tag }).waitFor();
  }
  await page.getByRole('button', { name: 'Remove tag vip' }).click();
  await page.locator('#tag-list .tag', { hasText: 'vip' }).waitFor({ state: 'detached' });
  const note = 'Asked the carrier on Monday; call back if nothing by Friday.';
  await page.getByLabel('Staff note').fill(note);
  await page.getByRole('button', { name: 'Save note' }).click();
  await page.getByText(/^Note saved/).waitFor();
  // The list shows the tag too.
  await row(emma.conversationId).locator('.tag', { hasText: 'carrier' }).waitFor();

  await page.reload();
  await page.locator('#transcript-title', { hasText: 'flamingo' }).waitFor();
  assert.deepEqual(await page.locator('#tag-list .tag > span').allTextContents(), ['carrier']);
  assert.equal(await page.getByLabel('Staff note').inputValue(), note);

  // The tag filter.
  await page.getByLabel('Tag', { exact: true }).fill('carrier');
  await expectListed([emma.conversationId]);
  await page.getByLabel('Tag', { exact: true }).fill('');
  await eventually(async () => assert.ok((await listedIds()).length >= 3));
});

test('on a phone the list and the transcript take turns; the keyboard opens a conversation', async () => {
  const phone = await staff.newPage();
  phone.on('pageerror', (error) => pageErrors.push(error));
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${server.url}/console`);
  const noahRow = phone.locator(`#conversation-list li[data-id="${people.noah.conversationId}"] a`);
  await noahRow.waitFor();
  assert.ok(await phone.locator('#transcript-panel').isHidden());
  assert.ok(await phone.getByLabel('Outcome').isHidden(), 'the filters beyond search start folded');
  await phone.getByText('More filters').click();
  assert.ok(await phone.getByLabel('Outcome').isVisible());

  await noahRow.focus();
  await phone.keyboard.press('Enter');
  await phone.locator('#transcript-title', { hasText: QUESTION }).waitFor();
  assert.ok(await phone.locator('#list-panel').isHidden());
  assert.equal(await phone.evaluate(() => document.activeElement.id), 'transcript-title', 'focus moves to the transcript');
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling');
  await screenshot(phone, 'console-phone');

  await phone.getByRole('button', { name: 'Back to the list' }).click();
  await phone.locator('#list-panel').waitFor();
  assert.ok(await phone.locator('#transcript-panel').isHidden());
  assert.equal(await phone.evaluate(() => document.activeElement.closest('li')?.dataset.id), people.noah.conversationId, 'focus returns to the row');
  await phone.close();
});

test('the export links download the filtered conversations as JSONL and CSV', async () => {
  await page.getByLabel('Feedback').selectOption('down');
  await expectListed([people.noah.conversationId]);
  const jsonl = page.getByRole('link', { name: 'JSONL' });
  const csv = page.getByRole('link', { name: 'CSV' });
  assert.match(await jsonl.getAttribute('href'), /^\/api\/export\?feedback=down&format=jsonl$/);
  assert.match(await csv.getAttribute('href'), /^\/api\/export\?feedback=down&format=csv$/);

  // Clicking downloads the file.
  const [download] = await Promise.all([page.waitForEvent('download'), jsonl.click()]);
  assert.equal(download.suggestedFilename(), 'conversations.jsonl');
  const lines = readFileSync(await download.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.length >= 1);
  const exported = JSON.stringify(lines);
  assert.ok(exported.includes(people.noah.conversationId));
  assert.ok(exported.includes(COMMENT));
  assert.ok(!exported.includes(people.emma.conversationId), 'the filter applies to the export');

  // And the CSV link's response.
  const response = await page.request.get(new URL(await csv.getAttribute('href'), server.url).href);
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-type'], /^text\/csv/);
  assert.match(response.headers()['content-disposition'], /attachment; filename="conversations\.csv"/);
  const body = await response.text();
  assert.match(body.split('\n')[0], /^conversation_id,/);
  assert.ok(body.includes(people.noah.conversationId));
  assert.ok(body.includes(COMMENT));
  assert.ok(!body.includes(people.emma.conversationId));
  await page.getByLabel('Feedback').selectOption('');
});

test('re-index reports the new index generation', { timeout: 300_000 }, async () => {
  await page.getByRole('button', { name: 'Re-index' }).click();
  await page.locator('#status', { hasText: /Re-indexed: index generation \d+/ }).waitFor({ timeout: 240_000 });
});

test('an ended session goes back to the login form; logging out too', async () => {
  // The session is gone (expired, or logged out elsewhere): the next call
  // gets 401 and the console asks to log in again.
  await staff.clearCookies();
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByRole('alert').filter({ hasText: 'Your session has ended' }).waitFor();
  assert.ok(await page.locator('#app').isHidden());
  assert.equal(await page.locator('#conversation-list li').count(), 0, 'no conversation data stays in the page');

  await login(page);
  await page.locator('#app').waitFor();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByText('You are logged out.').waitFor();
  assert.ok(await page.locator('#app').isHidden());
  assert.equal((await page.request.get(`${server.url}/api/me`)).status(), 401);
  await page.reload();
  await page.getByLabel('Password').waitFor();
  assert.ok(await page.locator('#app').isHidden());
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the console');
});
