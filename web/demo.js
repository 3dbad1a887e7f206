// The demo shop page's own script, kept out of the page so that its
// Content-Security-Policy allows no inline script.
//
// The demo page in Chinese: /?lang=zh. Loaded in <head> without `defer`, so
// <html lang> is set before the chat widget starts; the widget, which has no
// data-lang on the page, follows the page's language (its data-title-zh and
// data-greeting-zh win over the English ones). The texts of the page itself
// are swapped in from data-zh once the page is parsed.
(function () {
  'use strict';
  if (/^zh/i.test(new URLSearchParams(location.search).get('lang') || '')) {
    document.documentElement.lang = 'zh-CN';
  }
  document.addEventListener('DOMContentLoaded', function () {
    if (document.documentElement.lang === 'zh-CN') {
      document.title = 'Northwind Threads：经久耐穿的日常服饰';
      document.querySelectorAll('[data-zh]').forEach(function (el) { el.textContent = el.dataset.zh; });
      document.querySelectorAll('[data-zh-label]').forEach(function (el) { el.setAttribute('aria-label', el.dataset.zhLabel); });
      document.querySelectorAll('[data-lang-list]').forEach(function (el) { el.hidden = el.dataset.langList !== 'zh'; });
    }
    var current = document.documentElement.lang === 'zh-CN' ? 'zh' : 'en';
    document.querySelector('.lang [hreflang="' + current + '"]').setAttribute('aria-current', 'true');
  });
})();
