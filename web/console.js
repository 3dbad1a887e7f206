// The ShopChat staff console: plain JavaScript, no build step, no framework.
//
// It talks to the staff REST API of the same server with the session cookie
// (HttpOnly, so this script never sees the token) and follows live changes
// over Server-Sent Events. Every piece of text that comes from the server or
// from shoppers is put into the page with textContent or as an attribute of
// an element made with createElement; nothing is parsed as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const PAGE_SIZE = 50;
  const OUTCOMES = {
    answered: 'Answered',
    refused: 'Refused',
    replaced: 'Replaced',
    handoff: 'Handoff',
    error: 'Error',
    stopped: 'Stopped',
  };
  const ROLES = { shopper: 'Shopper', assistant: 'Assistant', staff: 'Staff', system: 'System' };

  const state = {
    name: null,
    conversations: [],
    /** The list's query (without paging), as last loaded; the export links use it. */
    appliedQuery: '',
    openId: null,
    transcript: null,
    /** Conversations that asked for a person while this console watched, until opened. */
    attention: new Set(),
    /** Reply drafts by conversation, so switching conversations keeps them. */
    drafts: new Map(),
    noteDirty: false,
    listToken: 0,
    transcriptToken: 0,
    events: null,
    eventsBroken: false,
    reconnectTimer: null,
  };

  // ---------------------------------------------------------------- helpers

  /** Creates an element. `text` sets textContent; other attributes are set as
   * attributes (never as HTML); children may be nodes or strings. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child);
    }
    return node;
  }

  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

  function formatTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return new Date().toDateString() === date.toDateString()
      ? `today ${timeOnly.format(date)}`
      : dateTime.format(date);
  }

  function timeElement(iso, prefix = '') {
    return el('time', { datetime: iso, title: iso }, prefix + formatTime(iso));
  }

  function plural(count, one, many) {
    return `${count} ${count === 1 ? one : many}`;
  }

  /** Only http(s) links from the server become links (no `javascript:`). */
  function safeUrl(url) {
    if (typeof url !== 'string' || url === '') return null;
    try {
      const parsed = new URL(url, location.href);
      return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
    } catch {
      return null;
    }
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  /** Says something to screen readers (and repeats work: the text is reset first). */
  function announce(text) {
    const region = $('announcer');
    region.textContent = '';
    setTimeout(() => { region.textContent = text; }, 50);
  }

  let statusTimer = null;
  /** A visible message under the header; `extra` may add a node (a link). */
  function showStatus(text, kind = 'info', extra = null) {
    clearTimeout(statusTimer);
    const box = $('status');
    box.replaceChildren(el('p', { class: kind }, text, extra ? ' ' : null, extra));
    if (kind === 'info') statusTimer = setTimeout(() => box.replaceChildren(), 12000);
  }

  function clearStatus() {
    clearTimeout(statusTimer);
    $('status').replaceChildren();
  }

  // -------------------------------------------------------------------- API

  class AuthError extends Error {}

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** A JSON request to the staff API with the session cookie. A 401 ends the
   * session in the page (back to the login form) and throws AuthError. */
  async function api(path, { method = 'GET', body } = {}) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'The server cannot be reached. Check the connection and try again.');
    }
    if (response.status === 401) {
      sessionEnded();
      throw new AuthError('log in first');
    }
    if (!response.ok) {
      let message = `The server answered ${response.status}.`;
      try {
        const data = await response.json();
        if (data && typeof data.error === 'string') message = data.error;
      } catch { /* not JSON */ }
      throw new ApiError(response.status, message);
    }
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  /** Reports a failed action; AuthError needs nothing more (the login form shows). */
  function failed(error, what) {
    if (error instanceof AuthError) return;
    const message = error instanceof Error ? error.message : String(error);
    showStatus(`${what}: ${message}`, 'error');
  }

  // ------------------------------------------------------------------ login

  function showLogin(message = '', kind = 'error') {
    disconnectEvents();
    state.name = null;
    state.conversations = [];
    state.openId = null;
    state.transcript = null;
    state.attention.clear();
    state.drafts.clear();
    $('conversation-list').replaceChildren();
    $('messages').replaceChildren();
    $('transcript').hidden = true;
    $('transcript-empty').hidden = false;
    $('note-text').value = '';
    $('reply-text').value = '';
    clearStatus();
    document.title = 'ShopChat console';
    $('app').hidden = true;
    $('login').hidden = false;
    const error = $('login-error');
    const info = $('login-info');
    error.hidden = !(message && kind === 'error');
    error.textContent = kind === 'error' ? message : '';
    info.hidden = !(message && kind === 'info');
    info.textContent = kind === 'info' ? message : '';
    $('login-password').value = '';
    ($('login-name').value ? $('login-password') : $('login-name')).focus();
  }

  function sessionEnded() {
    if (!$('app').hidden) showLogin('Your session has ended. Please log in again.');
  }

  async function onLogin(event) {
    event.preventDefault();
    const name = $('login-name').value.trim();
    const password = $('login-password').value;
    const error = $('login-error');
    $('login-info').hidden = true;
    if (!name || !password) {
      error.textContent = 'Enter your name and your password.';
      error.hidden = false;
      return;
    }
    const button = $('login-form').querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const response = await fetch('/api/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ name, password }),
      });
      if (response.ok) {
        const data = await response.json();
        $('login-password').value = '';
        error.hidden = true;
        startApp(data.name || name);
        return;
      }
      let message = 'Wrong name or password.';
      if (response.status !== 401) {
        message = `Logging in failed (${response.status}).`;
        try {
          const data = await response.json();
          if (data && typeof data.error === 'string') message = data.error;
        } catch { /* not JSON */ }
      }
      error.textContent = message;
      error.hidden = false;
      $('login-password').select();
    } catch {
      error.textContent = 'The server cannot be reached. Check the connection and try again.';
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async function onLogout() {
    try {
      await api('/api/logout', { method: 'POST' });
    } catch (error) {
      if (error instanceof AuthError) return;
      // The session is forgotten here either way.
    }
    showLogin('You are logged out.', 'info');
  }

  function startApp(name) {
    state.name = name;
    $('staff-name').textContent = name;
    $('login').hidden = true;
    $('app').hidden = false;
    connectEvents();
    loadList();
    openFromHash({ focus: false });
  }

  // --------------------------------------------------------------- filters

  /** A yyyy-mm-dd date input as the local midnight starting that day. */
  function localDay(value, plusDays = 0) {
    const [year, month, day] = value.split('-').map(Number);
    return new Date(year, month - 1, day + plusDays);
  }

  /** The filters as query parameters; throws on contradictory dates. */
  function filterParams() {
    const params = new URLSearchParams();
    if ($('filter-needs-human').checked) params.set('needs_human', 'true');
    const outcome = $('filter-outcome').value;
    if (outcome) params.set('outcome', outcome);
    const feedback = $('filter-feedback').value;
    if (feedback) params.set('feedback', feedback);
    const tag = $('filter-tag').value.trim();
    if (tag) params.set('tag', tag);
    const q = $('filter-q').value.trim();
    if (q) params.set('q', q);
    const from = $('filter-from').value;
    const to = $('filter-to').value;
    // `to` is inclusive here; the API's `to` is "started before".
    if (from && to && localDay(from) > localDay(to)) {
      throw new Error('The "From" date is after the "To" date.');
    }
    if (from) params.set('from', localDay(from).toISOString());
    if (to) params.set('to', localDay(to, 1).toISOString());
    return params;
  }

  function updateExportLinks(query) {
    for (const format of ['jsonl', 'csv']) {
      const params = new URLSearchParams(query);
      params.set('format', format);
      $(`export-${format}`).href = `/api/export?${params}`;
    }
  }

  function hasFilters() {
    return state.appliedQuery !== '';
  }

  // ------------------------------------------------------------------ list

  /** Loads the list. `more` appends the next page; `keep` reloads as many
   * rows as are shown (live updates) instead of the first page. */
  async function loadList({ more = false, keep = false } = {}) {
    let params;
    const filterError = $('filter-error');
    try {
      params = filterParams();
    } catch (error) {
      filterError.textContent = error.message;
      filterError.hidden = false;
      return null;
    }
    filterError.hidden = true;
    const query = params.toString();
    const token = ++state.listToken;
    // The API returns at most 500 at a time.
    const limit = keep ? Math.min(500, Math.max(PAGE_SIZE, state.conversations.length)) : PAGE_SIZE;
    params.set('limit', String(limit));
    params.set('offset', String(more ? state.conversations.length : 0));
    let data;
    try {
      data = await api(`/api/conversations?${params}`);
    } catch (error) {
      if (token === state.listToken) failed(error, 'The conversations could not be loaded');
      return null;
    }
    if (token !== state.listToken) return null;
    const rows = Array.isArray(data && data.conversations) ? data.conversations : [];
    state.conversations = more ? state.conversations.concat(rows) : rows;
    state.appliedQuery = query;
    updateExportLinks(query);
    renderList();
    $('more').hidden = rows.length < limit;
    return state.conversations;
  }

  function renderList() {
    const list = $('conversation-list');
    // Keep the keyboard focus on the same row across a re-render.
    const focused = list.contains(document.activeElement)
      ? document.activeElement.closest('li') && document.activeElement.closest('li').dataset.id
      : null;
    if (state.conversations.length === 0) {
      list.replaceChildren(el('li', {
        class: 'empty',
        text: hasFilters() ? 'No conversations match these filters.' : 'No conversations yet.',
      }));
    } else {
      list.replaceChildren(...state.conversations.map(row));
    }
    if (focused) {
      const again = [...list.querySelectorAll('li')].find((li) => li.dataset.id === focused);
      if (again) again.querySelector('a').focus();
    }
    const waiting = state.conversations.filter((c) => c.needs_human).length;
    $('list-summary').textContent = `${plural(state.conversations.length, 'conversation', 'conversations')}`
      + (waiting ? `, ${waiting} waiting for a person` : '')
      + (hasFilters() ? ' (filtered)' : '');
    updateTitle();
  }

  function updateTitle() {
    const count = state.attention.size;
    document.title = count ? `(${count}) Needs a person · ShopChat console` : 'ShopChat console';
  }

  function row(c) {
    const classes = [];
    if (c.needs_human) classes.push('needs-human');
    if (state.attention.has(c.id)) classes.push('attention');
    const meta = el('span', { class: 'meta' },
      el('span', {}, plural(c.message_count, 'message', 'messages')),
      c.last_outcome
        ? el('span', { class: `badge outcome-${c.last_outcome}`, title: 'Outcome of the last answer' },
          el('span', { class: 'visually-hidden' }, 'last outcome: '), OUTCOMES[c.last_outcome] || c.last_outcome)
        : null,
      timeElement(c.updated_at, 'updated '),
    );
    const tags = (c.tags || []).length
      ? el('span', { class: 'tags' },
        el('span', { class: 'visually-hidden' }, 'tags: '),
        c.tags.map((tag) => el('span', { class: 'tag' }, tag)))
      : null;
    const link = el('a', {
      class: 'row',
      href: `#c=${encodeURIComponent(c.id)}`,
      'aria-current': c.id === state.openId ? 'true' : null,
    },
    c.needs_human ? el('span', { class: 'badge needs-human', title: c.needs_human }, 'Needs a person') : null,
    el('span', { class: 'question' }, c.first_question || '(no message from the shopper yet)'),
    meta,
    tags);
    const li = el('li', { class: classes.join(' ') || null }, link);
    li.dataset.id = c.id;
    return li;
  }

  const applyFilters = () => loadList();
  const applyFiltersSoon = debounce(applyFilters, 350);

  // ------------------------------------------------------------ transcript

  function idFromHash() {
    const match = /^#c=(.+)$/.exec(location.hash);
    if (!match) return null;
    try {
      return decodeURIComponent(match[1]);
    } catch {
      return null;
    }
  }

  function openFromHash({ focus = true } = {}) {
    const id = idFromHash();
    if (id) {
      loadTranscript(id, { focus });
    } else {
      closeTranscript();
    }
  }

  function closeTranscript() {
    saveDraft();
    const wasOpen = state.openId;
    state.openId = null;
    state.transcript = null;
    state.transcriptToken++;
    $('transcript').hidden = true;
    $('transcript-empty').hidden = false;
    $('app').classList.remove('viewing');
    for (const link of $('conversation-list').querySelectorAll('a[aria-current]')) {
      link.removeAttribute('aria-current');
    }
    if (wasOpen) {
      const li = [...$('conversation-list').children].find((item) => item.dataset.id === wasOpen);
      if (li) li.querySelector('a').focus();
    }
  }

  function saveDraft() {
    if (state.openId) {
      const text = $('reply-text').value;
      if (text) state.drafts.set(state.openId, text);
      else state.drafts.delete(state.openId);
    }
  }

  async function loadTranscript(id, { focus = false } = {}) {
    const switching = id !== state.openId;
    if (switching) {
      saveDraft();
      state.openId = id;
      state.noteDirty = false;
      $('reply-text').value = state.drafts.get(id) || '';
      for (const status of ['reply-status', 'note-status', 'tag-status']) $(status).textContent = '';
      $('app').classList.add('viewing');
      for (const li of $('conversation-list').children) {
        const link = li.querySelector('a');
        if (link) link.setAttribute('aria-current', li.dataset.id === id ? 'true' : 'false');
      }
    }
    const token = ++state.transcriptToken;
    let transcript;
    try {
      transcript = await api(`/api/conversations/${encodeURIComponent(id)}`);
    } catch (error) {
      if (token !== state.transcriptToken) return;
      if (error instanceof ApiError && error.status === 404) {
        showStatus('That conversation does not exist.', 'error');
        closeTranscript();
      } else {
        failed(error, 'The conversation could not be loaded');
      }
      return;
    }
    if (token !== state.transcriptToken) return;
    renderTranscript(transcript);
    if (state.attention.delete(id)) {
      const li = [...$('conversation-list').children].find((item) => item.dataset.id === id);
      if (li) li.classList.remove('attention');
      updateTitle();
    }
    if (focus && switching) $('transcript-title').focus();
  }

  function lastSeq(transcript) {
    return transcript.messages.reduce((max, m) => Math.max(max, m.seq), 0);
  }

  function renderTranscript(transcript) {
    const c = transcript.conversation;
    const before = state.transcript && state.transcript.conversation.id === c.id
      ? lastSeq(state.transcript)
      : null;
    state.transcript = transcript;
    $('transcript-empty').hidden = true;
    $('transcript').hidden = false;
    const first = transcript.messages.find((m) => m.role === 'shopper');
    $('transcript-title').textContent = first ? first.text : 'Conversation';
    $('conv-meta').replaceChildren(...[
      el('span', {}, 'ID ', el('code', {}, c.id)),
      el('span', {}, 'started ', timeElement(c.created_at)),
      el('span', {}, 'updated ', timeElement(c.updated_at)),
      el('span', {}, `language ${c.lang}`),
      el('span', {}, `channel ${c.channel}`),
      c.customer_id ? el('span', {}, `customer ${c.customer_id}`) : null,
    ].filter(Boolean));
    $('handoff-box').hidden = !c.needs_human;
    $('handoff-reason').textContent = c.needs_human ? `Reason: ${c.needs_human}.` : '';
    $('resolve').disabled = false;
    $('messages').replaceChildren(...transcript.messages.map(messageItem));
    renderTags(c.tags || []);
    if (!state.noteDirty) $('note-text').value = c.note || '';
    // A shopper writing into the conversation being read is announced.
    if (before !== null) {
      const fresh = transcript.messages.filter((m) => m.seq > before && m.role === 'shopper');
      if (fresh.length) announce(`New message from the shopper: ${fresh[fresh.length - 1].text}`);
    }
  }

  function messageItem(m) {
    const who = m.role === 'staff' && m.author ? `Staff · ${m.author}` : (ROLES[m.role] || m.role);
    const notes = [];
    if (m.state === 'streaming') notes.push('being written…');
    if (m.state === 'partial') notes.push('cut off');
    if (m.state === 'failed') notes.push('failed');
    const item = el('li', { class: `message role-${m.role}` },
      el('div', { class: 'who' },
        el('span', {}, who),
        el('span', { class: 'visually-hidden' }, ', '),
        timeElement(m.created_at),
        notes.length ? el('span', { class: 'state' }, `(${notes.join(', ')})`) : null),
      el('div', { class: 'text' }, m.text || (m.state === 'streaming' ? '…' : '(no text)')));
    item.dataset.seq = String(m.seq);
    if (m.role === 'assistant' && (m.answer || m.feedback)) item.append(answerDetails(m));
    return item;
  }

  function field(name, term, ...value) {
    return [el('dt', {}, term), el('dd', { class: name }, ...value)];
  }

  function answerDetails(m) {
    const a = m.answer;
    const rows = [];
    if (a) {
      rows.push(field('outcome', 'Outcome',
        el('span', { class: `badge outcome-${a.outcome}` }, OUTCOMES[a.outcome] || a.outcome)));
      const sources = a.sources || [];
      rows.push(field('sources', 'Sources', sources.length
        ? el('ol', {}, sources.map((s) => {
          const url = safeUrl(s.url);
          const title = url
            ? el('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, s.title || s.id)
            : el('span', {}, s.title || s.id);
          return el('li', {}, title, ' ', el('code', { class: 'passage-id' }, s.id));
        }))
        : 'none cited'));
      const t = a.timings || {};
      const ttft = t.ttft_ms === null || t.ttft_ms === undefined
        ? 'no model (no first token)'
        : `first token ${Math.round(t.ttft_ms)} ms`;
      const speed = typeof t.tokens_per_s === 'number' ? t.tokens_per_s.toFixed(1) : '0.0';
      rows.push(field('timings', 'Timings',
        `${ttft} · total ${Math.round(t.total_ms || 0)} ms · ${plural(t.tokens || 0, 'token', 'tokens')} · ${speed} tokens/s`));
      rows.push(field('gate', 'Gate', a.gate
        ? `${a.gate.covered ? 'covered' : 'not covered'}, score ${Number(a.gate.score).toFixed(3)}`
        : 'did not run'));
      rows.push(field('check', 'Answer check', a.check
        ? (a.check.passed
          ? el('span', { class: 'check-passed' }, 'passed')
          : el('span', { class: 'check-failed' }, a.check.reason ? `failed: ${a.check.reason}` : 'failed'))
        : 'did not run'));
      rows.push(field('model', 'Model', a.model || 'none'));
      rows.push(field('prompt-version', 'Prompt version', a.prompt_version || 'none'));
    }
    const f = m.feedback;
    rows.push(field('feedback', 'Shopper feedback', f
      ? el('span', { class: f.rating === 'down' ? 'feedback-down' : 'feedback-up' },
        el('span', { 'aria-hidden': 'true' }, f.rating === 'down' ? '👎 ' : '👍 '),
        f.rating === 'down' ? 'Thumbs down' : 'Thumbs up',
        f.comment ? ' ' : null,
        f.comment ? el('span', { class: 'comment' }, `“${f.comment}”`) : null)
      : 'none'));
    return el('div', { class: 'details' }, el('dl', {}, rows.flat()));
  }

  function renderTags(tags) {
    const list = $('tag-list');
    if (!tags.length) {
      list.replaceChildren(el('li', { class: 'form-status' }, 'No tags yet.'));
      return;
    }
    list.replaceChildren(...tags.map((tag) => {
      const remove = el('button', { type: 'button', 'aria-label': `Remove tag ${tag}`, title: 'Remove' }, '×');
      remove.addEventListener('click', () => removeTag(tag));
      return el('li', { class: 'tag' }, el('span', {}, tag), remove);
    }));
  }

  /** Reloads the open transcript and the list after a change here. */
  async function refreshOpen() {
    const id = state.openId;
    await Promise.all([id ? loadTranscript(id) : null, loadList({ keep: true })]);
  }

  // ---------------------------------------------------------- staff actions

  async function addTag(event) {
    event.preventDefault();
    const id = state.openId;
    const input = $('tag-input');
    const tag = input.value.trim();
    if (!id) return;
    if (!tag) {
      $('tag-status').textContent = 'Type a tag first.';
      input.focus();
      return;
    }
    try {
      await api(`/api/conversations/${encodeURIComponent(id)}/tags`, { method: 'POST', body: { tag } });
      input.value = '';
      $('tag-status').textContent = `Tag “${tag}” added.`;
      await refreshOpen();
    } catch (error) {
      failed(error, 'The tag could not be added');
    }
  }

  async function removeTag(tag) {
    const id = state.openId;
    if (!id) return;
    try {
      await api(`/api/conversations/${encodeURIComponent(id)}/tags/${encodeURIComponent(tag)}`, { method: 'DELETE' });
      $('tag-status').textContent = `Tag “${tag}” removed.`;
      $('tag-input').focus();
      await refreshOpen();
    } catch (error) {
      failed(error, 'The tag could not be removed');
    }
  }

  async function saveNote(event) {
    event.preventDefault();
    const id = state.openId;
    if (!id) return;
    const note = $('note-text').value;
    const status = $('note-status');
    status.textContent = 'Saving…';
    try {
      await api(`/api/conversations/${encodeURIComponent(id)}/note`, { method: 'PUT', body: { note } });
      if ($('note-text').value === note) state.noteDirty = false;
      status.textContent = `Note saved ${timeOnly.format(new Date())}.`;
    } catch (error) {
      status.textContent = 'Not saved.';
      failed(error, 'The note could not be saved');
    }
  }

  async function sendReply(event) {
    event.preventDefault();
    const id = state.openId;
    const box = $('reply-text');
    const text = box.value.trim();
    const status = $('reply-status');
    if (!id) return;
    if (!text) {
      status.textContent = 'Write a reply first.';
      box.focus();
      return;
    }
    const button = $('reply-form').querySelector('button[type="submit"]');
    button.disabled = true;
    status.textContent = 'Sending…';
    try {
      await api(`/api/conversations/${encodeURIComponent(id)}/reply`, { method: 'POST', body: { text } });
      if (state.openId === id) {
        box.value = '';
        status.textContent = 'Reply sent.';
      }
      state.drafts.delete(id);
      await refreshOpen();
    } catch (error) {
      status.textContent = 'Not sent.';
      failed(error, 'The reply could not be sent');
    } finally {
      button.disabled = false;
    }
  }

  async function resolveHandoff() {
    const id = state.openId;
    if (!id) return;
    const button = $('resolve');
    button.disabled = true;
    try {
      await api(`/api/conversations/${encodeURIComponent(id)}/resolve`, { method: 'POST' });
      state.attention.delete(id);
      showStatus('Handoff resolved: the assistant answers this conversation again.');
      await refreshOpen();
      $('reply-text').focus();
    } catch (error) {
      button.disabled = false;
      failed(error, 'The handoff could not be resolved');
    }
  }

  async function reindex() {
    const button = $('reindex');
    button.disabled = true;
    button.textContent = 'Re-indexing…';
    showStatus('Re-indexing the shop’s knowledge base…');
    try {
      const data = await api('/api/reindex', { method: 'POST' });
      showStatus(`Re-indexed: index generation ${data && data.generation} is now in use.`);
    } catch (error) {
      failed(error, 'Re-indexing failed');
    } finally {
      button.disabled = false;
      button.textContent = 'Re-index';
    }
  }

  // ------------------------------------------------------------ live events

  const pending = { ids: new Set(), needsHuman: new Set(), all: false };

  const flush = debounce(async () => {
    const { ids, needsHuman, all } = pending;
    pending.ids = new Set();
    pending.needsHuman = new Set();
    pending.all = false;
    if (state.name === null) return;
    const open = state.openId;
    const jobs = [loadList({ keep: true })];
    if (open && (all || ids.has(open))) jobs.push(loadTranscript(open));
    const [rows] = await Promise.all(jobs);
    for (const id of needsHuman) {
      const c = (rows || state.conversations).find((item) => item.id === id);
      const question = c && c.first_question ? `: “${c.first_question}”` : '';
      const text = `A shopper needs a person${question}`;
      announce(text);
      const link = el('a', { href: `#c=${encodeURIComponent(id)}` }, 'Open the conversation');
      showStatus(`🔔 ${text}.`, 'attention info', link);
    }
  }, 150);

  function onLiveEvent(kind, event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    const id = data && data.conversation_id;
    if (typeof id !== 'string') return;
    if (kind === 'needs_human') {
      state.attention.add(id);
      pending.needsHuman.add(id);
    } else if (kind === 'resolved') {
      state.attention.delete(id);
      pending.needsHuman.delete(id);
    }
    pending.ids.add(id);
    flush();
  }

  function refreshAll() {
    pending.all = true;
    flush();
  }

  function connectEvents() {
    disconnectEvents();
    const source = new EventSource('/api/events', { withCredentials: true });
    state.events = source;
    source.addEventListener('open', () => {
      // Back after an interruption: catch up on what was missed.
      if (state.eventsBroken) refreshAll();
      state.eventsBroken = false;
    });
    source.addEventListener('error', () => {
      state.eventsBroken = true;
      // A dropped stream reconnects by itself; a refused one (an expired
      // session, say) is closed for good: check the session, then retry.
      if (source.readyState === EventSource.CLOSED && state.events === source) {
        state.events = null;
        retryEvents();
      }
    });
    for (const kind of ['needs_human', 'resolved', 'message']) {
      source.addEventListener(kind, (event) => onLiveEvent(kind, event));
    }
    source.addEventListener('lagged', refreshAll);
  }

  function retryEvents() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(async () => {
      if (state.name === null || state.events) return;
      try {
        await api('/api/me');
      } catch (error) {
        if (!(error instanceof AuthError)) retryEvents();
        return; // AuthError: the login form is showing.
      }
      if (state.name !== null && !state.events) {
        connectEvents();
        state.eventsBroken = true;
      }
    }, 5000);
  }

  function disconnectEvents() {
    clearTimeout(state.reconnectTimer);
    if (state.events) {
      state.events.close();
      state.events = null;
    }
  }

  // ------------------------------------------------------------------ start

  function wire() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('reindex').addEventListener('click', reindex);

    const filters = $('filters');
    filters.addEventListener('submit', (event) => {
      event.preventDefault();
      applyFilters();
    });
    for (const id of ['filter-outcome', 'filter-feedback', 'filter-needs-human', 'filter-from', 'filter-to']) {
      $(id).addEventListener('change', applyFilters);
    }
    for (const id of ['filter-q', 'filter-tag']) $(id).addEventListener('input', applyFiltersSoon);
    $('clear-filters').addEventListener('click', () => {
      filters.reset();
      applyFilters();
    });
    $('more').addEventListener('click', () => loadList({ more: true }));

    window.addEventListener('hashchange', () => openFromHash({ focus: true }));
    $('back').addEventListener('click', () => {
      if (location.hash) location.hash = '';
      else closeTranscript();
    });

    $('tag-form').addEventListener('submit', addTag);
    $('note-form').addEventListener('submit', saveNote);
    $('note-text').addEventListener('input', () => {
      state.noteDirty = true;
      $('note-status').textContent = 'Not saved yet.';
    });
    $('reply-form').addEventListener('submit', sendReply);
    $('reply-text').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        $('reply-form').requestSubmit();
      }
    });
    $('resolve').addEventListener('click', resolveHandoff);
  }

  async function boot() {
    wire();
    // On a phone the list comes first; the filters open on demand.
    if (window.matchMedia('(max-width: 820px)').matches) $('more-filters').open = false;
    try {
      const response = await fetch('/api/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (response.ok) {
        const me = await response.json();
        startApp(me.name);
        return;
      }
      showLogin();
    } catch {
      showLogin('The server cannot be reached. Reload the page to try again.');
    }
  }

  boot();
})();
