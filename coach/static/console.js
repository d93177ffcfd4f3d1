// Coach counselor console. No framework, no inline script (CSP script-src 'self');
// every text from the server goes through textContent, never innerHTML.
"use strict";

(() => {
  const KEY = "coach.counselor.token";
  const $ = (sel) => document.querySelector(sel);
  let me = null;
  let templates = [];
  let current = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // replaceChildren with arrays flattened and nulls dropped.
  function fill(node, ...children) {
    node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
  }

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = res.status === 204 ? null : await res.json();
    if (!res.ok) {
      const err = new Error((data && (data.detail || data.title)) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  const badge = (status) => el("span", { class: "badge " + status, "data-status": status }, status);

  // ------------------------------------------------------------------ login
  async function signIn(token) {
    sessionStorage.setItem(KEY, token);
    try {
      me = await api("GET", "/v1/review/me");
    } catch (err) {
      sessionStorage.removeItem(KEY);
      throw err;
    }
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#who").hidden = false;
    $("#who-name").textContent = me.name + " (" + me.role + ")";
    document.querySelectorAll("[data-admin]").forEach((n) => { n.hidden = me.role !== "admin"; });
    await loadTemplates();
  }

  function signOut() {
    sessionStorage.removeItem(KEY);
    location.reload();
  }

  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const error = $("#login-error");
    error.hidden = true;
    try {
      await signIn($("#token").value.trim());
      $("#token").value = "";
    } catch (err) {
      error.textContent = err.status === 403 || err.status === 401
        ? "That token was not accepted: " + err.message
        : "Could not sign in: " + err.message;
      error.hidden = false;
    }
  });
  $("#logout").addEventListener("click", signOut);

  // ------------------------------------------------------------------ tabs
  document.querySelectorAll(".tabs button").forEach((btn) => {
    btn.addEventListener("click", async () => {
      document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("active", b === btn));
      document.querySelectorAll(".tab").forEach((t) => { t.hidden = t.id !== "tab-" + btn.dataset.tab; });
      if (btn.dataset.tab === "counselors") await loadCounselors();
      if (btn.dataset.tab === "audit") await loadAudit();
    });
  });

  // ------------------------------------------------------------------ templates
  async function loadTemplates() {
    const data = await api("GET", "/v1/review/templates");
    templates = data.templates;
    $("#serving-mode").textContent = data.allow_drafts ? "drafts allowed (development)" : "approved only";
    renderList();
  }

  function renderList() {
    const filter = $("#status-filter").value;
    const list = $("#template-list");
    fill(list,
      ...templates
        .filter((t) => !filter || t.status === filter)
        .map((t) =>
          el("li", { class: current === t.id ? "selected" : "" },
            el("button", { type: "button", class: "link", "data-template": t.id, onclick: () => openTemplate(t.id) },
              t.id),
            " ", badge(t.status)))
    );
  }
  $("#status-filter").addEventListener("change", renderList);

  function highlighted(segments) {
    return el("pre", { class: "text", id: "template-text" },
      segments.map((s) => (s.variable ? el("mark", { class: "var" }, s.text) : s.text)));
  }

  function previewBlock(t, p) {
    const modelOut = el("div", { class: "model-out", "data-example": p.index });
    const ask = el("button", {
      type: "button",
      class: "ask-model",
      onclick: async () => {
        ask.disabled = true;
        fill(modelOut, el("p", { class: "muted" }, "Asking…"));
        try {
          const r = await api("POST", "/v1/review/templates/" + encodeURIComponent(t.id) + "/preview",
            { example: p.index, message: $("#sample-message").value || undefined });
          fill(modelOut,
            r.model_reply !== null
              ? el("div", {}, el("h5", {}, "Model reply (" + r.model + ")"), el("p", { class: "reply" }, r.model_reply))
              : null,
            r.note ? el("p", { class: "muted note" }, r.note) : null);
        } catch (err) {
          fill(modelOut, el("p", { class: "error" }, err.message));
        } finally {
          ask.disabled = false;
        }
      },
    }, "What would the model reply?");
    return el("section", { class: "example", "data-example": p.index },
      el("h4", {}, "Example " + (p.index + 1)),
      el("p", { class: "context" }, Object.entries(p.context).map(([k, v]) =>
        el("code", {}, k + " = " + JSON.stringify(v)))),
      el("h5", {}, "Rendered"),
      el("pre", { class: "rendered" }, p.rendered),
      p.scripted !== null
        ? el("div", {}, el("h5", {}, "Offline reply (scripted line)"), el("p", { class: "reply scripted" }, p.scripted))
        : null,
      Object.entries(p.fields).length
        ? el("details", {}, el("summary", {}, "Other fields"),
          Object.entries(p.fields).map(([k, v]) => el("div", {}, el("h6", {}, k), el("pre", {}, v))))
        : null,
      ask, modelOut);
  }

  function diffBlock(d) {
    return el("section", { id: "diff" },
      el("h3", {}, "Changes since the last approved version"),
      el("p", { class: "muted" }, d.note),
      d.lines.length
        ? el("pre", { class: "diff" }, d.lines.map((line) => el("span", {
            class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@") ? "hunk" : "",
          }, line + "\n")))
        : null);
  }

  function historyBlock(records) {
    if (!records.length) return el("p", { class: "muted" }, "No decisions yet.");
    return el("table", { class: "history" },
      el("tr", {}, ["When", "Who", "Version", "Decision", "Comment"].map((h) => el("th", {}, h))),
      records.slice().reverse().map((r) => el("tr", {},
        el("td", {}, r.at), el("td", {}, r.by), el("td", {}, el("code", {}, r.version)),
        el("td", {}, badge(r.decision)), el("td", {}, r.comment))));
  }

  function decisionForm(t) {
    const comment = el("textarea", { id: "decision-comment", rows: 3, placeholder: "Comment (required when requesting changes)" });
    const result = el("p", { id: "decision-result", role: "status" });
    const decide = async (decision) => {
      try {
        const r = await api("POST", "/v1/review/templates/" + encodeURIComponent(t.template.id) + "/decisions",
          { version: t.template.version, decision, comment: comment.value });
        result.className = "notice";
        result.textContent = "Recorded: " + decision.replace("_", " ") + " for " + t.template.id + "@" + r.record.version +
          (r.served ? " — the coach serves this version now." : " — the coach does not serve this version.");
        await loadTemplates();
        await openTemplate(t.template.id, result.textContent);
      } catch (err) {
        result.className = "error";
        result.textContent = err.message;
      }
    };
    return el("section", { id: "decide" },
      el("h3", {}, "Your decision on version " + t.template.version),
      comment,
      el("div", { class: "buttons" },
        el("button", { type: "button", id: "approve", class: "primary", onclick: () => decide("approved") }, "Approve"),
        el("button", { type: "button", id: "request-changes", onclick: () => decide("changes_requested") }, "Request changes"),
        el("button", { type: "button", id: "retire", class: "danger", onclick: () => decide("retired") }, "Retire")),
      result);
  }

  async function openTemplate(id, message) {
    current = id;
    renderList();
    const t = await api("GET", "/v1/review/templates/" + encodeURIComponent(id));
    const s = t.template;
    fill($("#template-detail"),
      el("h2", { id: "detail-title" }, s.id, " ", badge(s.status)),
      el("p", { class: "meta" },
        "version ", el("code", { id: "detail-version" }, s.version), " · ", s.kind,
        s.exercise ? " in " + s.exercise : "", " · ", s.source, " · ",
        s.served ? "served to couples" : "not served"),
      el("p", {}, s.description),
      el("p", { id: "counts", class: "counts" },
        el("strong", {}, String(t.counts.replies)), " replies from this version; ",
        el("strong", {}, String(t.counts.replaced)), " replaced by the safety layer."),
      message ? el("p", { class: "notice" }, message) : null,
      el("h3", {}, "Text"),
      el("p", { class: "muted vars" }, "Variables: ", t.variables.length ? t.variables.map((v) => el("mark", { class: "var" }, v)) : "none"),
      highlighted(t.segments),
      Object.keys(t.extra).length
        ? el("details", {}, el("summary", {}, "Other reviewed fields (" + Object.keys(t.extra).join(", ") + ")"),
          Object.entries(t.extra).map(([k, v]) => el("div", {}, el("h6", {}, k), el("pre", {}, v))))
        : null,
      el("h3", {}, "Previews"),
      el("label", { for: "sample-message" }, "Sample message for the model"),
      el("input", { id: "sample-message", value: "I want us to talk more, but I never know how to start." }),
      t.previews.map((p) => previewBlock(t.template, p)),
      diffBlock(t.diff),
      decisionForm(t),
      el("h3", {}, "History"),
      historyBlock(t.history));
  }

  // ------------------------------------------------------------------ safety tester
  function markSignals(text, signals) {
    const sorted = signals.slice().sort((a, b) => a.start - b.start);
    const out = [];
    let at = 0;
    for (const s of sorted) {
      if (s.start < at) continue; // overlapping: the first one wins
      out.push(text.slice(at, s.start));
      out.push(el("mark", { class: "signal " + s.severity, title: s.category + " (" + s.severity + ")" },
        text.slice(s.start, s.end)));
      at = s.end;
    }
    out.push(text.slice(at));
    return el("p", { class: "scanned", id: "scanned-text" }, out);
  }

  $("#safety-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("#safety-text").value;
    const box = $("#safety-result");
    try {
      const r = await api("POST", "/v1/review/safety", { text });
      fill(box,
        el("p", {}, "Severity: ", el("span", { id: "severity", class: "badge sev-" + r.severity }, r.severity),
          " · categories: ", el("span", { id: "categories" }, r.categories.join(", ") || "none"),
          el("span", { class: "muted" }, " · policy " + r.policy_version)),
        markSignals(text, r.signals),
        r.signals.length
          ? el("table", {}, el("tr", {}, ["Signal", "Category", "Severity", "Matched"].map((h) => el("th", {}, h))),
            r.signals.map((s) => el("tr", {}, el("td", {}, s.id), el("td", {}, s.category), el("td", {}, s.severity),
              el("td", {}, s.text))))
          : null,
        el("h3", {}, "What a person would get, by country"),
        el("div", { class: "countries" }, r.help.map((h) => el("section", { class: "country", "data-country": h.country },
          el("h4", {}, h.country_name + " (" + h.country + ")"),
          h.template ? el("p", { class: "meta" }, h.template + "@" + h.version + " ", badge(h.status)) : null,
          h.text ? el("pre", { class: "help-text" }, h.text) : null,
          h.note ? el("p", { class: "muted" }, h.note) : null,
          h.resources.length
            ? el("ul", {}, h.resources.map((res) => el("li", {}, Object.values(res).filter((v) => v).join(" · "))))
            : null))));
    } catch (err) {
      fill(box, el("p", { class: "error" }, err.message));
    }
  });

  // ------------------------------------------------------------------ admin
  async function loadCounselors() {
    const data = await api("GET", "/v1/review/counselors");
    fill($("#counselor-table"),
      el("tr", {}, ["Name", "Role", "Since", "State", ""].map((h) => el("th", {}, h))),
      data.counselors.map((c) => el("tr", {},
        el("td", {}, c.name), el("td", {}, c.role), el("td", {}, c.created_at),
        el("td", {}, c.disabled ? "disabled" : "active"),
        el("td", {}, c.disabled || c.id === me.id ? "" : el("button", {
          type: "button",
          onclick: async () => { await api("POST", "/v1/review/counselors/" + c.id + "/disable"); await loadCounselors(); },
        }, "Disable")))));
  }

  $("#counselor-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api("POST", "/v1/review/counselors", { name: $("#counselor-name").value, role: $("#counselor-role").value });
    const note = $("#new-token");
    fill(note, "Token for " + r.counselor.name + " (shown once, pass it on now): ", el("code", {}, r.token));
    note.hidden = false;
    $("#counselor-name").value = "";
    await loadCounselors();
  });

  async function loadAudit() {
    const data = await api("GET", "/v1/review/audit");
    fill($("#audit-table"),
      el("tr", {}, ["When", "Who", "Action", "Target", "Detail"].map((h) => el("th", {}, h))),
      data.entries.slice().reverse().map((e) => el("tr", {},
        el("td", {}, e.at), el("td", {}, e.actor), el("td", {}, e.action), el("td", {}, el("code", {}, e.target)),
        el("td", {}, e.detail.comment || e.detail.name || ""))));
  }

  // ------------------------------------------------------------------ start
  const saved = sessionStorage.getItem(KEY);
  if (saved) signIn(saved).catch(() => { $("#login").hidden = false; });
})();
