/**
 * What cfnet adds to bull-board's pages, in one script injected into the board's HTML: the
 * dashboard's dry-run banner (from the shared snapshot, as on every dashboard page), and the
 * buttons of the actions cfnet refuses (bull-board.ts) hidden. bull-board has no per-action switch
 * (only `readOnlyMode`, which also hides retry and promote), so the script hides the buttons and
 * menu items of refused actions as they appear. The server still refuses them (403, with a message the UI shows as a toast): hiding
 * only spares the operator a button that cannot work. The UI's language is pinned to en-US
 * (bull-board.ts) so the labels below are the ones it shows.
 */

import { dryRunText } from './layout.js';

/** Labels of actions cfnet refuses everywhere. */
export const REFUSED_LABELS = [
  'Add job',
  'Duplicate',
  'Update Data',
  'Empty',
  'Obliterate',
  'Set concurrency',
  'Set rate limit',
  'Remove unprocessed children',
  'Reschedule job',
  'Change priority',
] as const;

/** Labels refused unless the jobs they act on are finished (completed or failed). */
export const FINISHED_ONLY_LABELS = ['Clean all', 'Clean'] as const;

/**
 * A job card's actions are icon buttons without a label: told by their icon (bull-board draws
 * lucide icons, named in the svg's class). Duplicate and edit are refused; the bin (clean this
 * job) only for finished jobs. The clipboard icon (`lucide-copy`) only copies text.
 */
export const REFUSED_ICONS = ['lucide-files', 'lucide-pencil', 'lucide-square-pen', 'lucide-pen'] as const;
export const FINISHED_ONLY_ICONS = ['lucide-trash', 'lucide-trash-2'] as const;

export const BULL_BOARD_LIMITS_SCRIPT = `'use strict';
(function () {
  var dryRunText = ${dryRunText.toString()};
  function banner() {
    fetch('/dashboard/api/snapshot', { headers: { accept: 'application/json' } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (s) {
        var cells = (s && s.dryRunCells) || [];
        var el = document.getElementById('dry-run-banner');
        if (!el) {
          el = document.createElement('p');
          el.id = 'dry-run-banner';
          el.style.cssText = 'position:fixed;z-index:1000;top:0;left:50%;transform:translateX(-50%);margin:0;' +
            'padding:.3rem 1rem;background:#fff4e0;border:1px solid #e8c88a;color:#a86400;font:600 13px system-ui,sans-serif;';
          document.body.appendChild(el);
        }
        el.hidden = cells.length === 0;
        el.textContent = cells.length ? dryRunText(cells.length) : '';
        el.title = cells.join(', ');
      })
      .catch(function () {});
  }
  addEventListener('DOMContentLoaded', banner);
  setInterval(banner, 30000);
  var refused = ${JSON.stringify(REFUSED_LABELS)};
  var finishedOnly = ${JSON.stringify(FINISHED_ONLY_LABELS)};
  var refusedIcons = ${JSON.stringify(REFUSED_ICONS)};
  var finishedOnlyIcons = ${JSON.stringify(FINISHED_ONLY_ICONS)};
  function hasIcon(el, icons) {
    for (var i = 0; i < icons.length; i++) if (el.querySelector(':scope > svg.' + icons[i])) return true;
    return false;
  }
  function finishedView() {
    var status = new URLSearchParams(location.search).get('status');
    return status === 'completed' || status === 'failed';
  }
  function labelOf(el) {
    return (el.getAttribute('aria-label') || el.getAttribute('title') || el.textContent || '').trim();
  }
  function hide() {
    var els = document.querySelectorAll('button, [role="menuitem"], a[role="button"]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var label = labelOf(el);
      var no = refused.indexOf(label) >= 0 || (finishedOnly.indexOf(label) >= 0 && !finishedView()) ||
        (label === '' && (hasIcon(el, refusedIcons) || (hasIcon(el, finishedOnlyIcons) && !finishedView())));
      if (no && el.dataset.cfnetRefused !== '1') {
        el.dataset.cfnetRefused = '1';
        el.style.setProperty('display', 'none', 'important');
      } else if (!no && el.dataset.cfnetRefused === '1') {
        // the same element in a view where the action is allowed (the board reuses elements)
        delete el.dataset.cfnetRefused;
        el.style.removeProperty('display');
      }
    }
  }
  // before the browser paints: a refused button never flashes
  new MutationObserver(hide).observe(document.documentElement, { childList: true, subtree: true, characterData: true });
  addEventListener('popstate', hide);
  hide();
})();
`;

/** The board's HTML with the script added (before `</head>`). */
export function withLimitsScript(htmlText: string, src: string): string {
  const tag = `<script src="${src}"></script>`;
  return htmlText.includes('</head>') ? htmlText.replace('</head>', `${tag}</head>`) : `${tag}${htmlText}`;
}
