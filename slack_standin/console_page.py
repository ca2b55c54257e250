"""The console's page, style sheet and script (served by ``console.py``).

Plain HTML, CSS and vanilla JavaScript, no build step and nothing fetched from elsewhere, so
the sandbox works offline. The script polls ``/console/api/state`` and renders what it gets:
workspaces, the chosen channel (Block Kit rendered simply), the App Home tab, an open modal,
and the log. Every string from Slack or the app is escaped before it reaches the page.
"""

from __future__ import annotations

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Slack sandbox console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/console.css">
<script src="/console/console.js" defer></script>
</head>
<body>
<header class="top">
<h1>Slack sandbox</h1>
<p>A Slack stand-in and the app, both on this machine. Requests between them are the real,
signed ones; nothing leaves 127.0.0.1.</p>
</header>
<main>
<div class="layout">
<nav class="sidebar" aria-labelledby="workspaces-heading">
<h2 id="workspaces-heading">Workspaces</h2>
<ul id="workspaces" class="workspaces"></ul>
<form id="new-workspace" class="stack">
<label for="new-name">New workspace name (optional)</label>
<input id="new-name" name="name" type="text" maxlength="60" autocomplete="off" placeholder="e.g. Acme">
<button type="submit" class="primary" id="install-new">Install into a new workspace</button>
<p class="note">Opens the app's install page in a new tab. There: <strong>Add to Slack</strong>,
then <strong>Allow</strong> on the stand-in's consent screen.</p>
</form>
</nav>
<section id="workspace" class="workspace" aria-labelledby="workspace-heading">
<h2 id="workspace-heading">No workspace yet</h2>
<p id="notice" class="notice" role="status" aria-live="polite"></p>
<div id="no-workspace">
<p>Start with <strong>Install into a new workspace</strong>: it walks the real OAuth path (the app's
install page, the consent screen, the app's callback) and comes back here.</p>
</div>
<div id="ws-panel" hidden>
<div class="ws-head">
<p id="ws-status" class="status"></p>
<div class="ws-buttons">
<a id="ws-install" class="button primary" href="#" target="_blank" rel="noopener" hidden>Install the app</a>
<button type="button" id="ws-fast-forward">Fast-forward tokens</button>
<button type="button" id="ws-uninstall" class="danger">Uninstall</button>
</div>
</div>
<div class="controls">
<div class="control">
<label for="as-user">Acting as</label>
<select id="as-user"></select>
</div>
<form id="add-user" class="control inline">
<label for="user-name">Add a person</label>
<span class="row"><input id="user-name" type="text" maxlength="40" autocomplete="off" placeholder="e.g. sam">
<button type="submit">Add</button></span>
</form>
<div class="control">
<label for="channel">Channel</label>
<select id="channel"></select>
</div>
</div>
<div class="tabs" role="tablist" aria-label="Views">
<button type="button" role="tab" id="tab-channel" aria-controls="pane-channel" aria-selected="true">Channel</button>
<button type="button" role="tab" id="tab-home" aria-controls="pane-home" aria-selected="false">App Home</button>
</div>
<div id="pane-channel" role="tabpanel" aria-labelledby="tab-channel">
<div class="timeline-wrap" role="log" aria-label="Messages">
<ol id="timeline" class="timeline"></ol>
</div>
<form id="composer" class="composer">
<label for="message" id="message-label">Message</label>
<div class="row">
<input id="message" name="text" type="text" autocomplete="off">
<button type="submit" class="primary">Send</button>
</div>
<div class="row wrap">
<button type="button" id="mention">Mention the app</button>
<select id="shortcuts" aria-label="Shortcuts"></select>
</div>
<p class="note" id="composer-hint"></p>
</form>
</div>
<div id="pane-home" role="tabpanel" aria-labelledby="tab-home" hidden>
<div id="home-view" class="home"></div>
<button type="button" id="home-reopen">Open the Home tab again</button>
</div>
</div>
</section>
</div>
<section class="log" aria-labelledby="log-heading">
<h2 id="log-heading">Log</h2>
<p class="note">Every Web API call the app made (token: its last four characters) and every request
sent to the app. Newest first.</p>
<div class="table-wrap">
<table>
<thead><tr><th scope="col">Time</th><th scope="col">Call</th><th scope="col">Workspace</th>
<th scope="col">Token</th><th scope="col">Result</th></tr></thead>
<tbody id="log"></tbody>
</table>
</div>
</section>
<dialog id="modal" aria-labelledby="modal-title"></dialog>
</main>
</body>
</html>
"""

STYLE = """
:root { color-scheme: light; --text: #1d1c1d; --muted: #454245; --line: #d8d8d8; --accent: #007a5a;
        --accent-dark: #00553f; --danger: #b3261e; --focus: #1264a3; --soft: #f4f4f5; --app: #4a154b; }
*, *::before, *::after { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.45;
       color: var(--text); background: var(--soft); }
header.top { background: var(--app); color: #ffffff; padding: .75rem 1rem; }
header.top h1 { margin: 0; font-size: 1.35rem; }
header.top p { margin: .25rem 0 0; font-size: .9rem; max-width: 60rem; }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
h2 { font-size: 1.1rem; margin: 0 0 .5rem; overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em; background: #eeeeee;
       padding: 0 .2em; border-radius: .2rem; overflow-wrap: anywhere; }
pre { font-family: ui-monospace, Menlo, Consolas, monospace; background: #eeeeee; padding: .5rem; white-space: pre-wrap;
      overflow-wrap: anywhere; margin: .25rem 0; }
.note { font-size: .875rem; color: var(--muted); margin: .25rem 0; }
.layout { display: grid; grid-template-columns: 16rem minmax(0, 1fr); gap: 1rem; align-items: start; }
.sidebar, .workspace, .log { background: #ffffff; border: 1px solid var(--line); border-radius: .5rem; padding: 1rem; }
.log { margin-top: 1rem; }
.stack { display: flex; flex-direction: column; gap: .4rem; margin-top: 1rem; }
label { font-weight: 600; font-size: .9rem; }
input[type=text], input[type=number], input[type=email], input[type=url], input[type=date], input[type=time],
select, textarea { font: inherit; color: var(--text); background: #ffffff; border: 1px solid #8d8d8d;
                   border-radius: .3rem; padding: .35rem .45rem; max-width: 100%; }
textarea { width: 100%; min-height: 5rem; }
button, a.button { font: inherit; font-weight: 600; border-radius: .3rem; padding: .35rem .8rem; cursor: pointer;
                   border: 1px solid #8d8d8d; background: #ffffff; color: var(--text); text-decoration: none;
                   display: inline-block; }
button.primary, a.button.primary { background: var(--accent); border-color: var(--accent); color: #ffffff; }
button.primary:hover, a.button.primary:hover { background: var(--accent-dark); }
button.danger { border-color: var(--danger); color: var(--danger); }
button.danger.solid { background: var(--danger); color: #ffffff; }
button[disabled] { cursor: progress; }
button:focus-visible, a:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible {
  outline: 3px solid var(--focus); outline-offset: 2px; }
.workspaces { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: .35rem; }
.workspaces button { width: 100%; text-align: left; font-weight: 600; }
.workspaces button[aria-current="true"] { border-color: var(--app); background: #f3e9f4; }
.workspaces .sub { display: block; font-weight: 400; font-size: .8rem; color: var(--muted); }
.ws-head { display: flex; flex-wrap: wrap; justify-content: space-between; gap: .5rem; align-items: center; }
.ws-buttons { display: flex; flex-wrap: wrap; gap: .4rem; }
.status { margin: 0; font-size: .9rem; color: var(--muted); }
.controls { display: flex; flex-wrap: wrap; gap: .75rem; margin: .75rem 0; align-items: end; }
.control { display: flex; flex-direction: column; gap: .2rem; min-width: 0; }
.row { display: flex; gap: .4rem; align-items: center; }
.row.wrap { flex-wrap: wrap; margin-top: .4rem; }
.row input[type=text] { flex: 1 1 auto; min-width: 0; }
.tabs { display: flex; gap: .25rem; border-bottom: 1px solid var(--line); margin-bottom: .5rem; }
.tabs button { border: none; border-bottom: 3px solid transparent; border-radius: 0; background: transparent; }
.tabs button[aria-selected="true"] { border-bottom-color: var(--app); }
.timeline-wrap { max-height: 34rem; overflow-y: auto; border: 1px solid var(--line); border-radius: .4rem;
                 background: #ffffff; }
.timeline { list-style: none; margin: 0; padding: .25rem .5rem; }
.timeline .empty { color: var(--muted); padding: .75rem 0; }
.msg { padding: .5rem 0; border-bottom: 1px solid #eeeeee; overflow-wrap: anywhere; }
.msg:last-child { border-bottom: none; }
.msg.reply { margin-left: 1.5rem; padding-left: .6rem; border-left: 3px solid var(--line); }
.msg.only-you { background: #f5f9fc; }
.meta { margin: 0 0 .2rem; display: flex; flex-wrap: wrap; gap: .4rem; align-items: baseline; font-size: .9rem; }
.badge { font-size: .7rem; font-weight: 700; background: #e8e8e8; color: var(--muted); padding: 0 .3rem; border-radius: .2rem; }
.tag, .time { font-size: .8rem; color: var(--muted); }
.mention { background: #e8f1fb; color: #0b4c8c; border-radius: .2rem; padding: 0 .15rem; }
.link { text-decoration: underline; }
.msg-menu { margin-left: auto; position: relative; font-size: .8rem; }
.msg-menu summary { cursor: pointer; padding: 0 .4rem; border-radius: .25rem; list-style: none; }
.msg-menu summary::-webkit-details-marker { display: none; }
.msg-menu[open] summary { background: #eeeeee; }
.msg-menu .menu { position: absolute; right: 0; z-index: 2; background: #ffffff; border: 1px solid var(--line);
                  border-radius: .3rem; padding: .25rem; display: flex; flex-direction: column; gap: .2rem;
                  min-width: 13rem; box-shadow: 0 2px 6px rgba(0, 0, 0, .15); }
.msg-menu .menu button { text-align: left; font-weight: 400; border: none; }
.blocks { display: flex; flex-direction: column; gap: .35rem; }
.bk-section { display: flex; gap: .75rem; justify-content: space-between; align-items: flex-start; }
.bk-section-body { min-width: 0; flex: 1 1 auto; }
.bk-fields { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .25rem .75rem; }
.bk-accessory { flex: 0 0 auto; }
.bk-context { font-size: .82rem; color: var(--muted); display: flex; flex-wrap: wrap; gap: .5rem; }
.bk-divider { border: none; border-top: 1px solid var(--line); margin: .2rem 0; width: 100%; }
.bk-header { font-weight: 700; font-size: 1.05rem; margin: .2rem 0; }
.bk-actions { display: flex; flex-wrap: wrap; gap: .4rem; }
.bk-btn.primary { background: var(--accent); border-color: var(--accent); color: #ffffff; }
.bk-btn.danger { border-color: var(--danger); color: var(--danger); }
.bk-confirm { border: 1px solid var(--line); border-radius: .3rem; padding: .4rem; background: #fffbe6; }
.bk-confirm p { margin: 0 0 .3rem; }
.bk-img, .bk-unsupported { color: var(--muted); font-style: italic; margin: 0; }
.composer { margin-top: .6rem; }
.home { border: 1px solid var(--line); border-radius: .4rem; padding: .5rem; margin-bottom: .5rem; background: #ffffff; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; min-width: 40rem; font-size: .85rem; }
th, td { text-align: left; padding: .25rem .4rem; border-bottom: 1px solid #eeeeee; vertical-align: top; }
tr.refresh td { background: #fff4d6; }
tr.failed td.result { color: var(--danger); font-weight: 600; }
.dir { color: var(--muted); font-size: .8rem; }
dialog { border: 1px solid var(--line); border-radius: .5rem; padding: 0; width: min(32rem, calc(100vw - 1.5rem));
         background: #ffffff; color: var(--text); }
dialog::backdrop { background: rgba(0, 0, 0, .45); }
.modal-form { padding: 1rem; display: flex; flex-direction: column; gap: .6rem; }
.modal-form h2 { margin: 0; }
.modal-body { display: flex; flex-direction: column; gap: .6rem; }
.field { display: flex; flex-direction: column; gap: .2rem; }
.field fieldset { border: none; margin: 0; padding: 0; }
.field legend { font-weight: 600; font-size: .9rem; padding: 0; }
.field .choice { display: block; font-weight: 400; }
.field-error { color: var(--danger); font-weight: 600; font-size: .875rem; margin: 0; }
.modal-actions { display: flex; justify-content: flex-end; gap: .5rem; }
.notice { margin: 0 0 .6rem; padding: .5rem .75rem; border-radius: .4rem;
          background: #e8f5ef; color: #0e3b2c; border: 1px solid #9ccfb9; }
.notice:empty { display: none; }
.notice.error { background: #fdecea; color: #7d1a13; border-color: #e6a49e; }
[hidden] { display: none !important; }
@media (max-width: 720px) {
  main { padding: .5rem; }
  .layout { grid-template-columns: minmax(0, 1fr); }
  .bk-section { flex-direction: column; }
  .msg.reply { margin-left: .75rem; }
}
"""

SCRIPT = r"""'use strict';
(() => {
  const POLL_MS = 800;
  const EMOJI = {
    bar_chart: '📊', trophy: '🏆', lock: '🔒', wave: '👋', white_check_mark: '✅', heavy_check_mark: '✔️',
    x: '❌', warning: '⚠️', tada: '🎉', ballot_box_with_check: '☑️', calendar: '📅', memo: '📝', bulb: '💡',
    rocket: '🚀', eyes: '👀', thumbsup: '👍', '+1': '👍', smile: '😄', slightly_smiling_face: '🙂',
    information_source: 'ℹ️', hourglass: '⌛', key: '🔑', lock_with_ink_pen: '🔏', star: '⭐', fire: '🔥',
  };
  const S = {
    team: decodeURIComponent(location.hash.slice(1)) || null, user: null, channel: null, tab: 'channel',
    cursors: {calls: 0, sent: 0}, data: null, keys: {}, logIds: new Set(), inflight: false, again: false,
    homeFor: '', installed: {},
  };
  let NAMES = {};
  let CHANNELS = {};
  let timer = null;
  let noticeTimer = null;

  const byId = (id) => document.getElementById(id);

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key === 'html') el.innerHTML = value;  // only ever given escaped markup (see mrkdwn)
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const kid of kids.flat(3)) {
      if (kid !== null && kid !== undefined && kid !== false) el.append(kid);
    }
    return el;
  }

  // ------------------------------------------------------------------ text

  function esc(value) {
    return String(value ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }
  const unslack = (s) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const emoji = (html) => html.replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);

  function plain(text, withEmoji) {
    const html = esc(text);
    return (withEmoji === false ? html : emoji(html)).replace(/\n/g, '<br>');
  }

  function inlineFormat(raw) {
    let s = esc(raw);
    const kept = [];
    const keep = (html) => { kept.push(html); return `\u0000${kept.length - 1}\u0000`; };
    s = s.replace(/```([\s\S]*?)```/g, (_, code) => keep(`<pre>${code}</pre>`));
    s = s.replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${code}</code>`));
    s = s.replace(/(^|[\s(])\*(?!\s)([^*\n]+?)\*(?=$|[\s).,!?:;])/gm, '$1<strong>$2</strong>');
    s = s.replace(/(^|[\s(])_(?!\s)([^_\n]+?)_(?=$|[\s).,!?:;])/gm, '$1<em>$2</em>');
    s = s.replace(/(^|[\s(])~(?!\s)([^~\n]+?)~(?=$|[\s).,!?:;])/gm, '$1<s>$2</s>');
    s = emoji(s);
    return s.replace(/\u0000(\d+)\u0000/g, (_, i) => kept[Number(i)]);
  }

  function special(inner) {
    const bar = inner.indexOf('|');
    const target = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? inner.slice(bar + 1) : '';
    if (target.startsWith('@')) return `<span class="mention">@${esc(label || NAMES[target.slice(1)] || target.slice(1))}</span>`;
    if (target.startsWith('#')) return `<span class="mention">#${esc(label || CHANNELS[target.slice(1)] || target.slice(1))}</span>`;
    if (target.startsWith('!date^')) {
      const epoch = Number(target.split('^')[1]);
      return esc(epoch ? new Date(epoch * 1000).toLocaleString() : label);
    }
    if (target.startsWith('!subteam^')) return `<span class="mention">${esc(label || '@group')}</span>`;
    if (target.startsWith('!')) return `<span class="mention">@${esc(target.slice(1))}</span>`;
    return `<span class="link" title="${esc(target)}">${esc(label || target)}</span>`;
  }

  // Slack's mrkdwn → safe HTML: `<…>` tokens are the only markup Slack sends raw; everything
  // else is unescaped from Slack's &amp;/&lt;/&gt; and escaped again for HTML.
  function mrkdwn(text) {
    let out = '';
    for (const part of String(text ?? '').split(/(<[^<>\n]+>)/)) {
      if (part.length > 2 && part.startsWith('<') && part.endsWith('>')) out += special(part.slice(1, -1));
      else out += inlineFormat(unslack(part));
    }
    return out.replace(/\n/g, '<br>');
  }

  const textOf = (obj) => (obj && typeof obj === 'object' ? obj.text : obj) || '';

  function textObject(obj, tag) {
    if (!obj) return null;
    if (typeof obj === 'string' || obj.type === 'mrkdwn') return h(tag, {class: 'text', html: mrkdwn(textOf(obj))});
    return h(tag, {class: 'text', html: plain(obj.text, obj.emoji)});
  }

  const clock = (at) => new Date(at * 1000).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});

  // ------------------------------------------------------------------ server

  function notify(message, isError) {
    const box = byId('notice');
    box.textContent = message;
    box.classList.toggle('error', Boolean(isError));
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { box.textContent = ''; }, isError ? 12000 : 8000);
  }

  async function post(action, body) {
    let data;
    let status = 0;
    try {
      const res = await fetch(`/console/api/${action}`, {
        method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body || {}),
      });
      status = res.status;
      data = await res.json();
    } catch (error) {
      data = {ok: false, error: status ? `HTTP ${status}` : 'The sandbox is not answering.'};
    }
    schedule(60);
    if (!data.ok) {
      notify(data.error || 'Something went wrong.', true);
      throw new Error(data.error);
    }
    if (data.app_error) notify(data.app_error, true);
    else if (data.note) notify(data.note);
    return data;
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  }

  async function refresh() {
    if (S.inflight) { S.again = true; return; }
    S.inflight = true;
    try {
      const query = new URLSearchParams({calls_after: S.cursors.calls, sent_after: S.cursors.sent});
      if (S.team) query.set('team', S.team);
      if (S.user) query.set('user', S.user);
      if (S.channel) query.set('channel', S.channel);
      const res = await fetch(`/console/api/state?${query}`);
      if (res.ok) render(await res.json());
    } catch (error) {
      notify('The sandbox is not answering (stopped?). Retrying…', true);
    } finally {
      S.inflight = false;
    }
    schedule(S.again ? 0 : POLL_MS);
    S.again = false;
  }

  function changed(name, value) {
    const key = JSON.stringify(value);
    if (S.keys[name] === key) return false;
    S.keys[name] = key;
    return true;
  }

  const base = () => ({team: S.team, user: S.user});

  // ------------------------------------------------------------------ rendering

  function render(data) {
    S.data = data;
    if (!S.team || !data.workspaces.some((w) => w.team_id === S.team)) {
      const first = data.workspaces.find((w) => w.installed) || data.workspaces[0];
      if (first) { selectTeam(first.team_id); return; }
    }
    renderWorkspaces(data);
    renderWorkspace(data);
    renderLog(data);
  }

  function selectTeam(teamId) {
    if (S.team !== teamId) {
      S.team = teamId;
      S.user = null;
      S.channel = null;
      S.homeFor = '';
      S.keys = {};
      history.replaceState(null, '', `#${encodeURIComponent(teamId)}`);
    }
    schedule(0);
  }

  function renderWorkspaces(data) {
    if (!changed('workspaces', [data.workspaces, S.team])) return;
    const list = byId('workspaces');
    list.textContent = '';
    if (!data.workspaces.length) list.append(h('li', {class: 'note', text: 'None yet.'}));
    for (const w of data.workspaces) {
      list.append(h('li', {}, h('button', {
        type: 'button', 'aria-current': w.team_id === S.team ? 'true' : null, onclick: () => selectTeam(w.team_id),
      }, w.name, h('span', {class: 'sub', text: `${w.team_id} · ${w.installed ? 'app installed' : 'app not installed'}`}))));
    }
  }

  function renderWorkspace(data) {
    const w = data.workspace;
    byId('no-workspace').hidden = Boolean(w);
    byId('ws-panel').hidden = !w;
    const heading = byId('workspace-heading');
    if (!w) {
      heading.textContent = 'No workspace yet';
      return;
    }
    heading.textContent = `${w.name} (${w.team_id})`;
    S.user = w.user;
    S.channel = w.channel;
    if (S.installed[w.team_id] === false && w.installed) {
      notify(`Installed in ${w.name}. Mention @${data.app.bot_name} below, or try /poll.`);
    }
    S.installed[w.team_id] = w.installed;
    NAMES = w.names;
    CHANNELS = Object.fromEntries(w.channels.map((c) => [c.id, c.name]));
    byId('ws-status').textContent = w.installed
      ? `The app is installed; its bot user is @${data.app.bot_name} (${w.bot_user_id}).`
      : 'The app is not installed here.';
    const install = byId('ws-install');
    install.hidden = w.installed;
    install.href = w.install_url;
    byId('ws-fast-forward').hidden = !w.installed;
    byId('ws-uninstall').hidden = !w.installed;

    if (changed('users', [w.team_id, w.users])) {
      const select = byId('as-user');
      select.textContent = '';
      for (const u of w.users) select.append(h('option', {value: u.id, text: `${u.name} (${u.id})`}));
    }
    byId('as-user').value = S.user || '';
    if (changed('channels', [w.team_id, w.channels])) {
      const select = byId('channel');
      select.textContent = '';
      for (const c of w.channels) select.append(h('option', {value: c.id, text: `#${c.name}`}));
    }
    byId('channel').value = S.channel || '';
    const channelName = CHANNELS[S.channel] || 'general';
    byId('tab-channel').textContent = `#${channelName}`;
    byId('message-label').textContent = `Message #${channelName} as ${NAMES[S.user] || S.user}`;
    byId('message').placeholder = `@${data.app.bot_name} hello, or /poll "Lunch?" "Pizza" "Sushi"`;
    byId('mention').textContent = `Mention @${data.app.bot_name}`;
    if (changed('hint', [data.commands, data.app.bot_name])) {
      const hint = byId('composer-hint');
      hint.textContent = '';
      hint.append(`The app hears messages that mention @${data.app.bot_name}`);
      for (const c of data.commands) hint.append(', ', h('code', {text: c.command}), ` (${c.description})`);
      hint.append('. Other messages are posted but the app never sees them.');
    }
    if (changed('shortcuts', data.shortcuts)) {
      const select = byId('shortcuts');
      select.textContent = '';
      select.append(h('option', {value: '', text: 'Shortcuts…'}));
      for (const s of data.shortcuts.filter((x) => x.type === 'global')) {
        select.append(h('option', {value: s.callback_id, text: s.name}));
      }
      select.hidden = select.options.length < 2;
    }
    if (changed('timeline', [w.team_id, S.user, S.channel, w.timeline, w.names])) renderTimeline(w, data);
    if (changed('modal', w.modal ? [w.modal.id, w.modal.hash, S.user] : null)) renderModal(w.modal, w);
    if (S.tab === 'home') {
      if (S.homeFor !== `${S.team}/${S.user}` && w.installed) openHome();
      if (changed('home', [w.home, S.user, w.installed])) renderHome(w);
    }
  }

  function renderTimeline(w, data) {
    const list = byId('timeline');
    const wrap = list.parentElement;
    const atBottom = wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 40;
    list.textContent = '';
    if (!w.timeline.length) {
      list.append(h('li', {class: 'empty', text: 'No messages yet. Say hello to the app below.'}));
      return;
    }
    const parents = new Set(w.timeline.filter((m) => !m.thread_ts).map((m) => m.ts));
    const replies = {};
    const top = [];
    for (const item of w.timeline) {
      if (item.thread_ts && parents.has(item.thread_ts)) (replies[item.thread_ts] = replies[item.thread_ts] || []).push(item);
      else top.push(item);
    }
    for (const item of top) {
      list.append(renderMessage(item, w, data));
      for (const reply of replies[item.ts] || []) list.append(renderMessage(reply, w, data));
    }
    if (atBottom) wrap.scrollTop = wrap.scrollHeight;
  }

  function renderMessage(item, w, data) {
    const author = item.bot ? data.app.bot_name : (NAMES[item.user] || item.user || 'someone');
    const li = h('li', {
      class: `msg${item.thread_ts ? ' reply' : ''}${item.only_you ? ' only-you' : ''}`,
      'data-ts': item.ts, 'data-kind': item.kind,
    });
    const messageShortcuts = data.shortcuts.filter((s) => s.type === 'message');
    let menu = null;
    if (item.kind === 'message' && messageShortcuts.length && w.installed) {
      menu = h('details', {class: 'msg-menu'}, h('summary', {title: 'Message shortcuts', text: '⋮ More'}));
      const list = h('div', {class: 'menu', role: 'group', 'aria-label': 'Message shortcuts'});
      for (const shortcut of messageShortcuts) {
        list.append(h('button', {type: 'button', text: shortcut.name, 'aria-label': shortcut.name, onclick: () => {
          menu.open = false;
          post('shortcut', {...base(), callback_id: shortcut.callback_id, channel: S.channel, message_ts: item.ts}).catch(() => {});
        }}));
      }
      menu.append(list);
    }
    li.append(h('p', {class: 'meta'},
      h('strong', {text: author}),
      item.bot ? h('span', {class: 'badge', text: 'APP'}) : null,
      h('span', {class: 'time', text: clock(item.at)}),
      item.thread_ts ? h('span', {class: 'tag', text: 'reply in thread'}) : null,
      item.only_you ? h('span', {class: 'tag', text: 'Only visible to you'}) : null,
      item.edited ? h('span', {class: 'tag', text: '(edited)'}) : null, menu));
    const ctx = {kind: 'message', message_ts: item.ts, ephemeral: item.kind !== 'message'};
    if (item.blocks && item.blocks.length) li.append(renderBlocks(item.blocks, ctx));
    else li.append(h('div', {class: 'text', html: mrkdwn(item.text)}));
    return li;
  }

  // ------------------------------------------------------------------ Block Kit

  function renderBlocks(blocks, ctx) {
    return h('div', {class: 'blocks'}, (blocks || []).map((block) => renderBlock(block, ctx)));
  }

  function renderBlock(b, ctx) {
    switch (b.type) {
      case 'section': {
        const body = h('div', {class: 'bk-section-body'}, textObject(b.text, 'div'),
          b.fields ? h('div', {class: 'bk-fields'}, b.fields.map((f) => textObject(f, 'div'))) : null);
        return h('div', {class: 'bk-section'}, body,
          b.accessory ? h('div', {class: 'bk-accessory'}, renderElement(b.accessory, b.block_id, ctx)) : null);
      }
      case 'context':
        return h('div', {class: 'bk-context'}, (b.elements || []).map((e) => (e.type === 'image'
          ? h('span', {class: 'bk-img', text: `[${e.alt_text || 'image'}]`}) : textObject(e, 'span'))));
      case 'divider':
        return h('hr', {class: 'bk-divider'});
      case 'header':
        return h('p', {class: 'bk-header', html: plain(textOf(b.text))});
      case 'actions':
        return h('div', {class: 'bk-actions'}, (b.elements || []).map((e) => renderElement(e, b.block_id, ctx)));
      case 'image':
        return h('p', {class: 'bk-img', text: `[image: ${b.alt_text || textOf(b.title) || ''}]`});
      case 'input':
        return renderInput(b, ctx);
      case 'rich_text':
        return h('div', {class: 'text', text: richText(b)});
      default:
        return h('p', {class: 'bk-unsupported', text: `[${b.type} block]`});
    }
  }

  function richText(node) {
    if (!node || typeof node !== 'object') return '';
    if (typeof node.text === 'string') return node.text;
    if (node.type === 'user') return `@${NAMES[node.user_id] || node.user_id}`;
    if (node.type === 'channel') return `#${CHANNELS[node.channel_id] || node.channel_id}`;
    return (node.elements || []).map(richText).join(node.type === 'rich_text_list' ? '\n' : '');
  }

  function options(element) {
    if (element.option_groups) return element.option_groups.flatMap((g) => g.options || []);
    return element.options || [];
  }

  function choices(element) {
    const w = S.data.workspace;
    if (/users_select$/.test(element.type)) return w.users.map((u) => ({value: u.id, label: u.name}));
    if (/(conversations|channels)_select$/.test(element.type)) return w.channels.map((c) => ({value: c.id, label: `#${c.name}`}));
    return options(element).map((o, i) => ({value: String(i), label: textOf(o.text), option: o}));
  }

  function selectedField(element, value, choice) {
    if (element.type.startsWith('multi_')) return null;
    if (element.type === 'users_select') return {selected_user: value};
    if (element.type === 'conversations_select') return {selected_conversation: value};
    if (element.type === 'channels_select') return {selected_channel: value};
    return {selected_option: choice.option};
  }

  function renderElement(e, blockId, ctx) {
    switch (e.type) {
      case 'button': {
        const button = h('button', {type: 'button', class: `bk-btn${e.style ? ` ${e.style}` : ''}`, html: plain(textOf(e.text))});
        const fire = () => act(ctx, {type: 'button', action_id: e.action_id, block_id: blockId, value: e.value, text: e.text}, button);
        button.addEventListener('click', () => (e.confirm ? askConfirm(button, e.confirm, fire) : fire()));
        return button;
      }
      case 'overflow': {
        const select = h('select', {class: 'bk-overflow', 'aria-label': 'More options'},
          h('option', {value: '', text: '⋯'}), options(e).map((o, i) => h('option', {value: String(i), text: textOf(o.text)})));
        select.addEventListener('change', () => {
          const option = options(e)[Number(select.value)];
          select.value = '';
          if (option) act(ctx, {type: 'overflow', action_id: e.action_id, block_id: blockId, selected_option: option}, select);
        });
        return select;
      }
      case 'static_select': case 'users_select': case 'conversations_select': case 'channels_select': {
        const list = choices(e);
        const select = h('select', {'aria-label': textOf(e.placeholder) || 'Choose'},
          h('option', {value: '', text: textOf(e.placeholder) || 'Choose…'}),
          list.map((c) => h('option', {value: c.value, text: c.label})));
        select.addEventListener('change', () => {
          const choice = list.find((c) => c.value === select.value);
          if (choice) act(ctx, {type: e.type, action_id: e.action_id, block_id: blockId, ...selectedField(e, choice.value, choice)}, select);
        });
        return select;
      }
      case 'datepicker': {
        const input = h('input', {type: 'date', 'aria-label': textOf(e.placeholder) || 'Date', value: e.initial_date || null});
        input.addEventListener('change', () => act(ctx, {type: 'datepicker', action_id: e.action_id, block_id: blockId, selected_date: input.value}, input));
        return input;
      }
      case 'image':
        return h('span', {class: 'bk-img', text: `[${e.alt_text || 'image'}]`});
      default:
        return h('span', {class: 'bk-unsupported', text: `[${e.type}]`});
    }
  }

  function askConfirm(button, confirm, fire) {
    if (button.nextElementSibling && button.nextElementSibling.classList.contains('bk-confirm')) return;
    const box = h('div', {class: 'bk-confirm', role: 'group', 'aria-label': textOf(confirm.title) || 'Are you sure?'},
      h('p', {}, h('strong', {text: textOf(confirm.title) || 'Are you sure?'})),
      confirm.text ? h('p', {html: confirm.text.type === 'mrkdwn' ? mrkdwn(confirm.text.text) : plain(confirm.text.text)}) : null);
    const yes = h('button', {type: 'button', class: 'primary', text: textOf(confirm.confirm) || 'Yes'});
    const no = h('button', {type: 'button', text: textOf(confirm.deny) || 'Cancel'});
    const done = () => { box.remove(); button.hidden = false; button.focus(); };
    yes.addEventListener('click', () => { done(); fire(); });
    no.addEventListener('click', done);
    box.append(h('div', {class: 'row'}, yes, no));
    button.hidden = true;
    button.after(box);
    yes.focus();
  }

  async function act(ctx, action, control) {
    const body = {...base(), action};
    if (ctx.kind === 'view') {
      body.view_id = ctx.view_id;
      if (ctx.form) body.values = collect(ctx.form, ctx.blocks);
    } else {
      Object.assign(body, {channel: S.channel, message_ts: ctx.message_ts, ephemeral: ctx.ephemeral});
    }
    control.disabled = true;
    try { await post('action', body); } catch (error) { /* shown by post */ } finally { control.disabled = false; }
  }

  // ------------------------------------------------------------------ modals and inputs

  const fieldId = (b) => `f-${b.block_id}-${b.element.action_id}`.replace(/[^A-Za-z0-9_-]/g, '_');

  function renderInput(b, ctx) {
    const e = b.element || {};
    const id = fieldId(b);
    const field = h('div', {class: 'field', 'data-block': b.block_id});
    const labelText = `${textOf(b.label)}${b.optional ? ' (optional)' : ''}`;
    const hint = b.hint ? h('p', {class: 'note', id: `${id}-hint`, html: plain(textOf(b.hint))}) : null;
    const error = h('p', {class: 'field-error', id: `${id}-error`, hidden: true});
    const described = hint ? `${id}-hint` : null;
    let control;
    if (e.type === 'checkboxes' || e.type === 'radio_buttons') {
      const initial = new Set((e.initial_options || (e.initial_option ? [e.initial_option] : [])).map((o) => o.value));
      control = h('fieldset', {id, 'aria-describedby': described},
        h('legend', {text: labelText}),
        options(e).map((o, i) => h('label', {class: 'choice'},
          h('input', {type: e.type === 'checkboxes' ? 'checkbox' : 'radio', name: id, value: String(i),
                      checked: initial.has(o.value)}), ' ', textOf(o.text))));
      field.append(...[control, hint, error].filter(Boolean));
      return field;
    }
    const common = {id, name: id, 'aria-describedby': described, placeholder: textOf(e.placeholder) || null};
    switch (e.type) {
      case 'plain_text_input':
        control = e.multiline
          ? h('textarea', {...common, maxlength: e.max_length || null}, e.initial_value || '')
          : h('input', {...common, type: 'text', maxlength: e.max_length || null, value: e.initial_value || null});
        break;
      case 'number_input':
        control = h('input', {...common, type: 'number', step: e.is_decimal_allowed ? 'any' : '1', value: e.initial_value || null});
        break;
      case 'email_text_input': case 'url_text_input':
        control = h('input', {...common, type: e.type === 'email_text_input' ? 'email' : 'url', value: e.initial_value || null});
        break;
      case 'datepicker':
        control = h('input', {...common, type: 'date', value: e.initial_date || null});
        break;
      case 'timepicker':
        control = h('input', {...common, type: 'time', value: e.initial_time || null});
        break;
      case 'static_select': case 'multi_static_select': case 'users_select': case 'multi_users_select':
      case 'conversations_select': case 'multi_conversations_select': case 'channels_select': case 'multi_channels_select': {
        const multiple = e.type.startsWith('multi_');
        const list = choices({...e, type: e.type.replace(/^multi_/, '')});
        const initial = new Set([
          ...(e.initial_options || []).map((o) => o.value), e.initial_option && e.initial_option.value,
          e.initial_user, ...(e.initial_users || []), e.initial_conversation, ...(e.initial_conversations || []),
          e.initial_channel, ...(e.initial_channels || []),
          e.default_to_current_conversation ? S.channel : null,
        ].filter(Boolean));
        control = h('select', {...common, placeholder: null, multiple: multiple || null},
          multiple ? null : h('option', {value: '', text: textOf(e.placeholder) || 'Choose…'}),
          list.map((c) => h('option', {value: c.value, text: c.label,
                                       selected: initial.has(c.option ? c.option.value : c.value) || null})));
        break;
      }
      default:
        field.append(h('p', {class: 'bk-unsupported', text: `${labelText}: [${e.type} input]`}));
        return field;
    }
    field.append(...[h('label', {for: id, text: labelText}), control, hint, error].filter(Boolean));
    return field;
  }

  function collect(form, blocks) {
    const values = {};
    for (const b of blocks || []) {
      if (b.type !== 'input' || !b.element) continue;
      const e = b.element;
      const id = fieldId(b);
      const control = form.querySelector(`#${id}`);
      if (!control) continue;
      const all = options(e);
      let value;
      switch (e.type) {
        case 'checkboxes':
          value = {type: e.type, selected_options: [...control.querySelectorAll('input:checked')].map((i) => all[Number(i.value)])};
          break;
        case 'radio_buttons': {
          const picked = control.querySelector('input:checked');
          value = {type: e.type, selected_option: picked ? all[Number(picked.value)] : null};
          break;
        }
        case 'static_select':
          value = {type: e.type, selected_option: control.value === '' ? null : all[Number(control.value)]};
          break;
        case 'multi_static_select':
          value = {type: e.type, selected_options: [...control.selectedOptions].map((o) => all[Number(o.value)])};
          break;
        case 'users_select': value = {type: e.type, selected_user: control.value || null}; break;
        case 'conversations_select': value = {type: e.type, selected_conversation: control.value || null}; break;
        case 'channels_select': value = {type: e.type, selected_channel: control.value || null}; break;
        case 'multi_users_select': value = {type: e.type, selected_users: [...control.selectedOptions].map((o) => o.value)}; break;
        case 'multi_conversations_select': value = {type: e.type, selected_conversations: [...control.selectedOptions].map((o) => o.value)}; break;
        case 'multi_channels_select': value = {type: e.type, selected_channels: [...control.selectedOptions].map((o) => o.value)}; break;
        case 'datepicker': value = {type: e.type, selected_date: control.value || null}; break;
        case 'timepicker': value = {type: e.type, selected_time: control.value || null}; break;
        default: value = {type: e.type, value: control.value === '' ? null : control.value};
      }
      (values[b.block_id] = values[b.block_id] || {})[e.action_id] = value;
    }
    return values;
  }

  function showErrors(form, errors) {
    let first = null;
    for (const field of form.querySelectorAll('.field')) {
      const message = errors[field.dataset.block];
      const error = field.querySelector('.field-error');
      const control = field.querySelector('input, textarea, select, fieldset');
      if (!error || !control) continue;
      error.textContent = message || '';
      error.hidden = !message;
      const ids = (control.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && x !== error.id);
      if (message) ids.push(error.id);
      if (ids.length) control.setAttribute('aria-describedby', ids.join(' ')); else control.removeAttribute('aria-describedby');
      if (message) { control.setAttribute('aria-invalid', 'true'); first = first || control; } else control.removeAttribute('aria-invalid');
    }
    if (first) (first.matches('fieldset') ? first.querySelector('input') : first).focus();
  }

  let shownModal = null;

  function renderModal(modal) {
    const dialog = byId('modal');
    shownModal = modal;
    dialog.textContent = '';
    if (!modal) {
      if (dialog.open) dialog.close();
      return;
    }
    const form = h('form', {class: 'modal-form', novalidate: true});
    const ctx = {kind: 'view', view_id: modal.id, blocks: modal.blocks, form};
    const hasInputs = (modal.blocks || []).some((b) => b.type === 'input');
    const cancel = h('button', {type: 'button', html: plain(textOf(modal.close) || (hasInputs ? 'Cancel' : 'Close'))});
    const submit = modal.submit || hasInputs ? h('button', {type: 'submit', class: 'primary', html: plain(textOf(modal.submit) || 'Submit')}) : null;
    form.append(h('h2', {id: 'modal-title', html: plain(textOf(modal.title) || 'Modal')}),
      h('div', {class: 'modal-body'}, (modal.blocks || []).map((b) => renderBlock(b, ctx))),
      h('div', {class: 'modal-actions'}, cancel, submit));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!submit) return;
      submit.disabled = true;
      try {
        const result = await post('submit', {...base(), view_id: modal.id, values: collect(form, modal.blocks)});
        if (result.result === 'errors') showErrors(form, result.errors);
        else if (result.result === 'closed' && dialog.open) dialog.close();
      } catch (error) { /* shown by post */ } finally { submit.disabled = false; }
    });
    cancel.addEventListener('click', () => closeModal());
    dialog.append(form);
    if (!dialog.open) dialog.showModal();
    const firstField = form.querySelector('.modal-body input, .modal-body textarea, .modal-body select');
    if (firstField) firstField.focus();
  }

  function closeModal() {
    const dialog = byId('modal');
    if (dialog.open) dialog.close();
    if (shownModal) post('close', {...base(), view_id: shownModal.id}).catch(() => {});
  }

  // ------------------------------------------------------------------ App Home

  function openHome() {
    S.homeFor = `${S.team}/${S.user}`;
    post('home', base()).catch(() => {});
  }

  function renderHome(w) {
    const pane = byId('home-view');
    pane.textContent = '';
    if (!w.installed) pane.append(h('p', {class: 'note', text: 'Install the app to see its Home tab.'}));
    else if (!w.home) pane.append(h('p', {class: 'note', text: 'Opening… (the app publishes this tab when it receives app_home_opened)'}));
    else pane.append(renderBlocks(w.home.blocks, {kind: 'view', view_id: w.home.id, blocks: w.home.blocks}));
  }

  function showTab(tab) {
    S.tab = tab;
    byId('tab-channel').setAttribute('aria-selected', String(tab === 'channel'));
    byId('tab-home').setAttribute('aria-selected', String(tab === 'home'));
    byId('pane-channel').hidden = tab !== 'channel';
    byId('pane-home').hidden = tab !== 'home';
    delete S.keys.home;
    if (tab === 'home') S.homeFor = '';
    schedule(0);
  }

  // ------------------------------------------------------------------ log

  function renderLog(data) {
    const body = byId('log');
    if (data.log_reset) { body.textContent = ''; S.logIds.clear(); }
    S.cursors = data.log_next;
    for (const e of data.log) {
      if (S.logIds.has(e.id)) continue;
      S.logIds.add(e.id);
      const api = e.dir === 'api';
      const token = e.token ? h('code', {text: e.token}) : '—';
      const result = api ? (e.ok ? 'ok' : `error: ${e.error}`) : `answered HTTP ${e.status}`;
      body.prepend(h('tr', {
        class: e.refresh ? 'refresh' : (e.ok ? null : 'failed'), 'data-dir': e.dir, 'data-method': e.method || '',
        'data-refresh': e.refresh ? 'true' : null, 'data-ok': String(Boolean(e.ok)), 'data-team': e.team || '',
      },
      h('td', {text: clock(e.at)}),
      h('td', {}, h('span', {class: 'dir', text: api ? 'app → Slack ' : 'Slack → app '}), h('code', {text: e.method || '?'}),
        e.note ? ` ${e.note}` : null),
      h('td', {text: e.team || '—'}),
      h('td', {}, token, e.token && e.token_kind ? ` (${e.token_kind})` : null),
      h('td', {class: 'result', text: result})));
    }
    while (body.rows.length > 300) body.deleteRow(-1);
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    byId('new-workspace').addEventListener('submit', async (event) => {
      event.preventDefault();
      // Opened during the click, so popup blockers allow it; pointed at the install page below.
      const tab = window.open('', '_blank');
      try {
        const created = await post('workspaces', {name: byId('new-name').value});
        byId('new-name').value = '';
        selectTeam(created.team_id);
        if (tab) {
          tab.opener = null;
          tab.location.href = created.install_url;
          notify('Finish the install in the new tab: Add to Slack, then Allow. This page follows along.');
        } else {
          location.href = created.install_url;
        }
      } catch (error) {
        if (tab) tab.close();
      }
    });
    byId('composer').addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = byId('message');
      const text = input.value.trim();
      if (!text) return;
      try {
        await post('send', {...base(), channel: S.channel, text});
        input.value = '';
      } catch (error) { /* shown by post; the text stays for another try */ }
      input.focus();
    });
    byId('mention').addEventListener('click', () => {
      const input = byId('message');
      const mention = `@${S.data ? S.data.app.bot_name : 'app'} `;
      if (!input.value.startsWith(mention)) input.value = mention + input.value;
      input.focus();
    });
    byId('shortcuts').addEventListener('change', (event) => {
      const callbackId = event.target.value;
      event.target.value = '';
      if (callbackId) post('shortcut', {...base(), callback_id: callbackId, channel: S.channel}).catch(() => {});
    });
    byId('as-user').addEventListener('change', (event) => {
      S.user = event.target.value;
      S.homeFor = '';
      schedule(0);
    });
    byId('channel').addEventListener('change', (event) => { S.channel = event.target.value; schedule(0); });
    byId('add-user').addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const added = await post('users', {team: S.team, name: byId('user-name').value});
        byId('user-name').value = '';
        S.user = added.user_id;
        S.homeFor = '';
      } catch (error) { /* shown by post */ }
    });
    byId('ws-fast-forward').addEventListener('click', async () => {
      try {
        const result = await post('fast_forward', {team: S.team});
        notify(`Expired ${result.expired} token(s) at the stand-in. The app's database still says they are valid: ` +
               'its next call gets token_expired and it rotates once (watch the log). Mention the app to see it.');
      } catch (error) { /* shown by post */ }
    });
    const uninstall = byId('ws-uninstall');
    uninstall.addEventListener('click', () => askConfirm(uninstall, {
      title: {text: 'Uninstall the app?'},
      text: {type: 'plain_text', text: 'Its tokens stop working at once and the app receives app_uninstalled.'},
      confirm: {text: 'Uninstall'}, deny: {text: 'Keep it'},
    }, async () => {
      try { await post('uninstall', {team: S.team}); notify('Uninstalled: the app received app_uninstalled.'); } catch (error) { /* shown */ }
    }));
    byId('tab-channel').addEventListener('click', () => showTab('channel'));
    byId('tab-home').addEventListener('click', () => showTab('home'));
    byId('home-reopen').addEventListener('click', () => openHome());
    byId('modal').addEventListener('cancel', (event) => { event.preventDefault(); closeModal(); });
    window.addEventListener('hashchange', () => {
      const team = decodeURIComponent(location.hash.slice(1));
      if (team && team !== S.team) selectTeam(team);
    });
  }

  wire();
  refresh();
})();
"""


def render_page() -> str:
    """The console's HTML (static: everything dynamic comes from the state endpoint)."""
    return PAGE
