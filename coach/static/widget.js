/*!
 * Coach widget: guided conversations for couples, embeddable with one tag.
 *
 *   <script src="https://coach.example/widget.js" data-exercise="rose-bud-thorn" async></script>
 *
 * The script adds a <coach-widget> element right after its own tag (or fills an existing
 * <coach-widget> element on the page). The API is the origin the script was loaded from.
 *
 * Script attributes (also accepted on <coach-widget> without the "data-" prefix):
 *   data-exercise   exercise id suggested first in the picker (e.g. "rose-bud-thorn")
 *   data-exit-url   where Quick Exit goes (default: the coach's neutral page, /neutral)
 *   data-country    two-letter country code for help resources (default: the server's)
 *   data-title      heading shown at the top of the widget (default: "Coach")
 *
 * Theming: the widget lives in a Shadow DOM, so host CSS cannot break it. Set these
 * custom properties on the host page (on `coach-widget` or any ancestor) to theme it:
 *   --coach-accent        buttons, links, focus ring        (default #2d6a5a)
 *   --coach-on-accent     text on accent-coloured buttons    (default #ffffff)
 *   --coach-bg            widget background                  (default #fffdf9)
 *   --coach-surface       cards and bubbles                  (default #f4efe7)
 *   --coach-fg            text                               (default #1f2328)
 *   --coach-muted         secondary text                     (default #565d66)
 *   --coach-border        borders                            (default #d9d2c5)
 *   --coach-radius        corner radius                      (default 14px)
 *   --coach-font          font family                        (default system-ui stack)
 *   --coach-font-size     base font size                     (default 16px)
 *   --coach-max-width     widest the widget grows            (default 720px)
 * Dark mode and reduced motion follow the user's system settings (prefers-color-scheme,
 * prefers-reduced-motion) unless the host overrides the colours above.
 *
 * Privacy and safety: tokens are kept only in this origin's localStorage, under keys that
 * start with "coach-widget:". Quick Exit (the button, or Esc pressed twice) clears them and
 * replaces the page with a neutral one. Message text is always rendered as text.
 * No framework, no build step, no inline styles: works under a strict CSP.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  const SRC = script && script.src ? new URL(script.src, location.href) : new URL("/widget.js", location.href);
  const API = new URL(".", SRC).href.replace(/\/$/, "");
  const NS = "coach-widget:";
  const STORE_KEY = NS + API;
  const CHALLENGE = "thirty-day-challenge";
  const RBT = "rose-bud-thorn";

  const CSS = `
:host {
  all: initial;
  --_accent: var(--coach-accent, #2d6a5a);
  --_on-accent: var(--coach-on-accent, #ffffff);
  --_bg: var(--coach-bg, #fffdf9);
  --_surface: var(--coach-surface, #f4efe7);
  --_fg: var(--coach-fg, #1f2328);
  --_muted: var(--coach-muted, #565d66);
  --_border: var(--coach-border, #d9d2c5);
  --_radius: var(--coach-radius, 14px);
  --_private: var(--coach-private, #f7ecf3);
  --_private-border: var(--coach-private-border, #9b4d7c);
  --_danger: var(--coach-danger, #a3262a);
  display: block;
  box-sizing: border-box;
  max-width: var(--coach-max-width, 720px);
  margin: 0 auto;
  color: var(--_fg);
  background: var(--_bg);
  font-family: var(--coach-font, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif);
  font-size: var(--coach-font-size, 16px);
  line-height: 1.5;
  border: 1px solid var(--_border);
  border-radius: var(--_radius);
  overflow: hidden;
  text-align: left;
}
@media (prefers-color-scheme: dark) {
  :host {
    --_accent: var(--coach-accent, #7fd1b9);
    --_on-accent: var(--coach-on-accent, #0f1a17);
    --_bg: var(--coach-bg, #18171c);
    --_surface: var(--coach-surface, #25232b);
    --_fg: var(--coach-fg, #eeebf2);
    --_muted: var(--coach-muted, #b3afba);
    --_border: var(--coach-border, #3d3a45);
    --_private: var(--coach-private, #34222e);
    --_private-border: var(--coach-private-border, #e0a3c8);
    --_danger: var(--coach-danger, #ff9a9a);
  }
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
.wrap { display: flex; flex-direction: column; min-height: 420px; }
header.bar {
  display: flex; align-items: center; gap: .75rem; justify-content: space-between;
  padding: .75rem 1rem; border-bottom: 1px solid var(--_border); background: var(--_surface);
}
.brand { display: flex; flex-direction: column; min-width: 0; }
.brand strong { font-size: 1.05rem; }
.brand span { color: var(--_muted); font-size: .85rem; }
main.view { padding: 1rem; flex: 1; display: flex; flex-direction: column; gap: 1rem; min-width: 0; }
footer.foot {
  display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; justify-content: space-between;
  padding: .75rem 1rem; border-top: 1px solid var(--_border); color: var(--_muted); font-size: .85rem;
}
h2 { font-size: 1.3rem; margin: 0; line-height: 1.25; }
h3 { font-size: 1.05rem; margin: 0; line-height: 1.3; }
p { margin: 0; }
.muted { color: var(--_muted); }
.small { font-size: .875rem; }
button, input, textarea { font: inherit; color: inherit; }
button {
  cursor: pointer; border-radius: calc(var(--_radius) * .7); padding: .6rem 1rem;
  border: 1px solid var(--_accent); background: transparent; color: var(--_accent); font-weight: 600;
  min-height: 44px; transition: background-color .15s ease, transform .15s ease;
}
button:hover { background: color-mix(in srgb, var(--_accent) 10%, transparent); }
button.primary { background: var(--_accent); color: var(--_on-accent); }
button.primary:hover { background: color-mix(in srgb, var(--_accent) 85%, black); }
button.link { border: 0; padding: .25rem .25rem; min-height: 0; text-decoration: underline; font-weight: 500; }
button.exit {
  background: var(--_danger); border-color: var(--_danger); color: #fff; white-space: nowrap;
}
@media (prefers-color-scheme: dark) { button.exit { color: #1a0d0d; } }
button.exit:hover { background: color-mix(in srgb, var(--_danger) 85%, black); }
button:disabled { opacity: .55; cursor: not-allowed; }
:focus-visible { outline: 3px solid var(--_accent); outline-offset: 2px; }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
.hint { display: block; font-weight: 400; color: var(--_muted); font-size: .85rem; }
input[type=text], textarea {
  width: 100%; padding: .6rem .75rem; border: 1px solid var(--_border); border-radius: calc(var(--_radius) * .6);
  background: var(--_bg); min-height: 44px;
}
input[type=text]:focus, textarea:focus { border-color: var(--_accent); }
textarea { resize: vertical; min-height: 4.5rem; }
.field { display: flex; flex-direction: column; }
.row { display: flex; gap: .5rem; flex-wrap: wrap; align-items: flex-end; }
.row > .grow { flex: 1 1 12rem; }
.card {
  background: var(--_surface); border: 1px solid var(--_border); border-radius: var(--_radius);
  padding: 1rem; display: flex; flex-direction: column; gap: .6rem;
}
.divider { display: flex; align-items: center; gap: .75rem; color: var(--_muted); font-size: .9rem; }
.divider::before, .divider::after { content: ""; flex: 1; border-top: 1px solid var(--_border); }
.code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 1.15rem; letter-spacing: .08em; }
.status { font-size: .9rem; }
.status:empty { display: none; }
.status.error { color: var(--_danger); font-weight: 600; }
ul.plain { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: .5rem; }
.exercises { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .6rem; }
.pick {
  width: 100%; height: 100%; text-align: left; display: flex; flex-direction: column; gap: .25rem; align-items: flex-start;
  border: 1px solid var(--_border); background: var(--_surface); color: var(--_fg); font-weight: 400; padding: .8rem .9rem;
}
.pick:hover { border-color: var(--_accent); background: var(--_surface); }
.pick strong { color: var(--_fg); font-size: 1rem; }
.pick .meta { color: var(--_muted); font-size: .82rem; }
.badge {
  display: inline-block; font-size: .75rem; font-weight: 700; padding: .05rem .5rem; border-radius: 999px;
  background: var(--_accent); color: var(--_on-accent);
}
.topline { display: flex; align-items: center; gap: .5rem; flex-wrap: wrap; }
.stepper { display: flex; flex-direction: column; gap: .35rem; }
.dots { display: flex; gap: .3rem; flex-wrap: wrap; margin: 0; padding: 0; list-style: none; }
.dots li { width: 1.6rem; height: .4rem; border-radius: 999px; background: var(--_border); }
.dots li.done { background: color-mix(in srgb, var(--_accent) 55%, var(--_border)); }
.dots li.current { background: var(--_accent); }
.banner {
  border-radius: var(--_radius); padding: .75rem 1rem; background: var(--_surface); border: 1px dashed var(--_border);
}
.log {
  display: flex; flex-direction: column; gap: .6rem; margin: 0; padding: 0; list-style: none;
  max-height: min(60vh, 32rem); overflow-y: auto; scroll-behavior: smooth;
}
.log:empty::before { content: attr(data-empty); color: var(--_muted); font-size: .9rem; }
.msg { max-width: 88%; display: flex; flex-direction: column; gap: .15rem; }
.msg .who { font-size: .78rem; font-weight: 700; color: var(--_muted); }
.msg .text {
  white-space: pre-wrap; overflow-wrap: anywhere; padding: .6rem .8rem; border-radius: var(--_radius);
  background: var(--_surface); border: 1px solid var(--_border);
}
.msg.mine { align-self: flex-end; }
.msg.mine .text { background: color-mix(in srgb, var(--_accent) 14%, var(--_bg)); border-color: color-mix(in srgb, var(--_accent) 35%, var(--_border)); }
.msg.coach .text { background: var(--_bg); }
.msg.private .text { background: var(--_private); border-color: var(--_private-border); }
.msg.notice { align-self: center; max-width: 100%; text-align: center; }
.msg.notice .text { background: transparent; border-style: dashed; color: var(--_muted); }
.msg.streaming .text::after { content: "▍"; animation: blink 1s steps(2, start) infinite; }
@keyframes blink { to { visibility: hidden; } }
.tag { font-size: .75rem; color: var(--_private-border); font-weight: 700; }
.msg button.share { align-self: flex-end; min-height: 44px; }
.composer { display: flex; flex-direction: column; gap: .6rem; }
.private-panel {
  background: var(--_private); border: 2px solid var(--_private-border); border-radius: var(--_radius);
  padding: 1rem; display: flex; flex-direction: column; gap: .6rem;
}
.private-panel .help { white-space: pre-wrap; }
.resources { display: flex; flex-direction: column; gap: .6rem; }
.resource { background: var(--_bg); border-radius: calc(var(--_radius) * .7); padding: .6rem .8rem; border: 1px solid var(--_border); }
.resource .actions { display: flex; flex-wrap: wrap; gap: .4rem; margin-top: .35rem; }
a.action {
  display: inline-flex; align-items: center; min-height: 44px; padding: .45rem .8rem; border-radius: calc(var(--_radius) * .7);
  background: var(--_accent); color: var(--_on-accent); font-weight: 700; text-decoration: none;
}
a.action.secondary { background: transparent; color: var(--_accent); border: 1px solid var(--_accent); }
a { color: var(--_accent); }
.calendar { display: grid; grid-template-columns: repeat(6, 1fr); gap: .3rem; margin: 0; padding: 0; list-style: none; }
@media (min-width: 560px) { .calendar { grid-template-columns: repeat(10, 1fr); } }
.calendar li {
  aspect-ratio: 1 / 1; border-radius: calc(var(--_radius) * .5); border: 1px solid var(--_border);
  display: flex; flex-direction: column; align-items: center; justify-content: center; font-size: .8rem;
  background: var(--_bg); color: var(--_muted); min-height: 2.4rem;
}
.calendar li .mark { font-size: .95rem; line-height: 1; }
.calendar li.done { background: color-mix(in srgb, var(--_accent) 18%, var(--_bg)); color: var(--_fg); border-color: color-mix(in srgb, var(--_accent) 45%, var(--_border)); }
.calendar li.today { outline: 3px solid var(--_accent); outline-offset: 1px; color: var(--_fg); font-weight: 700; }
.stats { display: flex; flex-wrap: wrap; gap: .4rem 1rem; font-size: .9rem; }
.stats b { font-size: 1.05rem; }
progress { width: 100%; height: .6rem; accent-color: var(--_accent); }
.options { display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap: .6rem; }
.option { background: var(--_bg); border: 1px solid var(--_border); border-radius: var(--_radius); padding: .8rem; display: flex; flex-direction: column; gap: .5rem; }
.option h4 { margin: 0; font-size: .95rem; }
.option p { flex: 1; }
.sr { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
@media (max-width: 420px) {
  header.bar { padding: .6rem .75rem; }
  main.view { padding: .75rem; }
  .brand span { display: none; }
  .msg { max-width: 96%; }
}
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important; scroll-behavior: auto !important; }
}
`;

  // ---------------------------------------------------------------- helpers
  /** Build an element. Text children become text nodes: nothing is ever parsed as HTML. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key in el && typeof value !== "string") el[key] = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function readStore() {
    try { return JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {}; } catch { return {}; }
  }
  function writeStore(data) {
    try { localStorage.setItem(STORE_KEY, JSON.stringify(data)); } catch { /* storage may be off */ }
  }
  function clearOwnStorage() {
    for (const area of [safeStorage("localStorage"), safeStorage("sessionStorage")]) {
      if (!area) continue;
      for (let i = area.length - 1; i >= 0; i--) {
        const key = area.key(i);
        if (key && key.startsWith(NS)) area.removeItem(key);
      }
    }
  }
  function safeStorage(name) { try { return window[name]; } catch { return null; } }

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `Request failed (${status})`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  /** Read a text/event-stream body: calls onEvent({event, id, data}) per event and
   *  onComment() per comment line (heartbeats). Resolves when the stream ends. */
  async function readSSE(response, onEvent, onComment) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let block = { data: [] };
    const flushLine = (line) => {
      if (line === "") {
        if (block.data.length || block.event) {
          onEvent({ event: block.event || "message", id: block.id, data: block.data.join("\n") });
        }
        block = { data: [] };
        return;
      }
      if (line.startsWith(":")) { if (onComment) onComment(line.slice(1).trim()); return; }
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") block.data.push(value);
      else if (field === "event") block.event = value;
      else if (field === "id") block.id = value;
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer[nl] === "\r" && buffer[nl + 1] === "\n" ? 2 : 1));
        flushLine(line);
      }
    }
    if (buffer) flushLine(buffer);
    flushLine("");
  }

  function telHref(phone) { return "tel:" + phone.replace(/[^\d+]/g, ""); }
  function smsHref(sms) {
    const m = /text\s+(\S+)\s+to\s+([\d\s-]+)/i.exec(sms);
    if (m) return `sms:${m[2].replace(/\D/g, "")}?body=${encodeURIComponent(m[1])}`;
    const digits = /(\d[\d\s-]*)/.exec(sms);
    return digits ? "sms:" + digits[1].replace(/\D/g, "") : null;
  }
  /** A fresh Idempotency-Key: a retry of the same action sends the same one. */
  function idempotencyKey() { return crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random(); }
  function isHelp(safety) { return !!safety && (safety.severity === "risk" || safety.severity === "danger"); }

  function inviteFromUrl() {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    const query = new URLSearchParams(location.search);
    return (hash.get("coach-invite") || query.get("coach-invite") || "").trim() || null;
  }
  function dropInviteFromUrl() {
    try {
      const url = new URL(location.href);
      url.searchParams.delete("coach-invite");
      const hash = new URLSearchParams(url.hash.replace(/^#/, ""));
      hash.delete("coach-invite");
      const rest = hash.toString();
      url.hash = rest ? "#" + rest : "";
      history.replaceState(history.state, "", url.href);
    } catch { /* not fatal */ }
  }
  function inviteLink(code) {
    const url = new URL(location.href);
    url.searchParams.delete("coach-invite");
    url.hash = "coach-invite=" + encodeURIComponent(code);
    return url.href;
  }

  let sheet = null;
  function styleFor(root) {
    if ("adoptedStyleSheets" in Document.prototype && "replaceSync" in CSSStyleSheet.prototype) {
      if (!sheet) { sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); }
      root.adoptedStyleSheets = [sheet];
    } else {
      root.append(h("style", { text: CSS })); // older browsers; needs style-src to allow it
    }
  }

  // ---------------------------------------------------------------- the element
  class CoachWidget extends HTMLElement {
    constructor() {
      super();
      this.root = this.attachShadow({ mode: "open" });
      styleFor(this.root);
      this.state = readStore();
      this.exercises = [];
      this.session = null;
      this.seen = new Map(); // message id -> element (dedupe across live stream and POST stream)
      this.shared = new Set(); // ids of held messages their author has shared
      this.lastEventId = null;
      this.live = null; // AbortController of the live stream
      this.streaming = null; // {forId, el, textEl}
      this.pollTimer = null;
      this.lastEsc = 0;
      this.onKey = this.onKey.bind(this);
    }

    opt(name) {
      return this.getAttribute(name) || this.getAttribute("data-" + name) || (script && script.getAttribute("data-" + name)) || null;
    }

    connectedCallback() {
      if (this.wrap) return;
      this.exitUrl = this.opt("exit-url") || API + "/neutral";
      this.suggested = this.opt("exercise");
      const title = this.opt("title") || "Coach";
      this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
      this.main = h("main", { class: "view", "aria-labelledby": "coach-title" });
      this.leaveBtn = h("button", { type: "button", class: "link", text: "Leave and delete my data", onclick: () => this.leave() });
      this.wrap = h("div", { class: "wrap" },
        h("header", { class: "bar" },
          h("div", { class: "brand" },
            h("strong", { id: "coach-title", text: title }),
            h("span", { text: "Guided conversations for two" })),
          h("button", {
            type: "button", class: "exit", text: "Quick exit", "aria-keyshortcuts": "Escape",
            title: "Leave this page now (or press Esc twice)", onclick: () => this.quickExit(),
          })),
        this.main,
        h("footer", { class: "foot" },
          h("p", { class: "small", text: "Quick exit (or Esc twice) opens a neutral page. Your browser history may still show this visit." }),
          this.leaveBtn));
      this.root.append(this.wrap);
      document.addEventListener("keydown", this.onKey, true);
      this.start();
    }

    disconnectedCallback() {
      document.removeEventListener("keydown", this.onKey, true);
      this.stopLive();
      this.stopPolling();
    }

    onKey(event) {
      if (event.key !== "Escape") return;
      const now = Date.now();
      if (now - this.lastEsc < 1000) this.quickExit();
      this.lastEsc = now;
    }

    quickExit() {
      this.stopLive();
      clearOwnStorage();
      this.state = {};
      location.replace(this.exitUrl);
    }

    say(text, error = false) {
      this.status.textContent = text || "";
      this.status.className = "status" + (error ? " error" : "");
      this.status.setAttribute("role", error ? "alert" : "status");
    }

    save() { writeStore(this.state); }

    async api(method, path, body, extra = {}) {
      const headers = { Accept: "application/json", ...extra };
      if (this.state.token) headers.Authorization = "Bearer " + this.state.token;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const response = await fetch(API + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit", cache: "no-store",
      });
      if (response.status === 204) return null;
      const type = response.headers.get("content-type") || "";
      const data = type.includes("json") ? await response.json().catch(() => null) : null;
      if (!response.ok) {
        if (response.status === 401 && this.state.token) this.forget("Your session with the coach has ended. Start again when you are ready.");
        throw new ApiError(response.status, data);
      }
      return data;
    }

    forget(message) {
      this.stopLive();
      clearOwnStorage();
      this.state = {};
      this.showWelcome();
      this.say(message);
    }

    setView(...children) {
      this.stopPolling();
      this.main.replaceChildren(this.status, ...children.flat().filter(Boolean));
      this.leaveBtn.hidden = !this.state.token;
    }

    focusFirst(selector) {
      const el = this.root.querySelector(selector);
      if (el) el.focus();
    }

    async start() {
      const code = inviteFromUrl();
      if (code) dropInviteFromUrl();
      if (!this.state.token) { this.showWelcome(code); return; }
      if (this.state.sessionId) {
        try { await this.openSession(this.state.sessionId); return; } catch { delete this.state.sessionId; this.save(); }
      }
      await this.showHome();
    }

    // ------------------------------------------------------------ pairing
    showWelcome(code) {
      const name = h("input", { type: "text", id: "coach-name", name: "name", autocomplete: "given-name", maxlength: "60" });
      const codeInput = h("input", { type: "text", id: "coach-code", name: "code", autocomplete: "off", spellcheck: "false", value: code || "", maxlength: "32" });
      const startBtn = h("button", { type: "submit", class: code ? "" : "primary", text: "Start as a couple" });
      const joinBtn = h("button", { type: "submit", class: code ? "primary" : "", text: "Join my partner" });
      const startForm = h("form", { class: "card", "aria-labelledby": "coach-start-h", onsubmit: (e) => { e.preventDefault(); this.create(name.value); } },
        h("h3", { id: "coach-start-h", text: "Start here" }),
        h("p", { class: "muted small", text: "You will get a link to send to your partner." }),
        startBtn);
      const joinForm = h("form", { class: "card", "aria-labelledby": "coach-join-h", onsubmit: (e) => { e.preventDefault(); this.join(codeInput.value, name.value); } },
        h("h3", { id: "coach-join-h", text: code ? "Your partner invited you" : "Have an invite code?" }),
        h("div", { class: "field" }, h("label", { for: "coach-code", text: "Invite code" }), codeInput),
        joinBtn);
      this.setView(
        h("h2", { text: "Talk it through, together" }),
        h("p", { class: "muted", text: "Short guided conversations for the two of you, with a coach that listens. It is not therapy, and it will point you to real help if you need it." }),
        h("div", { class: "field" },
          h("label", { for: "coach-name" }, "Your first name ", h("span", { class: "hint", text: "Optional; your partner sees it." })),
          name),
        code ? [joinForm, h("div", { class: "divider", text: "or" }), startForm] : [startForm, h("div", { class: "divider", text: "or" }), joinForm],
      );
    }

    async create(name) {
      this.say("Setting things up…");
      try {
        const body = {};
        if (name.trim()) body.display_name = name.trim().slice(0, 60);
        const country = this.opt("country");
        if (country) body.country = country;
        const data = await this.api("POST", "/v1/couples", body);
        this.state = { token: data.token, partnerId: data.partner_id, coupleId: data.couple_id, inviteCode: data.invite_code };
        this.save();
        this.showInvite();
      } catch (err) { this.say(err.message, true); }
    }

    async join(code, name) {
      code = code.trim();
      if (!code) { this.say("Enter the invite code your partner sent you.", true); this.focusFirst("#coach-code"); return; }
      this.say("Joining…");
      try {
        const body = { invite_code: code };
        if (name.trim()) body.display_name = name.trim().slice(0, 60);
        const data = await this.api("POST", "/v1/couples/join", body);
        this.state = { token: data.token, partnerId: data.partner_id, coupleId: data.couple_id, joined: true };
        this.save();
        await this.showHome("You are paired with your partner.");
      } catch (err) {
        this.say(err.status === 404 ? "That invite code is not valid or was already used." : err.message, true);
      }
    }

    inviteCard(full) {
      const link = inviteLink(this.state.inviteCode);
      const linkInput = h("input", { type: "text", id: "coach-invite-link", readOnly: true, value: link, "aria-label": "Invite link" });
      const copy = h("button", {
        type: "button", class: full ? "primary" : "", text: "Copy link",
        onclick: async () => {
          try { await navigator.clipboard.writeText(link); this.say("Link copied. Send it to your partner."); }
          catch { linkInput.select(); this.say("Select the link and copy it."); }
        },
      });
      return h("section", { class: "card", "aria-labelledby": "coach-invite-h" },
        h("h3", { id: "coach-invite-h", text: full ? "Invite your partner" : "Waiting for your partner?" }),
        h("p", { class: "small", text: "Send this link to your partner; it works once. Anyone with it can join you, so send it only to them." }),
        h("div", { class: "row" }, h("div", { class: "grow" }, linkInput), copy),
        h("p", { class: "small" }, "Or tell them the code: ", h("strong", { class: "code", "data-testid": "invite-code", text: this.state.inviteCode })),
        full ? null : h("button", { type: "button", class: "link", text: "Hide this", onclick: () => { this.state.inviteHidden = true; this.save(); this.showHome(); } }));
    }

    showInvite() {
      this.setView(
        h("h2", { text: "You are in. Now invite your partner" }),
        this.inviteCard(true),
        h("button", { type: "button", class: "primary", text: "Choose an exercise", onclick: () => this.showHome() }),
      );
      this.say("");
      this.focusFirst("#coach-invite-link");
    }

    // ------------------------------------------------------------ home: exercises
    async loadExercises() {
      if (!this.exercises.length) this.exercises = (await this.api("GET", "/v1/exercises")).exercises;
      return this.exercises;
    }

    async showHome(message) {
      this.stopLive();
      this.session = null;
      delete this.state.sessionId;
      this.save();
      let exercises = [];
      let sessions = [];
      try {
        [exercises, sessions] = await Promise.all([
          this.loadExercises(),
          this.api("GET", "/v1/sessions").then((d) => d.sessions),
        ]);
      } catch (err) {
        this.setView(h("h2", { text: "Choose an exercise" }));
        this.say(err.message, true);
        return;
      }
      const byId = new Map(exercises.map((e) => [e.id, e]));
      const ordered = [...exercises].sort((a, b) => (b.id === this.suggested) - (a.id === this.suggested));
      const progressList = h("ul", { class: "plain", "aria-label": "In progress" });
      const progressSection = h("section", { class: "stepper", "aria-labelledby": "coach-progress-h" },
        h("h3", { id: "coach-progress-h", text: "In progress" }), progressList);
      const renderSessions = (list) => {
        const active = list.filter((s) => s.status !== "completed" && byId.has(s.exercise_id));
        const seenExercises = new Set();
        progressList.replaceChildren(...active.filter((s) => !seenExercises.has(s.exercise_id) && seenExercises.add(s.exercise_id)).map((s) =>
          h("li", {}, h("button", { type: "button", class: "pick", onclick: () => this.openSession(s.session_id) },
            h("strong", { text: "Continue: " + byId.get(s.exercise_id).title }),
            h("span", { class: "meta", text: s.status === "paused" ? "Paused for now" : `Step ${s.step.number} of ${s.step_count}: ${s.step.title}` })))));
        progressSection.hidden = !progressList.children.length;
      };
      renderSessions(sessions);
      this.sessions = sessions;
      const cards = ordered.map((e) => h("li", {},
        h("button", { type: "button", class: "pick", "data-exercise": e.id, onclick: () => this.pick(e.id) },
          h("span", { class: "topline" }, h("strong", { text: e.title }), e.id === this.suggested ? h("span", { class: "badge", text: "Suggested" }) : null),
          h("span", { text: e.summary }),
          h("span", { class: "meta", text: [e.mode === "solo" ? "On your own" : "Together", e.duration].filter(Boolean).join(" · ") }))));
      this.setView(
        this.state.inviteCode && !this.state.inviteHidden ? this.inviteCard(false) : null,
        progressSection,
        h("section", { class: "stepper", "aria-labelledby": "coach-pick-h" },
          h("h2", { id: "coach-pick-h", text: "Choose an exercise" }),
          h("ul", { class: "plain exercises" }, cards)),
      );
      this.say(message || "");
      // A partner may start an exercise meanwhile: show it without a reload.
      this.pollTimer = setInterval(async () => {
        try {
          const list = (await this.api("GET", "/v1/sessions")).sessions;
          this.sessions = list;
          renderSessions(list);
        } catch { /* next time */ }
      }, 4000);
    }

    stopPolling() { if (this.pollTimer) { clearInterval(this.pollTimer); this.pollTimer = null; } }

    async pick(exerciseId) {
      try {
        const sessions = (await this.api("GET", "/v1/sessions")).sessions;
        // Join the couple's running round of this exercise rather than starting a second one.
        const running = sessions.find((s) => s.exercise_id === exerciseId && s.status !== "completed");
        if (running) { await this.openSession(running.session_id); return; }
        const created = await this.api("POST", "/v1/sessions", { exercise_id: exerciseId }, { "Idempotency-Key": idempotencyKey() });
        await this.openSession(created.session_id);
      } catch (err) { this.say(err.message, true); }
    }

    // ------------------------------------------------------------ a session
    async openSession(sessionId) {
      this.stopLive();
      const [session, exercises] = await Promise.all([this.api("GET", "/v1/sessions/" + encodeURIComponent(sessionId)), this.loadExercises()]);
      this.session = session;
      this.exercise = exercises.find((e) => e.id === session.exercise_id) || { title: session.exercise_id, steps: [session.step] };
      this.state.sessionId = session.session_id;
      this.save();
      this.seen = new Map();
      this.shared = new Set();
      this.streaming = null;
      this.privateHelp = null;

      this.stepBox = h("section", { class: "stepper", "aria-labelledby": "coach-step-h" });
      this.banner = h("p", { class: "banner", hidden: true });
      this.privatePanel = h("section", { class: "private-panel", "aria-labelledby": "coach-private-h", hidden: true, "data-testid": "private-panel" });
      this.log = h("ol", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions", "aria-label": "Conversation", "data-empty": "No messages yet. Start whenever you are ready." });
      this.composer = h("form", { class: "composer", "aria-label": "Send a message", onsubmit: (e) => { e.preventDefault(); this.send(); } });
      this.challengeBox = session.exercise_id === CHALLENGE ? h("section", { class: "card", "aria-labelledby": "coach-challenge-h" }) : null;

      this.setView(
        h("div", { class: "row" },
          h("button", { type: "button", class: "link", text: "← All exercises", onclick: () => this.showHome() })),
        h("h2", { text: this.exercise.title }),
        this.stepBox,
        this.challengeBox,
        this.privatePanel,
        this.banner,
        this.log,
        this.composer,
      );
      this.say("");
      this.renderSession();
      if (this.challengeBox) this.loadChallenge();
      const transcript = await this.api("GET", `/v1/sessions/${encodeURIComponent(session.session_id)}/messages?limit=200`);
      for (const m of transcript.messages) this.addMessage(m);
      this.lastEventId = transcript.last_event_id || null;
      this.startLive();
    }

    renderSession() {
      const s = this.session;
      const steps = this.exercise.steps || [];
      const n = s.step.number;
      const m = s.step_count;
      const dots = h("ol", { class: "dots", "aria-hidden": "true" },
        Array.from({ length: m }, (_, i) => h("li", { class: i + 1 < n || s.status === "completed" ? "done" : i + 1 === n ? "current" : "" })));
      this.stepBox.replaceChildren(
        h("p", { class: "muted small", "data-testid": "step-count", text: `Step ${n} of ${m}` }),
        dots,
        h("h3", { id: "coach-step-h", text: s.step.title }),
        h("p", { "data-testid": "step-invite", text: s.step.invite }),
      );
      void steps;
      if (s.status === "paused") {
        this.banner.textContent = "This exercise is paused for now.";
        this.banner.hidden = false;
      } else if (s.status === "completed") {
        this.banner.textContent = "You finished this exercise. Well done, both of you.";
        this.banner.hidden = false;
      } else {
        this.banner.hidden = true;
      }
      this.renderComposer();
    }

    renderComposer() {
      const s = this.session;
      const busy = !!this.streaming;
      if (s.status !== "active") {
        this.composer.replaceChildren(h("button", { type: "button", class: "primary", text: "Choose another exercise", onclick: () => this.showHome() }));
        return;
      }
      const key = `${s.step.id}|${busy}`;
      if (this.composer.dataset.key === key) return;
      this.composer.dataset.key = key;
      if (s.exercise_id === RBT && s.step.id === "share") {
        const field = (id, label, hint) => h("div", { class: "field" },
          h("label", { for: "coach-" + id }, label, h("span", { class: "hint", text: hint })),
          h("input", { type: "text", id: "coach-" + id, name: id, autocomplete: "off", maxlength: "1200" }));
        this.composer.replaceChildren(
          field("rose", "Rose", "Something good that happened"),
          field("bud", "Bud", "Something you look forward to"),
          field("thorn", "Thorn", "A small difficulty"),
          h("button", { type: "submit", class: "primary", text: "Share with your partner", disabled: busy }));
      } else {
        this.composer.replaceChildren(
          h("div", { class: "field" },
            h("label", { for: "coach-text", text: "Your message" }),
            h("textarea", { id: "coach-text", name: "text", rows: 3, maxlength: "4000",
              onkeydown: (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this.send(); } } })),
          h("div", { class: "row" },
            h("button", { type: "submit", class: "primary", text: "Send", disabled: busy }),
            h("span", { class: "muted small", text: "Ctrl+Enter sends" })));
      }
    }

    composedText() {
      const q = (sel) => this.composer.querySelector(sel);
      if (q("#coach-rose")) {
        const parts = [["Rose", "#coach-rose"], ["Bud", "#coach-bud"], ["Thorn", "#coach-thorn"]];
        const values = parts.map(([label, sel]) => [label, q(sel).value.trim()]);
        if (!values.some(([, v]) => v)) return "";
        return values.map(([label, v]) => `${label}: ${v || "—"}`).join("\n");
      }
      return (q("#coach-text") || { value: "" }).value.trim();
    }

    clearComposer() { for (const el of this.composer.querySelectorAll("input, textarea")) el.value = ""; }

    who(m) {
      if (m.kind === "notice" || m.author === "coach") return "Coach";
      if (m.mine) return "You";
      return m.display_name || "Your partner";
    }

    /** Add a message once (by id); a coach reply may take over the bubble being streamed. */
    addMessage(m) {
      if (this.seen.has(m.id)) {
        const el = this.seen.get(m.id);
        if (el && m.text) el.querySelector(".text").textContent = m.text;
        return;
      }
      if (m.kind === "reply" && m.private && isHelp(m.safety)) {
        this.seen.set(m.id, null);
        this.showPrivateHelp(m.text, m.safety);
        if (this.streaming && this.streaming.forId === m.in_reply_to) { this.streaming.el.remove(); this.streaming.adopted = m.id; }
        return;
      }
      if (m.kind === "reply" && this.streaming && this.streaming.forId && m.in_reply_to === this.streaming.forId && !this.streaming.adopted) {
        const el = this.streaming.el;
        el.querySelector(".text").textContent = m.text;
        this.streaming.adopted = m.id;
        this.seen.set(m.id, el);
        el.dataset.id = m.id;
        return;
      }
      const el = this.bubble(m);
      this.seen.set(m.id, el);
      this.log.append(el);
      this.scrollDown();
      if (m.mine && m.private && isHelp(m.safety)) this.showPrivateHelp(null, m.safety);
      if (m.shares) this.markShared(m.shares);
    }

    bubble(m) {
      const classes = ["msg", m.kind === "notice" ? "notice" : m.author === "coach" ? "coach" : "partner"];
      if (m.mine) classes.push("mine");
      if (m.private && m.kind !== "notice") classes.push("private");
      // A held message (the safety check kept it private): its author may share it.
      const share = m.held && m.mine && !this.shared.has(m.id)
        ? h("button", { type: "button", class: "share", "data-testid": "share-held", text: "Share it", onclick: (ev) => this.shareHeld(m.id, ev.currentTarget) })
        : null;
      const el = h("li", { class: classes.join(" "), "data-id": m.id || "", "data-kind": m.kind },
        h("span", { class: "who", text: this.who(m) }),
        h("p", { class: "text", text: m.text }),
        m.private && m.kind !== "notice" ? h("span", { class: "tag", text: m.held && this.shared.has(m.id) ? "Shared" : "Only you can see this" }) : null,
        share);
      this.addHeldResources(el, m);
      return el;
    }

    /** The held message ``id`` was shared: no button, and its tag says so. */
    markShared(id) {
      this.shared.add(id);
      const el = this.seen.get(id);
      if (!el) return;
      const button = el.querySelector("button.share");
      if (button) button.remove();
      const tag = el.querySelector(".tag");
      if (tag) tag.textContent = "Shared";
    }

    async shareHeld(id, button) {
      if (this.streaming || !this.session) return;
      button.disabled = true;
      const key = idempotencyKey();
      const path = `/v1/sessions/${encodeURIComponent(this.session.session_id)}/messages/${encodeURIComponent(id)}/share`;
      try {
        const result = await this.api("POST", path, undefined, { "Idempotency-Key": key });
        this.addMessage(result.message);
        this.addMessage(result.reply);
        if (result.session) { this.session = result.session; this.renderSession(); }
      } catch (e) {
        button.disabled = false;
        this.say(e.message || "The message could not be shared.", true);
        if (e.problem && e.problem.type && e.problem.type.endsWith("not-held")) this.markShared(id);
      }
    }

    scrollDown() {
      const reduce = matchMedia("(prefers-reduced-motion: reduce)").matches;
      this.log.scrollTo({ top: this.log.scrollHeight, behavior: reduce ? "auto" : "smooth" });
    }

    /** Help lines as tap-to-call / text / website actions, or null when there are none. */
    resourceList(safety) {
      const resources = (safety && safety.resources) || [];
      if (!resources.length) return null;
      const items = resources.map((r) => {
        const actions = [];
        if (r.phone) actions.push(h("a", { class: "action", href: telHref(r.phone), text: "Call " + r.phone }));
        const sms = r.sms ? smsHref(r.sms) : null;
        if (sms) actions.push(h("a", { class: "action secondary", href: sms, text: r.sms.replace(/^text\s+/i, "Text ") }));
        if (r.url) actions.push(h("a", { class: "action secondary", href: r.url, target: "_blank", rel: "noopener noreferrer", text: "Website" }));
        return h("li", { class: "resource" },
          h("strong", { text: r.name }),
          r.hours || r.note ? h("p", { class: "small muted", text: [r.hours, r.note].filter(Boolean).join(" · ") }) : null,
          h("div", { class: "actions" }, actions));
      });
      return h("ul", { class: "plain resources", "aria-label": "Where to get help" }, items);
    }

    /** The private check on a held message carries its help lines as actions, once. */
    addHeldResources(el, m) {
      if (!(m.template && m.template.id === "help.held") || el.querySelector(".resources")) return;
      const list = this.resourceList(m.safety);
      if (list) el.append(list);
    }

    showPrivateHelp(text, safety) {
      if (text) this.privateHelp = text;
      const list = this.resourceList(safety);
      this.privatePanel.replaceChildren(
        h("h3", { id: "coach-private-h", text: "Just for you" }),
        h("p", { class: "small", text: "Your partner cannot see what you wrote or this message. The shared exercise is paused; they only see that it is paused." }),
        this.privateHelp ? h("p", { class: "help", text: this.privateHelp }) : null,
        list,
        h("p", { class: "small muted", text: "Need to leave fast? Use Quick exit at the top, or press Esc twice." }));
      this.privatePanel.hidden = false;
    }

    async send() {
      if (this.streaming || !this.session || this.session.status !== "active") return;
      const text = this.composedText();
      if (!text) { this.say("Write something before sending.", true); return; }
      this.say("");
      const sessionId = this.session.session_id;
      const key = idempotencyKey();
      const el = h("li", { class: "msg coach streaming", "aria-busy": "true" }, h("span", { class: "who", text: "Coach" }), h("p", { class: "text" }));
      this.streaming = { forId: null, el, adopted: null };
      this.renderComposer();
      let response;
      try {
        response = await fetch(`${API}/v1/sessions/${encodeURIComponent(sessionId)}/messages`, {
          method: "POST",
          headers: { Accept: "text/event-stream", "Content-Type": "application/json", Authorization: "Bearer " + this.state.token, "Idempotency-Key": key },
          body: JSON.stringify({ text }),
          credentials: "omit",
          cache: "no-store",
        });
      } catch {
        this.streaming = null; this.renderComposer();
        this.say("Could not reach the coach. Check your connection and try again.", true);
        return;
      }
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        this.streaming = null; this.renderComposer();
        this.say(problem.detail || problem.title || "The message could not be sent.", true);
        if (problem.type && problem.type.endsWith("session-paused")) await this.refreshSession();
        return;
      }
      this.clearComposer();
      const textEl = el.querySelector(".text");
      let finished = false;
      try {
        await readSSE(response, (ev) => {
          let data = {};
          try { data = JSON.parse(ev.data || "{}"); } catch { return; }
          if (ev.event === "message") {
            this.streaming.forId = data.id;
            this.addMessage(data);
            if (!this.streaming.adopted && !el.isConnected) { this.log.append(el); this.scrollDown(); }
          } else if (ev.event === "safety") {
            if (isHelp(data)) { this.privateSafety = data; el.remove(); this.streaming.help = ""; }
          } else if (ev.event === "delta") {
            if (this.streaming.help !== undefined) { this.streaming.help += data.text || ""; return; }
            if (this.streaming.adopted) return;
            textEl.textContent += data.text || "";
            this.scrollDown();
          } else if (ev.event === "replace") {
            if (this.streaming.help !== undefined) { this.streaming.help = data.text || ""; return; }
            if (!this.streaming.adopted) textEl.textContent = data.text || "";
          } else if (ev.event === "error") {
            this.say(data.detail || data.title || "The coach ran into a problem.", true);
          } else if (ev.event === "done") {
            finished = true;
            this.finishReply(data);
          }
        });
      } catch {
        this.say("The connection dropped; the coach's reply will appear when it is ready.", true);
      }
      if (!finished) { el.classList.remove("streaming"); el.removeAttribute("aria-busy"); }
      this.streaming = null;
      this.renderComposer();
      if (!finished) this.refreshSession();
    }

    finishReply(result) {
      const el = this.streaming.el;
      el.classList.remove("streaming");
      el.removeAttribute("aria-busy");
      const reply = result.reply;
      if (reply.private && isHelp(reply.safety)) {
        el.remove();
        if (!this.seen.has(reply.id)) this.seen.set(reply.id, null);
        this.showPrivateHelp(reply.text, reply.safety);
      } else if (this.seen.has(reply.id) && this.seen.get(reply.id) !== el) {
        el.remove(); // the live stream delivered it first
      } else {
        el.querySelector(".text").textContent = reply.text;
        el.dataset.id = reply.id;
        if (reply.private) { el.classList.add("private"); el.append(h("span", { class: "tag", text: "Only you can see this" })); }
        this.addHeldResources(el, reply);
        this.seen.set(reply.id, el);
        if (!el.isConnected) this.log.append(el);
      }
      if (result.message) this.addMessage(result.message);
      if (result.session) { this.session = result.session; this.renderSession(); }
      if (this.challengeBox) this.loadChallenge();
    }

    async refreshSession() {
      if (!this.session) return;
      try {
        const s = await this.api("GET", "/v1/sessions/" + encodeURIComponent(this.session.session_id));
        if (!this.session || s.session_id !== this.session.session_id) return;
        const changed = s.status !== this.session.status || s.step.number !== this.session.step.number;
        this.session = s;
        if (changed) this.renderSession();
      } catch { /* shown on the next action */ }
    }

    // ------------------------------------------------------------ live events
    startLive() {
      const session = this.session;
      const controller = new AbortController();
      this.live = controller;
      let backoff = 1000;
      let refreshTimer = null;
      const loop = async () => {
        while (!controller.signal.aborted && this.session === session) {
          let watchdog = null;
          const kick = () => {
            clearTimeout(watchdog);
            watchdog = setTimeout(() => attempt.abort(), 45000); // no heartbeat: reconnect
          };
          const attempt = new AbortController();
          const onAbort = () => attempt.abort();
          controller.signal.addEventListener("abort", onAbort);
          try {
            const headers = { Accept: "text/event-stream", Authorization: "Bearer " + this.state.token };
            if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
            const response = await fetch(`${API}/v1/sessions/${encodeURIComponent(session.session_id)}/events`, {
              headers, signal: attempt.signal, credentials: "omit", cache: "no-store",
            });
            if (response.status === 401 || response.status === 404) { controller.abort(); break; }
            if (!response.ok || !response.body) throw new Error("live stream refused");
            backoff = 1000;
            kick();
            await readSSE(response, (ev) => {
              kick();
              if (ev.id) this.lastEventId = ev.id;
              if (!["message", "reply", "notice"].includes(ev.event)) return;
              let m;
              try { m = JSON.parse(ev.data); } catch { return; }
              this.addMessage(m);
              clearTimeout(refreshTimer);
              refreshTimer = setTimeout(() => { this.refreshSession(); if (this.challengeBox) this.loadChallenge(); }, 150);
            }, kick);
          } catch { /* reconnect below */ }
          clearTimeout(watchdog);
          controller.signal.removeEventListener("abort", onAbort);
          if (controller.signal.aborted) break;
          await new Promise((resolve) => {
            const t = setTimeout(resolve, backoff);
            const wake = () => { clearTimeout(t); resolve(); };
            window.addEventListener("online", wake, { once: true });
            controller.signal.addEventListener("abort", wake, { once: true });
          });
          backoff = Math.min(backoff * 2, 15000);
        }
      };
      loop();
    }

    stopLive() { if (this.live) { this.live.abort(); this.live = null; } }

    // ------------------------------------------------------------ the 30-day challenge
    async loadChallenge() {
      const box = this.challengeBox;
      if (!box) return;
      let progress;
      try { progress = await this.api("GET", "/v1/challenge"); }
      catch (err) {
        if (err.status !== 404) { this.say(err.message, true); return; }
        if (err.problem.type === "/problems/not-approved") { box.replaceChildren(); return; }
        box.replaceChildren(
          h("h3", { id: "coach-challenge-h", text: "30-day challenge" }),
          h("p", { text: "One small activity a day for 30 days, to pick from two: one through words, one through touch. Missing a day is fine; momentum matters more than a perfect streak." }),
          h("button", { type: "button", class: "primary", text: "Start the 30 days", onclick: async () => {
            try { this.renderChallenge(await this.api("POST", "/v1/challenge")); } catch (e) { this.say(e.message, true); }
          } }));
        return;
      }
      this.renderChallenge(progress);
    }

    renderChallenge(p) {
      const box = this.challengeBox;
      const todayCell = p.finished ? (p.done_today ? 30 : null) : p.done_today ? p.day - 1 : p.day;
      const label = { emotional: "words", physical: "touch" };
      const mark = { emotional: "♡", physical: "✋" };
      const cells = Array.from({ length: 30 }, (_, i) => {
        const day = i + 1;
        const choice = p.choices[String(day)];
        const classes = [choice ? "done" : "", day === todayCell ? "today" : ""].filter(Boolean).join(" ");
        const name = `Day ${day}` + (choice ? `, done: ${label[choice]}` : "") + (day === todayCell ? ", today" : "");
        return h("li", { class: classes, "aria-label": name, title: name, "aria-current": day === todayCell ? "date" : false, "data-day": day, "data-choice": choice || false },
          h("span", { "aria-hidden": "true", text: String(day) }),
          choice ? h("span", { class: "mark", "aria-hidden": "true", text: mark[choice] }) : null);
      });
      const t = p.today;
      const option = (kind, title, text) => h("div", { class: "option" },
        h("h4", { text: title }), h("p", { text }),
        p.done_today || p.finished ? null : h("button", { type: "button", class: "primary", "data-choice": kind, text: kind === "emotional" ? "We did the words one" : "We did the touch one",
          onclick: () => this.completeDay(p.day, kind) }));
      let dayBlock;
      if (p.finished) {
        dayBlock = h("p", { class: "banner", "data-testid": "challenge-day", text: "All 30 days done. Whatever you keep from them is yours." });
      } else if (p.done_today) {
        const doneChoice = p.choices[String(p.day - 1)];
        dayBlock = h("div", { class: "stepper", "data-testid": "challenge-day" },
          h("p", { class: "banner", text: `Day ${p.day - 1} is done: you chose ${label[doneChoice] || "an activity"}. See you tomorrow.` }),
          h("h4", { text: `Tomorrow, day ${t.day}: ${t.phase_title}` }),
          h("div", { class: "options" }, option("emotional", "Through words", t.emotional), option("physical", "Through touch", t.physical)));
      } else {
        dayBlock = h("div", { class: "stepper", "data-testid": "challenge-day" },
          h("h4", { text: `Today, day ${t.day}: ${t.phase_title}` }),
          h("p", { class: "small muted", text: "Pick one of the two; either counts." }),
          h("div", { class: "options" }, option("emotional", "Through words", t.emotional), option("physical", "Through touch", t.physical)));
      }
      box.replaceChildren(
        h("h3", { id: "coach-challenge-h", text: "30-day challenge" }),
        h("div", { class: "stats", "data-testid": "challenge-stats" },
          h("span", {}, h("b", { text: String(p.completed_days) }), " of 30 days done"),
          h("span", {}, "Streak ", h("b", { text: String(p.streak) })),
          h("span", {}, "Missed ", h("b", { text: String(p.missed_days) }))),
        h("progress", { max: 30, value: p.completed_days, "aria-label": `${p.completed_days} of 30 days done` }),
        h("ol", { class: "calendar", "aria-label": "The 30 days" }, cells),
        dayBlock);
    }

    async completeDay(day, choice) {
      try {
        const p = await this.api("POST", `/v1/challenge/days/${day}`, { choice });
        this.renderChallenge(p);
        this.say(`Day ${day} done. Nice work, you two.`);
      } catch (err) {
        this.say(err.message, true);
        this.loadChallenge();
      }
    }

    // ------------------------------------------------------------ leaving
    async leave() {
      this.say("Deleting your data…");
      try { await this.api("DELETE", "/v1/me"); }
      catch (err) { if (err.status !== 401) { this.say(err.message, true); return; } }
      this.stopLive();
      clearOwnStorage();
      this.state = {};
      this.showWelcome();
      this.say("Your data was deleted from the coach and from this browser.");
    }
  }

  if (!customElements.get("coach-widget")) customElements.define("coach-widget", CoachWidget);

  // Mount: fill an existing <coach-widget>, or add one right after this script tag.
  function mount() {
    if (document.querySelector("coach-widget")) return;
    const el = document.createElement("coach-widget");
    if (script && script.parentNode && script.parentNode !== document.head) script.after(el);
    else document.body.append(el);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
