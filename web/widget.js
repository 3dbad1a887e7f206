/*!
 * ShopChat widget: the shopper's chat window. Plain JavaScript, no
 * dependencies, no build step. Weight: 42022 bytes, 13869 bytes gzipped
 * (`gzip -9 -c web/widget.js | wc -c`).
 *
 * Embed with one tag (every data attribute is optional):
 *
 *   <script src="https://HOST/widget.js" defer
 *     data-title="Northwind Threads"          header title
 *     data-greeting="Hi! How can we help?"    first message, not sent anywhere
 *     data-color="#1f5f4a"                    accent colour (launcher, your messages)
 *     data-position="right"                   right | left
 *     data-lang="en"                          en | zh; else <html lang>, else the browser's
 *     data-logo="https://…/logo.svg"          small logo in the header
 *     data-customer-id="C1001"                a signed-in customer, with the
 *     data-signature="…"></script>            HMAC-SHA256 of the id (docs/protocol.md)
 *
 * data-title and data-greeting may be given per language as well:
 * data-title-zh, data-greeting-zh… win over the plain ones in that language.
 * The websocket is wss://HOST/ws (ws:// for an http:// src): always the host
 * the script was loaded from.
 *
 * The widget lives in an open shadow root on a <shopchat-widget> element
 * appended to <body>: the page's CSS does not reach in, ours does not leak
 * out. Theme it from the page with these custom properties (they inherit
 * into the shadow root), e.g. `shopchat-widget { --shopchat-color: #b00; }`:
 *
 *   --shopchat-color          accent (default #1f5f4a, or data-color)
 *   --shopchat-on-color       text on the accent (default: white or black,
 *                             whichever reads better on data-color)
 *   --shopchat-bg             panel background (#fff)
 *   --shopchat-fg             text colour (#1d2327)
 *   --shopchat-muted          secondary text (#5b6670)
 *   --shopchat-bot-bg         assistant bubbles (#f1f3f4)
 *   --shopchat-staff-bg       shop staff bubbles (#fff4d6)
 *   --shopchat-focus          focus ring (#1a73e8)
 *   --shopchat-font           font family (system-ui stack)
 *   --shopchat-radius         corner radius (14px)
 *   --shopchat-z              z-index (2147483000)
 *   --shopchat-offset         distance from the window's corner (20px)
 *
 * `window.ShopChat.open()`, `.close()` and `.toggle()` let the page open the
 * chat from its own links ("Contact us").
 *
 * Resilience: sessionStorage (one key per chat host, gone with the tab)
 * keeps the session secret, the texts of the shopper's own messages (the
 * replay acknowledges them without their text), the ratings given, the
 * verified name and whether the panel was open. After a reload the widget
 * sends `hello` without `last_seq`, the server replays the whole
 * conversation and the widget renders it; after a dropped connection it
 * sends the `last_seq` of what this page has finished rendering, so an
 * answer cut off mid-stream comes again whole (delta indexes already shown
 * are ignored). A message never acknowledged is sent again with its
 * client_id. Reconnects back off 1 s, 2 s, 5 s, then every 10 s; `ping`
 * after 25 s of silence, and no reply within 10 s counts as a drop.
 *
 * Server text is only ever put in the page as text nodes (never innerHTML);
 * links are made only for http(s) URLs.
 */
(function () {
  'use strict';
  const script = document.currentScript;
  if (!script || window.ShopChat) return;

  // ---- Strings -------------------------------------------------------------
  const STRINGS = {
    en: {
      launcher: 'Chat with us',
      closeChat: 'Close chat',
      title: 'Chat',
      greeting: 'Hi! How can we help you today?',
      conversation: 'Conversation',
      inputLabel: 'Your message',
      placeholder: 'Type your question…',
      send: 'Send',
      stop: 'Stop',
      stopLabel: 'Stop the answer',
      human: 'Talk to a person',
      humanAsked: "We've asked a person to join. They'll reply here as soon as they can.",
      humanBack: 'The person has finished; the assistant answers again.',
      you: 'You',
      bot: 'Assistant',
      staff: '{name} from the shop',
      typing: 'The assistant is typing…',
      queued: 'Waiting for the assistant… {n} ahead of you',
      busy: 'The assistant is very busy right now. Please try again in a minute, or talk to a person.',
      offline: 'Chat is offline, reconnecting…',
      sources: 'Sources',
      newTab: '(opens in a new tab)',
      replaced: "This answer was replaced with the shop's own text.",
      failed: 'Something went wrong while writing this answer.',
      stopped: 'You stopped this answer.',
      helpful: 'Helpful',
      notHelpful: 'Not helpful',
      thanks: 'Thanks for your feedback!',
      formTitle: 'Verify your order',
      orderNumber: 'Order number',
      email: 'Email address',
      verify: 'Verify',
      fillBoth: 'Please enter the order number and the email address.',
      verified: 'Verified as {name}. You can ask about your orders now.',
      notVerified: "We couldn't verify that order number and email address.",
      rateLimited: 'Too many attempts. Please wait a minute and try again.',
      tooLong: 'That message is too long. Please shorten it.',
      wait: 'Please wait for the answer to finish, or stop it.',
      internal: 'Something went wrong on our side; please try again.',
      notSent: 'Not sent',
      startReturn: 'Start a return for {order}',
      returnStarted: 'Return {rma} started for order {order}.',
      unsupported: 'This chat needs a newer version of the page. Please reload.',
    },
    zh: {
      launcher: '在线咨询',
      closeChat: '关闭聊天',
      title: '在线客服',
      greeting: '您好！有什么可以帮您？',
      conversation: '对话',
      inputLabel: '您的消息',
      placeholder: '请输入您的问题…',
      send: '发送',
      stop: '停止',
      stopLabel: '停止回答',
      human: '转人工',
      humanAsked: '已为您呼叫人工客服，工作人员会尽快在这里回复您。',
      humanBack: '人工客服已结束对话，助手将继续为您解答。',
      you: '您',
      bot: '助手',
      staff: '店铺客服 {name}',
      typing: '助手正在输入…',
      queued: '正在等待助手……前面还有 {n} 位',
      busy: '助手现在非常繁忙，请稍后再试，或转人工。',
      offline: '聊天已离线，正在重新连接…',
      sources: '来源',
      newTab: '（在新标签页中打开）',
      replaced: '此回答已替换为店铺提供的原文。',
      failed: '生成回答时出错了。',
      stopped: '您已停止此回答。',
      helpful: '有帮助',
      notHelpful: '没有帮助',
      thanks: '感谢您的反馈！',
      formTitle: '验证您的订单',
      orderNumber: '订单号',
      email: '电子邮箱',
      verify: '验证',
      fillBoth: '请填写订单号和电子邮箱。',
      verified: '已验证身份：{name}。现在可以查询您的订单了。',
      notVerified: '无法验证该订单号和电子邮箱。',
      rateLimited: '尝试次数过多，请稍后再试。',
      tooLong: '消息太长，请缩短后再发送。',
      wait: '请等待回答结束，或先停止回答。',
      internal: '我们这边出了点问题，请重试。',
      notSent: '未发送',
      startReturn: '为订单 {order} 申请退货',
      returnStarted: '已为订单 {order} 创建退货单 {rma}。',
      unsupported: '聊天需要更新页面，请刷新。',
    },
  };

  // ---- Configuration -------------------------------------------------------
  const data = script.dataset;
  const src = new URL(script.src, location.href);
  const wsUrl = (src.protocol === 'https:' ? 'wss://' : 'ws://') + src.host + '/ws';
  const lang = pickLang(data.lang || document.documentElement.lang || navigator.language || 'en');
  const S = STRINGS[lang];
  const cfg = (name) => data[name + lang[0].toUpperCase() + lang.slice(1)] || data[name];
  const title = cfg('title') || S.title;
  const greeting = cfg('greeting') || S.greeting;
  const KEY = 'shopchat:' + src.host;

  function pickLang(tag) {
    const base = String(tag).toLowerCase().split(/[-_]/)[0];
    return STRINGS[base] ? base : 'en';
  }
  function t(key, vars) {
    return S[key].replace(/\{(\w+)\}/g, (_, k) => (vars && vars[k] != null ? vars[k] : ''));
  }

  // ---- Stored state (sessionStorage) --------------------------------------
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem(KEY)) || {};
  } catch (e) { /* private mode or bad JSON: start afresh */ }
  saved.texts = saved.texts || {};
  saved.ratings = saved.ratings || {};
  function persist() {
    try {
      sessionStorage.setItem(KEY, JSON.stringify(saved));
    } catch (e) { /* storage full or disabled: the chat still works */ }
  }

  // ---- DOM -----------------------------------------------------------------
  function h(tag, attrs, kids) {
    const el = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids || []) {
      if (kid != null) el.appendChild(typeof kid === 'string' ? document.createTextNode(kid) : kid);
    }
    return el;
  }
  const svg = (d) => {
    const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    s.setAttribute('focusable', 'false');
    const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    p.setAttribute('d', d);
    s.appendChild(p);
    return s;
  };
  const ICON_CHAT = 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z';
  const ICON_CLOSE = 'M6 6l12 12M18 6L6 18';
  const ICON_SEND = 'M3 20l18-8L3 4v6l12 2-12 2z';
  const ICON_UP = 'M7 22H4a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h3zm2-11l4-8a3 3 0 0 1 3 3v4h5a2 2 0 0 1 2 2.3l-1.4 8A2 2 0 0 1 18.6 22H9z';
  const ICON_DOWN = 'M7 2H4a1 1 0 0 0-1 1v9a1 1 0 0 0 1 1h3zm2 11l4 8a3 3 0 0 0 3-3v-4h5a2 2 0 0 0 2-2.3l-1.4-8A2 2 0 0 0 18.6 2H9z';

  const CSS = `
:host{all:initial;--c:var(--shopchat-color,#1f5f4a);--on:var(--shopchat-on-color,#fff);--bg:var(--shopchat-bg,#fff);--fg:var(--shopchat-fg,#1d2327);--mut:var(--shopchat-muted,#5b6670);--r:var(--shopchat-radius,14px);--off:var(--shopchat-offset,20px);--focus:var(--shopchat-focus,#1a73e8)}
*{box-sizing:border-box}
.w{font:15px/1.45 var(--shopchat-font,system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"PingFang SC","Microsoft YaHei",sans-serif);color:var(--fg);position:fixed;z-index:var(--shopchat-z,2147483000);bottom:var(--off);right:var(--off)}
.w.left{right:auto;left:var(--off)}
button,input,textarea{font:inherit;color:inherit}
button{cursor:pointer}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.vh{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
[hidden]{display:none!important}
svg{width:22px;height:22px;fill:currentColor}
.launcher{width:60px;height:60px;border:0;border-radius:50%;background:var(--c);color:var(--on);display:grid;place-items:center;box-shadow:0 6px 20px rgba(0,0,0,.25);margin-left:auto;position:relative;transition:transform .15s}
.left .launcher{margin-left:0}
.launcher:hover{transform:scale(1.06)}
.launcher svg{width:28px;height:28px}
.launcher .x{fill:none;stroke:currentColor;stroke-width:2.4;stroke-linecap:round}
.badge{position:absolute;top:2px;right:2px;width:14px;height:14px;border-radius:50%;background:#d93025;border:2px solid #fff}
.panel{position:absolute;bottom:76px;right:0;width:380px;height:min(600px,calc(100vh - 120px));display:flex;flex-direction:column;background:var(--bg);border-radius:var(--r);box-shadow:0 12px 40px rgba(0,0,0,.28);overflow:hidden}
.left .panel{right:auto;left:0}
header{display:flex;align-items:center;gap:8px;padding:12px 12px 12px 16px;background:var(--c);color:var(--on)}
header img{width:28px;height:28px;border-radius:6px;object-fit:contain;background:#fff}
h2{flex:1;margin:0;font-size:16px;font-weight:650;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.human{border:1px solid currentColor;background:transparent;color:inherit;border-radius:999px;padding:4px 10px;font-size:13px;white-space:nowrap}
.human:hover{background:rgba(255,255,255,.15)}
.close{border:0;background:transparent;color:inherit;width:34px;height:34px;border-radius:8px;display:grid;place-items:center}
.close svg{fill:none;stroke:currentColor;stroke-width:2.4;stroke-linecap:round;width:18px;height:18px}
.banner{background:#fdecea;color:#8a1c12;padding:6px 12px;font-size:13px;text-align:center}
.log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:10px;overscroll-behavior:contain}
.m{max-width:86%;padding:9px 12px;border-radius:var(--r);white-space:pre-wrap;overflow-wrap:anywhere}
.m.user{align-self:flex-end;background:var(--c);color:var(--on);border-bottom-right-radius:4px}
.m.user.sending{opacity:.7}
.m.user.failed{opacity:1;background:#fdecea;color:#8a1c12}
.m.user .state{display:block;font-size:12px}
.m.bot,.m.staff{align-self:flex-start;background:var(--shopchat-bot-bg,#f1f3f4);border-bottom-left-radius:4px}
.m.staff{background:var(--shopchat-staff-bg,#fff4d6);border-left:4px solid #e0a800}
.m.error{background:#fdecea}
.author{display:block;font-weight:650;font-size:13px;margin-bottom:2px}
.m a{color:inherit;text-decoration:underline}
sup a{text-decoration:none;font-size:11px;color:var(--c)!important;font-weight:650}
.note{display:block;margin-top:6px;font-size:12px;color:var(--mut);font-style:italic}
.status{display:block;font-size:13px;color:var(--mut)}
.dots{display:inline-flex;gap:4px;padding:4px 0}
.dots i{width:7px;height:7px;border-radius:50%;background:var(--mut);animation:b 1.2s infinite ease-in-out}
.dots i:nth-child(2){animation-delay:.15s}.dots i:nth-child(3){animation-delay:.3s}
@keyframes b{0%,80%,100%{opacity:.3;transform:translateY(0)}40%{opacity:1;transform:translateY(-3px)}}
.src{margin-top:8px;padding-top:6px;border-top:1px solid rgba(0,0,0,.1);font-size:13px;white-space:normal}
.src ol{margin:2px 0 0;padding-left:20px}
.fb{display:flex;align-items:center;gap:4px;margin-top:6px;white-space:normal}
.fb button{border:1px solid transparent;background:transparent;border-radius:8px;width:30px;height:28px;display:grid;place-items:center;color:var(--mut)}
.fb button svg{width:16px;height:16px}
.fb button:hover{border-color:rgba(0,0,0,.15)}
.fb button[aria-pressed=true]{color:var(--on);background:var(--c)}
.fb span{font-size:12px;color:var(--mut)}
.notice{align-self:center;max-width:92%;text-align:center;font-size:13px;color:var(--mut);background:rgba(0,0,0,.04);border-radius:999px;padding:4px 12px}
.notice.bad{color:#8a1c12;background:#fdecea}
.card{align-self:stretch;border:1px solid rgba(0,0,0,.15);border-radius:var(--r);padding:12px;display:flex;flex-direction:column;gap:8px}
.card strong{font-size:14px}
.card label{display:flex;flex-direction:column;gap:2px;font-size:13px;color:var(--mut)}
.card input{border:1px solid #9aa4ad;border-radius:8px;padding:7px 9px;color:var(--fg);background:var(--bg)}
.card .err{margin:0;color:#b3261e;font-size:13px}
.card .err:empty{display:none}
.btn{border:0;border-radius:8px;padding:8px 14px;background:var(--c);color:var(--on);font-weight:600;align-self:flex-start}
.btn:disabled{opacity:.55;cursor:default}
.action{align-self:flex-start}
form.compose{display:flex;align-items:flex-end;gap:8px;padding:10px;border-top:1px solid rgba(0,0,0,.1)}
textarea{flex:1;resize:none;border:1px solid #9aa4ad;border-radius:10px;padding:9px 11px;max-height:120px;min-height:42px;line-height:1.4;background:var(--bg);color:var(--fg)}
.send,.stop{flex:none;height:42px;min-width:42px;border:0;border-radius:10px;background:var(--c);color:var(--on);display:grid;place-items:center;padding:0 10px;font-weight:600}
.send[aria-disabled=true]{opacity:.5}
.stop{background:#fff;color:var(--fg);border:1px solid #9aa4ad}
@media (max-width:480px){.w{bottom:12px;right:12px}.w.left{left:12px}.panel{position:fixed;inset:0;width:auto;height:auto;border-radius:0}.w.open .launcher{display:none}}
@media (prefers-reduced-motion:reduce){.dots i{animation:none}.launcher{transition:none}}
`;

  const host = document.createElement('shopchat-widget');
  const root = host.attachShadow({ mode: 'open' });
  if (data.color) {
    host.style.setProperty('--shopchat-color', data.color);
    const on = textOn(data.color);
    if (on) host.style.setProperty('--shopchat-on-color', on);
  }
  /** White or near-black, whichever contrasts more with a #rgb/#rrggbb colour. */
  function textOn(color) {
    let m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color.trim());
    if (!m) return null;
    let hex = m[1].length === 3 ? m[1].replace(/./g, '$&$&') : m[1];
    const lin = (i) => {
      const c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    };
    const l = 0.2126 * lin(0) + 0.7152 * lin(2) + 0.0722 * lin(4);
    return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? '#111' : '#fff';
  }

  const badge = h('span', { class: 'badge', hidden: true });
  const chatIcon = svg(ICON_CHAT);
  const closeIcon = svg(ICON_CLOSE);
  closeIcon.setAttribute('class', 'x');
  closeIcon.style.display = 'none';
  const launcher = h('button', {
    class: 'launcher', type: 'button', 'aria-label': S.launcher, 'aria-expanded': 'false',
    'aria-controls': 'shopchat-panel', onclick: () => (isOpen() ? closePanel() : openPanel()),
  }, [chatIcon, closeIcon, badge]);
  const humanBtn = h('button', { class: 'human', type: 'button', text: S.human, onclick: askHuman });
  const closeX = svg(ICON_CLOSE);
  const banner = h('div', { class: 'banner', role: 'status', hidden: true, text: S.offline });
  const log = h('div', {
    class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': S.conversation, tabindex: '0',
  });
  const input = h('textarea', {
    id: 'shopchat-input', rows: '1', placeholder: S.placeholder, maxlength: '2000', autocomplete: 'off',
  });
  const sendBtn = h('button', { class: 'send', type: 'submit', 'aria-label': S.send, title: S.send }, [svg(ICON_SEND)]);
  const stopBtn = h('button', {
    class: 'stop', type: 'button', hidden: true, 'aria-label': S.stopLabel, text: S.stop, onclick: stopAnswer,
  });
  const compose = h('form', { class: 'compose', onsubmit: (e) => { e.preventDefault(); sendInput(); } }, [
    h('label', { class: 'vh', for: 'shopchat-input', text: S.inputLabel }), input, sendBtn, stopBtn,
  ]);
  const panel = h('section', {
    class: 'panel', id: 'shopchat-panel', role: 'dialog', 'aria-label': title, hidden: true,
  }, [
    h('header', null, [
      data.logo ? h('img', { src: data.logo, alt: '' }) : null,
      h('h2', { text: title }),
      humanBtn,
      h('button', { class: 'close', type: 'button', 'aria-label': S.closeChat, title: S.closeChat, onclick: closePanel }, [closeX]),
    ]),
    banner, log, compose,
  ]);
  const wrap = h('div', { class: 'w' + (data.position === 'left' ? ' left' : ''), lang: lang === 'zh' ? 'zh-CN' : lang }, [panel, launcher]);
  root.appendChild(h('style', { text: CSS }));
  root.appendChild(wrap);

  // ---- Panel ---------------------------------------------------------------
  const isOpen = () => !panel.hidden;
  /** Opens the chat; `quietly` (restoring it after a reload) leaves the focus where it is. */
  function openPanel(quietly) {
    panel.hidden = false;
    wrap.classList.add('open');
    launcher.setAttribute('aria-expanded', 'true');
    launcher.setAttribute('aria-label', S.closeChat);
    chatIcon.style.display = 'none';
    closeIcon.style.display = '';
    badge.hidden = true;
    saved.open = true;
    persist();
    connect();
    scrollDown(true);
    if (quietly !== true) input.focus();
  }
  function closePanel() {
    panel.hidden = true;
    wrap.classList.remove('open');
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('aria-label', S.launcher);
    chatIcon.style.display = '';
    closeIcon.style.display = 'none';
    saved.open = false;
    persist();
    // The focus was in the panel (Escape, the close button): it goes back to the launcher.
    if (root.activeElement) launcher.focus();
  }
  wrap.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && isOpen() && !e.isComposing) {
      e.preventDefault();
      closePanel();
    }
  });
  input.addEventListener('keydown', (e) => {
    // Enter sends, Shift+Enter is a new line; never while an IME composes.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendInput();
    }
  });
  input.addEventListener('input', () => {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight + 2, 120) + 'px';
  });

  function scrollDown(force) {
    if (force || atBottom()) log.scrollTop = log.scrollHeight;
  }
  const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  /** Runs `change`; follows the new content if the log was scrolled to the end. */
  function follow(change, force) {
    const near = atBottom();
    const result = change();
    if (force || near) log.scrollTop = log.scrollHeight;
    return result;
  }
  function add(el, force) {
    return follow(() => log.insertBefore(el, typing.parentNode === log ? typing : null), force);
  }
  function notice(text, bad) {
    return add(h('div', { class: 'notice' + (bad ? ' bad' : ''), text }));
  }
  function attention() {
    if (!isOpen() && !syncing) badge.hidden = false;
  }

  const dots = () => h('span', { class: 'dots', role: 'img', 'aria-label': S.typing }, [h('i'), h('i'), h('i')]);
  // Shown from sending a message until its answer starts.
  const typing = h('div', { class: 'm bot typing' }, [dots()]);

  // ---- Conversation state --------------------------------------------------
  let ws = null;
  let connected = false; // `welcome` received on this socket
  let attempts = 0;
  let retryTimer = 0;
  let lastSeq = 0; // highest seq of a finished entry rendered in this page
  let entries = {}; // seq -> {el, text, next, done, sources}
  let current = null; // the answer streaming now
  let waiting = false; // a message is sent and its answer has not ended
  let pending = []; // messages not acknowledged yet: {id, text, el}
  let lastKind = ''; // what the next `error` most likely answers
  let activeForm = null;
  let activeReturn = null;
  let handoffOpen = false;
  let askedHuman = false;
  let wantHuman = false; // the button was pressed before the connection was up
  let stopRequested = false;
  let syncing = false; // replaying after `welcome`, until the `pong` that follows
  let lastSent = 0;
  let lastHeard = 0;
  let pingAt = 0;
  let fatal = false;
  let resyncs = 0;
  let resyncTimer = 0;

  add(h('div', { class: 'm bot' }, [h('span', { class: 'vh', text: S.bot + ': ' }), greeting]));

  function setBusyUI() {
    const answering = !!current && !current.done;
    const focused = root.activeElement;
    stopBtn.hidden = !answering;
    sendBtn.hidden = answering;
    sendBtn.setAttribute('aria-disabled', String(waiting));
    // Keep the keyboard focus on the button that replaces the one it was on.
    if (answering && focused === sendBtn) stopBtn.focus();
    if (!answering && focused === stopBtn) input.focus();
  }
  function showTyping(on) {
    if (on) {
      if (typing.parentNode !== log) log.appendChild(typing);
      scrollDown(true);
    } else if (typing.parentNode) {
      typing.remove();
    }
  }
  function stopWaiting() {
    waiting = false;
    showTyping(false);
    setBusyUI();
  }

  // ---- Sending -------------------------------------------------------------
  function send(frame) {
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    lastSent = Date.now();
    return true;
  }
  function sendInput() {
    const text = input.value.trim();
    if (!text) return;
    if (waiting) {
      notice(S.wait);
      return;
    }
    input.value = '';
    input.style.height = '';
    const id = 'm-' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    saved.texts[id] = text;
    persist();
    const item = { id, text, el: userBubble(text, true) };
    item.el.classList.add('sending');
    pending.push(item);
    waiting = true;
    stopRequested = false;
    resyncs = 0;
    lastKind = 'message';
    if (!handoffOpen) showTyping(true);
    setBusyUI();
    if (connected) send({ type: 'message', client_id: id, text });
    else connect();
  }
  function userBubble(text, force) {
    return add(h('div', { class: 'm user' }, [h('span', { class: 'vh', text: S.you + ': ' }), text]), force);
  }
  function stopAnswer() {
    if (!current || stopRequested) return;
    stopRequested = true;
    send({ type: 'stop' });
    stopBtn.disabled = true;
  }
  function askHuman() {
    askedHuman = true;
    if (!isOpen()) openPanel();
    if (connected) send({ type: 'handoff' });
    else {
      wantHuman = true;
      connect();
    }
  }

  // ---- Connection ----------------------------------------------------------
  function connect() {
    if (ws || fatal) return;
    clearTimeout(retryTimer);
    let sock;
    try {
      sock = new WebSocket(wsUrl);
    } catch (e) {
      return retry();
    }
    ws = sock;
    sock.onopen = () => {
      const hello = { type: 'hello', v: 1, lang };
      if (saved.session) {
        hello.session = saved.session;
        if (lastSeq > 0) hello.last_seq = lastSeq;
      }
      lastHeard = Date.now();
      send(hello);
    };
    sock.onmessage = (e) => {
      lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (frame && typeof frame.type === 'string' && handlers[frame.type]) handlers[frame.type](frame);
    };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      dropped(e.code);
    };
  }
  function dropped(code) {
    const sock = ws;
    ws = null;
    connected = false;
    syncing = false;
    if (sock) {
      sock.onclose = sock.onmessage = sock.onopen = null;
      try { sock.close(); } catch (e) { /* already closed */ }
    }
    // An answer cut off here comes back whole with the replay.
    if (current && !current.done) current.el.setAttribute('aria-busy', 'false');
    current = null;
    stopBtn.disabled = false;
    setBusyUI();
    if (code === 1002) {
      fatal = true;
      banner.textContent = S.unsupported;
      banner.hidden = false;
      return;
    }
    banner.hidden = false;
    retry();
  }
  /** Resumes on a new connection at once, without the offline banner. */
  function reconnectNow() {
    const sock = ws;
    ws = null;
    connected = false;
    if (sock) {
      sock.onclose = sock.onmessage = sock.onopen = null;
      sock.close(1000);
    }
    connect();
  }
  function retry() {
    clearTimeout(retryTimer);
    const delay = [1000, 2000, 5000, 10000][Math.min(attempts, 3)];
    attempts++;
    retryTimer = setTimeout(connect, delay);
  }
  window.addEventListener('online', () => {
    if (!ws && (saved.session || isOpen())) {
      attempts = 0;
      connect();
    }
  });
  // Heartbeat: `ping` after 25 s without sending; no reply in 10 s means the
  // connection is dead although the browser has not noticed yet.
  setInterval(() => {
    if (!connected) return;
    const now = Date.now();
    if (pingAt && lastHeard < pingAt && now - pingAt > 10000) {
      pingAt = 0;
      dropped(1006);
    } else if (now - lastSent >= 25000) {
      pingAt = now;
      send({ type: 'ping' });
    }
  }, 5000);

  function clearTranscript() {
    for (const seq in entries) entries[seq].el.remove();
    for (const el of log.querySelectorAll('.notice,.card,.action')) el.remove();
    entries = {};
    lastSeq = 0;
    current = null;
    saved.texts = {};
    saved.ratings = {};
    saved.name = null;
    for (const item of pending) saved.texts[item.id] = item.text;
  }
  const seen = (seq) => {
    if (seq > lastSeq) lastSeq = seq;
  };

  // ---- Frames from the server ---------------------------------------------
  const handlers = {
    welcome(f) {
      connected = true;
      attempts = 0;
      banner.hidden = true;
      if (saved.session && !f.resumed) clearTranscript();
      saved.session = f.session;
      persist();
      if (data.customerId && data.signature && !saved.name) {
        lastKind = 'identity';
        send({ type: 'identity', customer_id: data.customerId, signature: data.signature });
      }
      syncing = true;
      // The replay arrives first; then whatever was never acknowledged is
      // sent again with its client_id (the server answers it only once).
      for (const item of pending) send({ type: 'message', client_id: item.id, text: item.text });
      if (wantHuman) {
        wantHuman = false;
        send({ type: 'handoff' });
      }
      send({ type: 'ping' });
    },
    pong() {
      pingAt = 0;
      if (!syncing) return;
      syncing = false;
      // Everything replayed and resent has been answered or is streaming.
      if (waiting && !current && !pending.length) stopWaiting();
      // An answer cut off by the drop that the replay did not bring: the
      // server had not stored it yet. Keep what was shown, and resume again
      // a little later (a few times) to fetch it.
      let cut = false;
      for (const seq in entries) {
        const entry = entries[seq];
        if (entry.done || entry === current) continue;
        cut = true;
        if (entry.dots) entry.dots.remove();
        entry.dots = null;
        entry.el.setAttribute('aria-busy', 'false');
      }
      if (cut && resyncs < 7) {
        clearTimeout(resyncTimer);
        resyncTimer = setTimeout(() => {
          if (connected && !current && !waiting) reconnectNow();
        }, [2000, 4000, 8000, 15000, 30000, 30000, 30000][resyncs++]);
      }
      scrollDown(true);
    },
    ack(f) {
      seen(f.seq);
      const i = pending.findIndex((p) => p.id === f.client_id);
      if (i >= 0) {
        const item = pending.splice(i, 1)[0];
        item.el.classList.remove('sending');
        entries[f.seq] = { el: item.el, done: true };
        if (handoffOpen) stopWaiting();
        return;
      }
      if (entries[f.seq]) return;
      const text = saved.texts[f.client_id];
      if (text) entries[f.seq] = { el: userBubble(text), done: true };
    },
    answer_start(f) {
      showTyping(false);
      let entry = entries[f.seq];
      if (entry && entry.done) return;
      if (entry) {
        // Cut off earlier: the replay brings it again from the start.
        entry.text.textContent = '';
        entry.next = 0;
        entry.dots = entry.dots || entry.text.parentNode.insertBefore(dots(), entry.text);
      } else {
        const text = h('span', { class: 't' });
        const d = dots();
        const el = h('div', { class: 'm bot', 'aria-busy': 'true' }, [h('span', { class: 'vh', text: S.bot + ': ' }), d, text]);
        entry = entries[f.seq] = { el, text, dots: d, next: 0, done: false, sources: [] };
        add(el);
      }
      current = entry;
      stopBtn.disabled = false;
      setBusyUI();
    },
    queued(f) {
      if (!current || current.done) return;
      if (!current.status) current.status = current.el.insertBefore(h('span', { class: 'status' }), current.dots);
      current.status.textContent = t('queued', { n: f.position });
    },
    sources(f) {
      const entry = entries[f.seq];
      if (!entry || entry.done || !Array.isArray(f.sources)) return;
      entry.sources = f.sources;
      if (entry.srcEl) entry.srcEl.remove();
      if (!f.sources.length) return;
      entry.srcEl = h('div', { class: 'src' }, [
        h('span', { text: S.sources }),
        h('ol', null, f.sources.map((s) => h('li', null, [link(s.url, s.title || s.url || '')]))),
      ]);
      follow(() => entry.el.appendChild(entry.srcEl));
    },
    delta(f) {
      const entry = entries[f.seq];
      if (!entry || entry.done || f.index < entry.next) return;
      entry.next = f.index + 1;
      if (entry.dots) {
        entry.dots.remove();
        entry.dots = null;
      }
      if (entry.status) {
        entry.status.remove();
        entry.status = null;
      }
      follow(() => entry.text.appendChild(document.createTextNode(String(f.text))));
    },
    answer_end(f) {
      seen(f.seq);
      const entry = entries[f.seq];
      if (!entry || entry.done) return;
      // The answer rests on other passages than announced (it was replaced
      // by a quoted sentence, or cites fewer): show those.
      if (Array.isArray(f.sources)) handlers.sources({ seq: f.seq, sources: f.sources });
      entry.done = true;
      const near = atBottom();
      if (entry.dots) entry.dots.remove();
      if (entry.status) entry.status.remove();
      entry.dots = entry.status = null;
      const final = typeof f.text === 'string' ? f.text : entry.text.textContent;
      entry.text.textContent = '';
      richText(entry.text, final, entry.sources);
      entry.el.setAttribute('aria-busy', 'false');
      if (f.outcome === 'error') entry.el.classList.add('error');
      const noteText = f.outcome === 'error' ? S.failed
        : typeof f.text === 'string' ? S.replaced
          : f.outcome === 'stopped' || (current === entry && stopRequested) ? S.stopped : null;
      if (noteText) entry.el.insertBefore(h('span', { class: 'note', text: noteText }), entry.srcEl || null);
      if (f.outcome !== 'error') entry.el.appendChild(feedback(f.seq));
      if (near) log.scrollTop = log.scrollHeight;
      if (current === entry) {
        current = null;
        stopRequested = false;
        stopBtn.disabled = false;
      }
      if (!pending.length) stopWaiting();
      else setBusyUI();
      const action = f.action;
      if (action && action.kind === 'verify_order') orderForm(entry);
      if (action && action.kind === 'start_return' && action.order_number) returnButton(action.order_number);
      attention();
    },
    staff_message(f) {
      seen(f.seq);
      if (entries[f.seq]) return;
      const el = h('div', { class: 'm staff' }, [
        h('span', { class: 'author', text: t('staff', { name: f.author || '' }) }),
        h('span', { class: 't' }),
      ]);
      richText(el.lastChild, String(f.text || ''), []);
      entries[f.seq] = { el, done: true };
      add(el);
      attention();
    },
    handoff(f) {
      if (f.status === 'requested') {
        if (!handoffOpen || askedHuman) notice(S.humanAsked);
        handoffOpen = true;
        askedHuman = false;
        // No answer comes while a person has the conversation.
        if (waiting && !current && !pending.length) stopWaiting();
      } else if (f.status === 'resolved') {
        if (handoffOpen) notice(S.humanBack);
        handoffOpen = false;
      }
      attention();
    },
    verified(f) {
      if (lastKind === 'identity' || lastKind === 'verify') lastKind = '';
      saved.name = f.customer_name || '';
      persist();
      if (activeForm) activeForm.remove();
      for (const card of log.querySelectorAll('.card')) card.remove();
      activeForm = null;
      notice(t('verified', { name: f.customer_name || '' }));
    },
    return_started(f) {
      for (const b of log.querySelectorAll('.action')) {
        if (b.dataset.order === f.order_number) b.disabled = true;
      }
      notice(t('returnStarted', { rma: f.return_number, order: f.order_number }));
    },
    busy() {
      stopWaiting();
      notice(S.busy, true);
    },
    error(f) {
      const code = f.code;
      if (lastKind === 'identity') {
        // The shop's page passed a signature the server does not accept:
        // the shop's problem to fix, nothing the shopper can do about it.
        lastKind = '';
        if (window.console) console.warn('ShopChat: the signed identity was not accepted (' + code + ')');
        return;
      }
      if (lastKind === 'return' && activeReturn) activeReturn.disabled = false;
      if (code === 'not_verified' || (code === 'rate_limited' && lastKind === 'verify')) {
        const msg = code === 'not_verified' ? S.notVerified : S.rateLimited;
        if (activeForm && activeForm.isConnected) {
          activeForm.err.textContent = msg;
          activeForm.btn.disabled = false;
          activeForm.first.focus();
        } else if (lastKind === 'return') {
          orderForm(null).err.textContent = msg;
        } else {
          notice(msg, true);
        }
        return;
      }
      if (lastKind === 'message' && pending.length) {
        // The message was refused and not stored.
        const item = pending.pop();
        item.el.classList.remove('sending');
        item.el.classList.add('failed');
        item.el.appendChild(h('span', { class: 'state', text: S.notSent }));
        delete saved.texts[item.id];
        persist();
        if (!current) stopWaiting();
      }
      const msg = code === 'rate_limited' ? S.rateLimited
        : code === 'too_large' ? S.tooLong
          : code === 'bad_request' && current ? S.wait
            : S.internal;
      notice(msg, true);
    },
  };

  // ---- Rendering helpers ---------------------------------------------------
  function safeUrl(url) {
    return typeof url === 'string' && /^https?:\/\//i.test(url) ? url : null;
  }
  function link(url, text) {
    const href = safeUrl(url);
    if (!href) return document.createTextNode(text);
    return h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, [
      text, h('span', { class: 'vh', text: ' ' + S.newTab }),
    ]);
  }
  /** Text with http(s) links and [n] citations made clickable, as DOM nodes. */
  function richText(el, text, sources) {
    const re = /(https?:\/\/[^\s<>"'()]*[^\s<>"'().,;:!?])|\[(\d{1,2})\]/g;
    let at = 0;
    let m;
    while ((m = re.exec(text))) {
      if (m.index > at) el.appendChild(document.createTextNode(text.slice(at, m.index)));
      if (m[1]) {
        el.appendChild(link(m[1], m[1]));
      } else {
        const source = sources[Number(m[2]) - 1];
        const href = source && safeUrl(source.url);
        el.appendChild(href
          ? h('sup', null, [h('a', { href, target: '_blank', rel: 'noopener noreferrer', title: source.title || '' }, [m[0]])])
          : document.createTextNode(m[0]));
      }
      at = re.lastIndex;
    }
    if (at < text.length) el.appendChild(document.createTextNode(text.slice(at)));
  }
  function feedback(seq) {
    const thanks = h('span', { role: 'status' });
    const buttons = [['up', S.helpful, ICON_UP], ['down', S.notHelpful, ICON_DOWN]].map(([rating, label, icon]) =>
      h('button', {
        type: 'button', 'aria-label': label, title: label, 'aria-pressed': String(saved.ratings[seq] === rating),
        'data-rating': rating,
        onclick: () => {
          if (!send({ type: 'feedback', message_seq: seq, rating })) return;
          saved.ratings[seq] = rating;
          persist();
          for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.rating === rating));
          thanks.textContent = S.thanks;
        },
      }, [svg(icon)]));
    return h('div', { class: 'fb' }, buttons.concat(thanks));
  }
  function orderForm(entry) {
    for (const card of log.querySelectorAll('.card')) card.remove();
    // Offer the order number the shopper just typed.
    let guess = '';
    for (const item of Object.values(saved.texts)) {
      const m = /\bNW-?\d{6}\b/i.exec(item);
      if (m) guess = m[0].toUpperCase();
    }
    const order = h('input', { name: 'order', autocomplete: 'off', value: guess || null, spellcheck: 'false' });
    const email = h('input', { name: 'email', type: 'email', autocomplete: 'email', spellcheck: 'false' });
    const err = h('p', { class: 'err', role: 'alert' });
    const btn = h('button', { class: 'btn', type: 'submit', text: S.verify });
    const form = h('form', { class: 'card', 'aria-label': S.formTitle, novalidate: true }, [
      h('strong', { text: S.formTitle }),
      h('label', null, [S.orderNumber, order]),
      h('label', null, [S.email, email]),
      err, btn,
    ]);
    form.err = err;
    form.btn = btn;
    form.first = order;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const number = order.value.trim();
      const address = email.value.trim();
      if (!number || !address) {
        err.textContent = S.fillBoth;
        return;
      }
      err.textContent = '';
      if (!send({ type: 'verify_order', order_number: number, email: address })) return;
      lastKind = 'verify';
      activeForm = form;
      btn.disabled = true;
    });
    activeForm = form;
    add(form, true);
    if (isOpen() && !syncing) (guess ? email : order).focus();
    return form;
  }
  function returnButton(order) {
    const btn = h('button', {
      class: 'btn action', type: 'button', 'data-order': order, text: t('startReturn', { order }),
      onclick: () => {
        if (waiting) return notice(S.wait);
        if (!send({ type: 'start_return', order_number: order })) return;
        lastKind = 'return';
        activeReturn = btn;
        btn.disabled = true;
      },
    });
    add(btn, true);
  }

  // ---- Start ---------------------------------------------------------------
  window.ShopChat = { open: () => openPanel(), close: closePanel, toggle: () => (isOpen() ? closePanel() : openPanel()) };
  function start() {
    document.body.appendChild(host);
    if (saved.open) openPanel(true);
    else if (saved.session) connect(); // staff replies and the transcript come back
  }
  // With `defer` (or at the end of <body>) the body is there; in <head>
  // without it, wait for it.
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
})();
