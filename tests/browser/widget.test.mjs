// The shopper's widget on the demo shop page, in headless Chromium against
// the real server (real model, real index, real SQLite).
//
//   cd tests/browser && node --test --test-concurrency=1 widget.test.mjs
//
// The server serves the web/ files compiled into target/release/shopchat;
// with SHOPCHAT_WEB_DIR=/path/to/web it reads them from disk instead (the
// harness passes the environment through), so the widget can be changed
// without a rebuild.
//
// The model is small: the tests check behaviour (a delta was shown before
// the end, a source link exists, a notice appeared), not wording.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startServer, launchBrowser, screenshot, waitInPage, STAFF } from './harness.mjs';

const ANSWER = 120_000; // one model answer, generously (2 cores, maybe busy)

let server;
let browser;

// Signed identities (data-customer-id + data-signature) need the secret.
const IDENTITY_SECRET = 'widget-test-identity-secret';

before(async () => {
  process.env.SHOPCHAT_IDENTITY_SECRET = IDENTITY_SECRET;
  server = await startServer();
  browser = await launchBrowser();
}, { timeout: 240_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Records every frame the page's websockets send and receive. */
function recordFrames() {
  const Native = window.WebSocket;
  window.__frames = [];
  window.__sent = [];
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
      this.addEventListener('message', (e) => {
        try { window.__frames.push(JSON.parse(e.data)); } catch { /* not JSON */ }
      });
    }
    send(data) {
      try { window.__sent.push(JSON.parse(data)); } catch { /* not JSON */ }
      return super.send(data);
    }
  };
}

/** A fresh shopper (own sessionStorage) on the demo page. */
async function shop(t, { query = '', viewport = { width: 1200, height: 860 } } = {}) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript(recordFrames);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  // The page runs under its real Content-Security-Policy: anything it
  // blocks (an inline script, a style, the websocket) fails the test.
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(errors, [], 'no script errors or policy violations on the page');
  });
  await page.goto(`${server.url}/${query}`);
  return { page, context, widget: page.locator('shopchat-widget') };
}

async function open(widget) {
  await widget.locator('.launcher').click();
  await widget.locator('.panel').waitFor({ state: 'visible' });
}

async function ask(widget, text) {
  const input = widget.locator('textarea');
  await input.fill(text);
  await input.press('Enter');
}

const frames = (page) => page.evaluate(() => window.__frames);
const sent = (page) => page.evaluate(() => window.__sent);

/** Waits for the next answer_end after `after` frames; returns it. */
async function answerEnd(page, after = 0, timeout = ANSWER) {
  return waitInPage(page,
    (n) => window.__frames.slice(n).find((f) => f.type === 'answer_end'),
    after, { timeout, polling: 100 },
  );
}

/** The element of a shadow root that has the focus, as a short description. */
const focused = (page) => page.evaluate(() => {
  const root = document.querySelector('shopchat-widget').shadowRoot;
  const el = root.activeElement;
  return el ? `${el.tagName.toLowerCase()}.${el.className}` : null;
});

test('the demo page loads the widget in a shadow root', async (t) => {
  const { page, widget } = await shop(t);
  assert.match(await page.title(), /Northwind Threads/);
  // One script tag embeds it; it made its own host element with an open shadow root.
  assert.equal(await page.locator('script[src="/widget.js"]').count(), 1);
  const shadow = await page.evaluate(() => {
    const host = document.querySelector('shopchat-widget');
    return host && host.shadowRoot && host.shadowRoot.mode;
  });
  assert.equal(shadow, 'open');
  const launcher = widget.locator('.launcher');
  await launcher.waitFor({ state: 'visible' });
  assert.equal(await launcher.getAttribute('aria-label'), 'Chat with us');
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
  assert.equal(await widget.locator('.panel').isVisible(), false);
  // The page's CSS does not reach into the widget (both have a `.card`).
  const pageCard = await page.locator('main .card').first().evaluate((el) => getComputedStyle(el).borderRadius);
  assert.equal(pageCard, '14px');
  // No conversation is started by merely loading the page.
  assert.equal((await page.evaluate(() => window.__sockets.length)), 0);
  // The visitor's note and the staff link.
  await page.getByText('How long does delivery to the UK take?').waitFor();
  assert.equal(await page.locator('a[href="/console"]').count() >= 1, true);

  await open(widget);
  await widget.getByText("Hi! I'm the Northwind Threads assistant").waitFor();
  assert.equal(await launcher.getAttribute('aria-expanded'), 'true');
  await widget.getByRole('button', { name: 'Talk to a person' }).waitFor();
  assert.equal(await widget.locator('[role="log"]').getAttribute('aria-live'), 'polite');
  // The panel connects: hello, then welcome with a session kept for reloads.
  await waitInPage(page, () => window.__frames.some((f) => f.type === 'welcome'));
  const stored = await page.evaluate(() => Object.keys(sessionStorage).find((k) => k.startsWith('shopchat:')));
  assert.ok(stored, 'the session is kept in sessionStorage');
  assert.deepEqual((await sent(page))[0], { type: 'hello', v: 1, lang: 'en' });
});

test('a question gets a streamed answer with sources, and feedback', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  await ask(widget, 'How long does delivery to the UK take?');
  await widget.locator('.m.user', { hasText: 'How long does delivery to the UK take?' }).waitFor();
  // The typing indicator, then text while the answer is still streaming.
  await widget.locator('.dots').first().waitFor({ timeout: 30_000 });
  await waitInPage(page, () => {
    const root = document.querySelector('shopchat-widget').shadowRoot;
    const streaming = root.querySelector('.m.bot[aria-busy="true"] .t');
    return streaming && streaming.textContent.trim().length > 0;
  }, null, { timeout: ANSWER, polling: 'raf' });
  assert.equal(await widget.locator('.stop').isVisible(), true, 'Stop is offered while streaming');
  const end = await answerEnd(page);
  const deltas = (await frames(page)).filter((f) => f.type === 'delta' && f.seq === end.seq);
  assert.ok(deltas.length >= 2, `the answer streamed in ${deltas.length} deltas`);

  const answer = widget.locator('.m.bot').last();
  await answer.locator('.fb').waitFor();
  assert.ok((await answer.locator('.t').innerText()).trim().length > 0);
  if (end.text) {
    // The shop's own text replaced the generated one, and the widget says so.
    assert.equal((await answer.locator('.t').innerText()).trim(), end.text.trim());
    await answer.getByText("This answer was replaced with the shop's own text.").waitFor();
  }
  // Sources under the answer: links that open in a new tab.
  const source = answer.locator('.src a').first();
  await source.waitFor();
  assert.match(await source.getAttribute('href'), /^https:\/\/northwind-threads\.example\//);
  assert.equal(await source.getAttribute('target'), '_blank');
  assert.match(await source.getAttribute('rel'), /noopener/);
  assert.equal(await widget.locator('.send').isVisible(), true, 'Send is back after the answer');
  await screenshot(page, 'widget-en');

  // Thumbs up: sent with the answer's seq, and shown as chosen.
  const up = answer.getByRole('button', { name: 'Helpful', exact: true });
  await up.click();
  assert.equal(await up.getAttribute('aria-pressed'), 'true');
  assert.equal(await answer.getByRole('button', { name: 'Not helpful' }).getAttribute('aria-pressed'), 'false');
  await waitInPage(page, () => window.__sent.some((f) => f.type === 'feedback'));
  assert.deepEqual((await sent(page)).find((f) => f.type === 'feedback'),
    { type: 'feedback', message_seq: end.seq, rating: 'up' });
});

test('Stop ends a long answer early', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  await ask(widget, 'List every payment method you accept and explain how Klarna works');
  await waitInPage(page, () => window.__frames.some((f) => f.type === 'delta'), null, { timeout: ANSWER });
  const stop = widget.getByRole('button', { name: 'Stop the answer' });
  await stop.click();
  const stoppedAt = Date.now();
  assert.ok((await sent(page)).some((f) => f.type === 'stop'));
  const end = await answerEnd(page, 0, 30_000);
  assert.ok(Date.now() - stoppedAt < 30_000);
  const answer = widget.locator('.m.bot').last();
  await answer.locator('.fb').waitFor();
  // Either it says it was stopped, or the shop's own text replaced the part.
  await answer.locator('.note').waitFor();
  if (!end.text) await answer.getByText('You stopped this answer.').waitFor();
  await widget.locator('.send').waitFor();
  assert.equal(await widget.locator('.stop').isVisible(), false);
});

test('a reload brings the conversation back', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  await ask(widget, 'Where is my order NW-101574?');
  const end = await answerEnd(page, 0, 30_000);
  const before = await widget.locator('.m.bot').last().locator('.t').innerText();
  assert.ok(before.length > 0);
  assert.equal(end.action?.kind, 'verify_order');

  await page.reload();
  // The panel was open, so it opens again, and the server replays it all.
  await widget.locator('.panel').waitFor({ state: 'visible' });
  await widget.locator('.m.user', { hasText: 'Where is my order NW-101574?' }).waitFor();
  await widget.locator('.m.bot .t', { hasText: before.trim().slice(0, 40) }).waitFor();
  const hello = (await sent(page))[0];
  assert.equal(hello.type, 'hello');
  assert.ok(hello.session, 'the stored session is resumed');
  const welcome = (await frames(page)).find((f) => f.type === 'welcome');
  assert.equal(welcome.resumed, true);
  assert.equal(await widget.locator('.m.user').count(), 1, 'the message is shown once');
  assert.equal(await widget.locator('.m.bot .fb').count(), 1, 'the answer is shown once');
});

test('a dropped connection reconnects, and a cut answer comes back from the replay', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  await ask(widget, 'What is your return policy?');
  await waitInPage(page, () => window.__frames.some((f) => f.type === 'delta' || f.type === 'answer_end'),
    null, { timeout: ANSWER });
  await page.evaluate(() => window.__sockets[0].close());
  await widget.getByText('Chat is offline, reconnecting…').waitFor();
  // It reconnects after about a second and asks for what it has not seen.
  await waitInPage(page, () => window.__sockets.length === 2 && window.__frames.filter((f) => f.type === 'welcome').length === 2,
    null, { timeout: 20_000 });
  const hellos = (await sent(page)).filter((f) => f.type === 'hello');
  assert.equal(hellos.length, 2);
  assert.ok(hellos[1].session && hellos[1].last_seq >= 1);
  await widget.locator('.banner').waitFor({ state: 'hidden' });
  // The answer (as much of it as was written) is shown, once, and finished.
  await widget.locator('.m.bot .fb').waitFor({ timeout: ANSWER });
  assert.equal(await widget.locator('.m.bot .t').count(), 1, 'one answer (the greeting aside)');
  const replayed = (await frames(page)).filter((f) => f.type === 'answer_start');
  assert.equal(replayed.length, 2, 'the answer started, and came again with the replay');
  assert.equal(replayed[0].seq, replayed[1].seq);
  assert.ok((await widget.locator('.m.bot .t').last().innerText()).trim().length > 0);
  assert.equal(await widget.locator('.m.user').count(), 1);
  // And the conversation goes on.
  const seen = (await frames(page)).length;
  await ask(widget, 'Where is my order NW-100231?');
  await answerEnd(page, seen, 30_000);
});

test('a connection that dies silently mid-answer: the answer is fetched once the server has it', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  // A question with a long answer: it must still be being written when the
  // widget has reconnected.
  await ask(widget, 'List every payment method you accept and explain how Klarna works');
  await waitInPage(page, () => window.__frames.some((f) => f.type === 'delta'), null, { timeout: ANSWER });
  // The widget sees its socket die, but the server does not (a dead network):
  // it goes on streaming the answer into the old connection.
  await page.evaluate(() => {
    const old = window.__sockets[0];
    old.close = () => {};
    window.__frames.length = 0;
    old.onclose({ code: 1006 });
  });
  await widget.getByText('Chat is offline, reconnecting…').waitFor();
  // The network is back at once (the browser's `online` event), so the new
  // connection's replay comes while the answer is still being written; the
  // widget's own first retry waits a second, longer than a short answer.
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await waitInPage(page, () => window.__frames.some((f) => f.type === 'welcome'), null, { timeout: 20_000 });
  const types = await page.evaluate(() => window.__frames.map((f) => f.type));
  assert.ok(types.indexOf('answer_end') === -1 || types.indexOf('answer_end') > types.indexOf('welcome'),
    `the answer ended before the replay, so this test saw nothing: ${types}`);
  // The replay did not have the answer (still being written). Cut it short
  // on the old connection, as the server's idle timeout would, to keep this
  // test short.
  await page.evaluate(() => WebSocket.prototype.send.call(window.__sockets[0], '{"type":"stop"}'));
  // The answer ends in the widget once the server has stored it.
  await widget.locator('.m.bot .fb').waitFor({ timeout: ANSWER });
  assert.equal(await widget.locator('.m.bot .t').count(), 1);
  assert.ok((await widget.locator('.m.bot .t').innerText()).trim().length > 0);
  assert.equal(await widget.locator('.banner').isVisible(), false);
  assert.ok(await page.evaluate(() => window.__sockets.length) >= 3,
    'after the replay without the answer, the widget resumed again to fetch it');
});

test('order status after verifying with the order form', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  await ask(widget, 'Where is my order NW-101574?');
  const form = widget.getByRole('form', { name: 'Verify your order' });
  await form.waitFor({ timeout: 30_000 });
  const number = form.getByLabel('Order number');
  assert.equal(await number.inputValue(), 'NW-101574', 'the order number is filled in from the question');
  // A wrong address: the error is shown in the form.
  await form.getByLabel('Email address').fill('someone.else@example.com');
  await form.getByRole('button', { name: 'Verify' }).click();
  await form.getByRole('alert').filter({ hasText: "We couldn't verify" }).waitFor();
  // The right one.
  await form.getByLabel('Email address').fill('emma.clarke@example.com');
  await form.getByRole('button', { name: 'Verify' }).click();
  await widget.getByText('Verified as Emma Clarke').waitFor();
  assert.equal(await form.count(), 0, 'the form is gone');
  assert.deepEqual((await sent(page)).filter((f) => f.type === 'verify_order').at(-1),
    { type: 'verify_order', order_number: 'NW-101574', email: 'emma.clarke@example.com' });

  const seen = (await frames(page)).length;
  await ask(widget, 'Where is my order NW-101574?');
  await answerEnd(page, seen, 30_000);
  const answer = widget.locator('.m.bot').last();
  const text = await answer.locator('.t').innerText();
  assert.match(text, /NW-101574/);
  assert.match(text, /shipped|15500003760321/i);
  // The tracking URL in the text is a link.
  const tracking = answer.locator('.t a[href="https://northwind-threads.example/track/15500003760321"]');
  assert.equal(await tracking.count() >= 1, true);
});

test('starting a return from the answer', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  await ask(widget, 'I want to return NW-101296');
  const form = widget.getByRole('form', { name: 'Verify your order' });
  await form.waitFor({ timeout: 30_000 });
  await form.getByLabel('Email address').fill('mia.schneider@example.com');
  await form.getByLabel('Email address').press('Enter');
  await widget.getByText('Verified as Mia Schneider').waitFor();
  let seen = (await frames(page)).length;
  await ask(widget, 'I want to return NW-101296');
  const end = await answerEnd(page, seen, 30_000);
  assert.deepEqual(end.action, { kind: 'start_return', order_number: 'NW-101296' });
  const start = widget.getByRole('button', { name: 'Start a return for NW-101296' });
  seen = (await frames(page)).length;
  await start.click();
  await widget.locator('.notice', { hasText: /Return RMA-\S+ started for order NW-101296/ }).waitFor();
  await answerEnd(page, seen, 30_000);
  assert.equal(await start.isDisabled(), true);
  assert.match(await widget.locator('.m.bot .t').last().innerText(), /RMA-/);
});

test('talk to a person: the request, then a staff reply shown as text', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  await widget.getByRole('button', { name: 'Talk to a person' }).click();
  await widget.getByText("We've asked a person to join").waitFor();
  assert.ok((await sent(page)).some((f) => f.type === 'handoff'));
  const { conversation_id: id } = (await frames(page)).find((f) => f.type === 'welcome');

  const login = await fetch(`${server.url}/api/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: STAFF.name, password: STAFF.password }),
  });
  assert.equal(login.status, 200);
  const { token } = await login.json();
  const reply = '<img src=x onerror="window.__xss=1"> Hi, I can help with that.';
  const res = await fetch(`${server.url}/api/conversations/${id}/reply`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ text: reply }),
  });
  assert.equal(res.status, 200);
  const staff = widget.locator('.m.staff');
  await staff.waitFor();
  assert.equal(await staff.locator('.author').innerText(), `${STAFF.name} from the shop`);
  assert.equal(await staff.locator('.t').innerText(), reply, 'server text is shown as text');
  assert.equal(await staff.locator('img').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  // Styled apart from the assistant's answers.
  const bg = (loc) => loc.evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.notEqual(await bg(staff), await bg(widget.locator('.m.bot').first()));
});

test('frames the server seldom sends: queued, busy, a failed answer, handoff resolved, resumed:false', async (t) => {
  const { page, widget } = await shop(t);
  await open(widget);
  await waitInPage(page, () => window.__frames.some((f) => f.type === 'welcome'));
  // Delivered to the widget as if the server had sent them.
  const serverSends = (...list) => page.evaluate((list) => {
    for (const f of list) window.__sockets[0].dispatchEvent(new MessageEvent('message', { data: JSON.stringify(f) }));
  }, list);

  await serverSends({ type: 'answer_start', seq: 901 }, { type: 'queued', position: 2 });
  await widget.getByText('Waiting for the assistant… 2 ahead of you').waitFor();
  await serverSends(
    { type: 'delta', seq: 901, index: 0, text: '<img src=x onerror="window.__xss=1">' },
    { type: 'delta', seq: 901, index: 0, text: '<img src=x onerror="window.__xss=1">' },
    { type: 'delta', seq: 901, index: 1, text: ' and more' },
  );
  const answer = widget.locator('.m.bot').last();
  assert.equal(await answer.locator('.t').innerText(), '<img src=x onerror="window.__xss=1"> and more',
    'text, not markup; a repeated index is ignored');
  assert.equal(await widget.getByText('ahead of you').count(), 0);
  await serverSends({
    type: 'answer_end', seq: 901, outcome: 'error', text: 'Sorry, something went wrong.',
    timings: { ttft_ms: null, total_ms: 1, tokens: 0, tokens_per_s: 0 },
  });
  assert.equal(await answer.locator('.t').innerText(), 'Sorry, something went wrong.');
  await answer.getByText('Something went wrong while writing this answer.').waitFor();
  assert.equal(await answer.locator('.fb').count(), 0, 'no rating of a failed answer');
  assert.equal(await answer.locator('img').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);

  await serverSends({ type: 'busy', queued: 16 });
  await widget.getByText('The assistant is very busy right now').waitFor();
  await serverSends({ type: 'handoff', status: 'requested' }, { type: 'handoff', status: 'requested' });
  assert.equal(await widget.getByText("We've asked a person to join").count(), 1, 'said once');
  await serverSends({ type: 'handoff', status: 'resolved' });
  await widget.getByText('the assistant answers again').waitFor();
  await serverSends({ type: 'error', code: 'internal', message: 'x' });
  await widget.getByText('Something went wrong on our side').waitFor();

  // The server no longer knows the session: a new conversation, a clean slate.
  await serverSends({ type: 'welcome', v: 1, session: 'fresh', conversation_id: 'c-new', resumed: false });
  await widget.locator('.m.bot .t').waitFor({ state: 'detached' });
  assert.equal(await widget.locator('.notice').count(), 0);
  assert.equal(await widget.locator('.m.bot').count(), 1, 'only the greeting is left');
});

test('the Chinese interface with ?lang=zh', async (t) => {
  const { page, widget } = await shop(t, { query: '?lang=zh' });
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
  const launcher = widget.locator('.launcher');
  assert.equal(await launcher.getAttribute('aria-label'), '在线咨询');
  await open(widget);
  await widget.getByRole('button', { name: '转人工' }).waitFor();
  assert.equal(await widget.locator('textarea').getAttribute('placeholder'), '请输入您的问题…');
  await widget.getByText('您好！我是 Northwind Threads 的智能助手').waitFor();
  await ask(widget, '配送需要多长时间？');
  const end = await answerEnd(page);
  assert.equal((await sent(page))[0].lang, 'zh');
  const answer = widget.locator('.m.bot').last();
  await answer.locator('.fb').waitFor();
  const text = await answer.locator('.t').innerText();
  assert.match(text, /[\u4e00-\u9fff]/, `a Chinese answer: ${text}`);
  if ((await answer.locator('.src a').count()) > 0) await answer.getByText('来源').waitFor();
  if (end.text) await answer.getByText('此回答已替换为店铺提供的原文。').waitFor();
  await answer.getByRole('button', { name: '有帮助', exact: true }).waitFor();
  await screenshot(page, 'widget-zh');
});

test('keyboard only: Tab to the launcher, Enter opens, Enter sends, Escape closes', async (t) => {
  const { page, widget } = await shop(t);
  let onLauncher = false;
  for (let i = 0; i < 60 && !onLauncher; i++) {
    await page.keyboard.press('Tab');
    onLauncher = (await focused(page)) === 'button.launcher';
  }
  assert.ok(onLauncher, 'the launcher is reachable with Tab');
  // A visible focus ring.
  const outline = await widget.locator('.launcher').evaluate((el) => getComputedStyle(el).outlineStyle);
  assert.equal(outline, 'solid');
  await page.keyboard.press('Enter');
  await widget.locator('.panel').waitFor({ state: 'visible' });
  assert.equal(await focused(page), 'textarea.', 'the message box has the focus');
  await page.keyboard.type('Where is my order NW-101574?');
  await page.keyboard.press('Enter');
  await widget.locator('.m.user', { hasText: 'Where is my order NW-101574?' }).waitFor();
  await answerEnd(page, 0, 30_000);
  // The form's fields are labelled and reachable; Enter in them submits.
  const email = widget.getByLabel('Email address');
  await email.waitFor();
  assert.equal(await focused(page), 'input.', 'the order form takes the focus');
  await page.keyboard.type('emma.clarke@example.com');
  await page.keyboard.press('Enter');
  await widget.getByText('Verified as Emma Clarke').waitFor();
  // Space works on buttons too: the Talk to a person button, by Shift+Tab.
  await widget.locator('textarea').focus();
  let onHuman = false;
  for (let i = 0; i < 20 && !onHuman; i++) {
    await page.keyboard.press('Shift+Tab');
    onHuman = (await focused(page)) === 'button.human';
  }
  assert.ok(onHuman, 'Talk to a person is reachable with the keyboard');
  await page.keyboard.press('Space');
  await widget.getByText("We've asked a person to join").waitFor();
  await page.keyboard.press('Escape');
  await widget.locator('.panel').waitFor({ state: 'hidden' });
  assert.equal(await focused(page), 'button.launcher', 'the focus goes back to the launcher');
});

test('a signed-in shopper: identity, theming and position from data attributes', async (t) => {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  await context.addInitScript(recordFrames);
  t.after(() => context.close());
  const signature = createHmac('sha256', IDENTITY_SECRET).update('C1001').digest('hex');
  // The shop's page as a signed-in customer sees it: the same tag with more
  // data attributes (set as the parser inserts it, before it runs).
  await context.addInitScript((attrs) => {
    new MutationObserver((changes, observer) => {
      const tag = document.querySelector('script[src="/widget.js"]');
      if (!tag) return;
      Object.assign(tag.dataset, attrs);
      observer.disconnect();
    }).observe(document, { childList: true, subtree: true });
  }, {
    title: 'Acme', color: '#ffd400', position: 'left', customerId: 'C1001', signature,
    logo: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 1 1'/%3E",
  });
  const page = await context.newPage();
  await page.goto(server.url);
  // Rude page CSS does not reach into the widget.
  await page.addStyleTag({ content: 'body { font: 30px/3 serif; color: red; } button { background: yellow !important; }' });
  const widget = page.locator('shopchat-widget');
  const launcher = widget.locator('.launcher');
  const box = await launcher.boundingBox();
  assert.ok(box.x < 100, 'data-position="left"');
  const style = await launcher.evaluate((el) => {
    const s = getComputedStyle(el);
    return { bg: s.backgroundColor, fg: s.color };
  });
  assert.equal(style.bg, 'rgb(255, 212, 0)', 'data-color, and not the page\'s button rule');
  assert.equal(style.fg, 'rgb(17, 17, 17)', 'dark text on a light colour');
  await open(widget);
  assert.equal(await widget.locator('h2').innerText(), 'Acme');
  assert.equal(await widget.locator('header img').count(), 1);
  const font = await widget.locator('.panel').evaluate((el) => getComputedStyle(el).fontSize);
  assert.equal(font, '15px', 'the page\'s font does not leak in');
  await widget.getByText('Verified as Emma Clarke').waitFor();
  assert.deepEqual((await sent(page)).find((f) => f.type === 'identity'),
    { type: 'identity', customer_id: 'C1001', signature });
  // Verified: the order question is answered at once, without the form.
  await ask(widget, 'Where is my order NW-101574?');
  await answerEnd(page, 0, 30_000);
  assert.match(await widget.locator('.m.bot .t').last().innerText(), /15500003760321/);
  assert.equal(await widget.locator('form.card').count(), 0);
});

test('on a phone-sized screen the panel is full-screen', async (t) => {
  const viewport = { width: 390, height: 780 };
  const { widget } = await shop(t, { viewport });
  await open(widget);
  const box = await widget.locator('.panel').boundingBox();
  assert.deepEqual([box.x, box.y, box.width, box.height], [0, 0, viewport.width, viewport.height]);
  // Its close button is reachable there (the launcher is under the panel).
  await widget.getByRole('button', { name: 'Close chat' }).first().click();
  await widget.locator('.panel').waitFor({ state: 'hidden' });
  await widget.locator('.launcher').waitFor({ state: 'visible' });
});
