"use strict";
// The dashboard's client: every page reads the same HTTP API any caller can, with a bearer
// token the user gives (kept in this tab's sessionStorage, never in a cookie or the URL),
// and refreshes itself every few seconds. Charts are Plotly, served from the installed
// `plotly` Python package: no request leaves the machine the dashboard is served from.
const Signpost = (() => {
  const TOKEN_KEY = "signpost.dashboard.token";
  const byId = (id) => document.getElementById(id);
  const vocabulary = JSON.parse(byId("vocabulary").textContent);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // `signpost run` prints a link carrying a token in the fragment (never sent to a server).
  function takeTokenFromFragment() {
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token.trim());
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  // For display only: the server verifies the token on every request.
  function claims() {
    try {
      const part = token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    } catch {
      return null;
    }
  }

  async function get(path) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch {
        // not JSON: keep the status text
      }
      throw new ApiError(response.status, detail);
    }
    return response.json();
  }

  function say(message, kind = "info") {
    const status = byId("status");
    status.textContent = message;
    status.dataset.kind = kind;
  }

  function askForToken(message) {
    byId("content").hidden = true;
    byId("sign-out").hidden = true;
    byId("token-form").hidden = false;
    byId("who").textContent = "";
    say(message, "warning");
  }

  function start(load, render) {
    takeTokenFromFragment();
    const refreshMs = Number(document.body.dataset.refreshS) * 1000;
    let timer = null;

    async function refresh() {
      clearTimeout(timer);
      try {
        const data = await load(get);
        byId("content").hidden = false; // before drawing: Plotly sizes charts to their visible container
        render(data);
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
        say(`Updated ${new Date().toLocaleTimeString("en-GB")}; refreshes every ${refreshMs / 1000} s.`);
      } catch (error) {
        if (error.status === 401) {
          askForToken(`The token was refused (${error.message}). Paste another.`);
          return; // no point polling with a refused token
        }
        if (error.status === 403) {
          say(`This token may not read this page: ${error.message}.`, "error");
          return;
        }
        say(`Could not refresh: ${error.message}. Trying again shortly.`, "error");
      }
      timer = setTimeout(refresh, refreshMs);
    }

    byId("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, byId("token-input").value.trim());
      byId("token-input").value = "";
      begin();
    });
    byId("sign-out").addEventListener("click", () => {
      clearTimeout(timer);
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken("Token forgotten. Paste a token to continue.");
    });

    function begin() {
      if (!token()) {
        askForToken("This page reads the Signpost API, which needs a bearer token.");
        return;
      }
      const who = claims();
      byId("who").textContent = who ? `${who.name || who.sub} · ${who.role} · ${who.tenant}` : "";
      byId("token-form").hidden = true;
      byId("sign-out").hidden = false;
      say("Loading…");
      refresh();
    }
    begin();
  }

  const COLOURS = ["#1d70b8", "#d4351c", "#00703c", "#f47738", "#4c2c92", "#5694ca", "#b58840", "#6f777b"];

  // Counts are whole numbers: no 0.2-step ticks on a chart of ones and twos.
  function countAxis(values, title) {
    const top = Math.max(0, ...values.filter((v) => typeof v === "number"));
    return { rangemode: "tozero", dtick: Math.max(1, Math.ceil(top / 6)), title: { text: title } };
  }

  function chart(id, traces, layout = {}) {
    const element = byId(id);
    Plotly.react(
      element,
      traces,
      {
        height: 340,
        margin: { t: 16, r: 16, b: 40, l: 56 },
        font: { family: "system-ui, sans-serif", size: 13 },
        colorway: COLOURS,
        legend: { orientation: "h", y: -0.3 },
        ...layout,
        xaxis: { automargin: true, ...(layout.xaxis || {}) },
        yaxis: { automargin: true, ...(layout.yaxis || {}) },
      },
      { displaylogo: false, responsive: true },
    );
  }

  function text(id, value) {
    byId(id).textContent = value;
  }

  // Rows of plain values; textContent only, so nothing from the API is parsed as HTML.
  function table(id, rows, numericColumns = []) {
    const body = byId(id).querySelector("tbody");
    body.replaceChildren(
      ...rows.map((cells) => {
        const row = document.createElement("tr");
        cells.forEach((value, index) => {
          const cell = document.createElement("td");
          cell.textContent = value;
          if (numericColumns.includes(index)) cell.className = "num";
          row.append(cell);
        });
        return row;
      }),
    );
  }

  const percent = (part, whole) => (whole ? `${Math.round((100 * part) / whole)}%` : "–");
  const when = (iso) => (iso ? new Date(iso).toLocaleString("en-GB") : "never");

  const OUTCOMES = [
    ["routed", "Routed to support"],
    ["unmatched", "Unmatched"],
    ["escalated_safeguarding", "Escalated: safeguarding"],
    ["escalated_ehc_assessment", "Escalated: EHC needs assessment"],
    ["awaiting_decision", "Awaiting decision"],
  ];

  return { start, chart, countAxis, text, table, percent, when, vocabulary, OUTCOMES, get };
})();
