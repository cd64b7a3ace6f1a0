"use strict";
// The dashboard's client: every page reads the same HTTP API any caller can, with a bearer
// token the user gives (kept in this tab's sessionStorage, never in a cookie or the URL),
// and refreshes itself every few seconds. Charts are Plotly, served from the installed
// `plotly` Python package: no request leaves the machine the dashboard is served from.
const Signpost = (() => {
  const TOKEN_KEY = "signpost.dashboard.token";
  const byId = (id) => document.getElementById(id);
  const vocabulary = JSON.parse(byId("vocabulary").textContent);
  // In UTC, as the charts' time axes are (Plotly draws the API's UTC times as given), whatever
  // the browser's time zone: one page, one clock.
  const UTC_TIME = { timeZone: "UTC", hour12: false };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // A token never holds whitespace: a pasted one wrapped across lines is whole again.
  const keepToken = (text) => sessionStorage.setItem(TOKEN_KEY, text.replace(/\s+/g, ""));

  // `signpost run` prints a link carrying a token in the fragment (never sent to a server).
  function takeTokenFromFragment() {
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (token) {
      keepToken(token);
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

  // A token a request header cannot carry is refused here, as the server would refuse a bad
  // one: fetch would throw on every refresh, and the page would never ask for another.
  function headers() {
    try {
      return new Headers({ Authorization: `Bearer ${token()}`, Accept: "application/json" });
    } catch {
      throw new ApiError(401, "it has characters a request header cannot carry");
    }
  }

  async function get(path) {
    const response = await fetch(path, { headers: headers(), cache: "no-store" });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = Array.isArray(body.detail)
          ? body.detail.map((problem) => `${problem.field}: ${problem.message}`).join("; ")
          : typeof body.detail === "string"
            ? body.detail
            : JSON.stringify(body.detail);
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

  // A refused view keeps its form, to change the choices, and hides the figures of the last
  // view, which no longer answer it (dashboard.css hides all but the form).
  function showContent({ refused }) {
    const content = byId("content");
    content.hidden = false;
    content.toggleAttribute("data-refused", refused);
  }

  function askForToken(message) {
    byId("content").hidden = true;
    byId("refresh").hidden = true;
    byId("sign-out").hidden = true;
    byId("token-form").hidden = false;
    byId("who").textContent = "";
    say(message, "warning");
  }

  // A person may pause the automatic refresh (WCAG 2.2.2), for every page of this tab.
  const PAUSED_KEY = "signpost.dashboard.paused";
  const paused = () => sessionStorage.getItem(PAUSED_KEY) === "true";

  function start(load, render) {
    takeTokenFromFragment();
    fillViewForm();
    const refreshMs = Number(document.body.dataset.refreshS) * 1000;
    let timer = null;
    let drawn = null; // the answer last drawn, as JSON: the same answer again is not redrawn
    let updatedAt = null;

    function schedule() {
      clearTimeout(timer);
      if (!paused()) timer = setTimeout(refresh, refreshMs);
    }

    // When the figures were read, outside the live region: a refresh is not news to announce.
    function showUpdated() {
      byId("pause").textContent = paused() ? "Resume updates" : "Pause updates";
      if (!updatedAt) return;
      const at = `Updated ${updatedAt.toLocaleTimeString("en-GB", UTC_TIME)} UTC`;
      text("updated", paused() ? `${at}; updates paused.` : `${at}; refreshes every ${refreshMs / 1000} s.`);
    }

    async function refresh() {
      clearTimeout(timer);
      try {
        const data = await load(get);
        showContent({ refused: false }); // before drawing: Plotly sizes charts to their visible container
        const answer = JSON.stringify(data);
        if (answer !== drawn) {
          render(data); // tables rebuilt and charts redrawn only when the figures changed
          drawn = answer;
        }
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
        updatedAt = new Date();
        showUpdated();
        // The live region speaks when something changes: a failure cleared, said once.
        say(byId("status").dataset.kind === "error" ? "Up to date again." : "");
      } catch (error) {
        if (error.status === 401) {
          askForToken(`The token was refused (${error.message}). Paste another.`);
          return; // no point polling with a refused token
        }
        if (error.status === 403) {
          say(`This token may not read this page: ${error.message}.`, "error");
          return;
        }
        if (error.status === 422) {
          showContent({ refused: true });
          say(`The API cannot answer this view: ${error.message}. Change the choices below.`, "error");
          return; // asking again will not help until the choices change
        }
        say(`Could not refresh: ${error.message}. Trying again shortly.`, "error");
      }
      schedule();
    }

    byId("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      keepToken(byId("token-input").value);
      byId("token-input").value = "";
      begin();
    });
    byId("sign-out").addEventListener("click", () => {
      clearTimeout(timer);
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken("Token forgotten. Paste a token to continue.");
    });
    byId("pause").addEventListener("click", () => {
      sessionStorage.setItem(PAUSED_KEY, String(!paused()));
      showUpdated();
      if (paused()) clearTimeout(timer);
      else refresh();
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
      byId("refresh").hidden = false;
      showUpdated();
      drawn = null;
      say("Loading…");
      refresh(); // once even while paused, so the page has figures to show
    }
    begin();
  }

  // Each at least 3:1 on the white page (WCAG 1.4.11).
  const COLOURS = ["#1d70b8", "#d4351c", "#00703c", "#c86400", "#4c2c92", "#5694ca", "#b58840", "#6f777b"];
  // Series told apart by more than colour (WCAG 1.4.1): lines by dash and marker, bars by fill.
  const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
  const SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross"];
  const PATTERNS = ["", "/", ".", "x", "\\", "+"];
  const lineStyle = (index) => ({
    type: "scatter",
    mode: "lines+markers",
    line: { dash: DASHES[index % DASHES.length] },
    marker: { symbol: SYMBOLS[index % SYMBOLS.length], maxdisplayed: 30 },
  });
  const barStyle = (index) => ({ type: "bar", marker: { pattern: { shape: PATTERNS[index % PATTERNS.length] } } });

  // Counts are whole numbers: no 0.2-step ticks on a chart of ones and twos.
  function countAxis(values, title) {
    const top = Math.max(0, ...values.filter((v) => typeof v === "number"));
    return { rangemode: "tozero", dtick: Math.max(1, Math.ceil(top / 6)), title: { text: title } };
  }

  // Plotly's defaults offer "Share chart..." on every chart, which uploads its data to Plotly
  // Cloud: a dashboard of referrals keeps its data on its own origin.
  const PLOTLY_CONFIG = {
    displaylogo: false,
    responsive: true,
    showSendToCloud: false,
    plotlyServerURL: "",
    modeBarButtonsToRemove: ["sendChartToCloud"],
  };

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
        uirevision: "kept", // a person's zoom, pan and hidden series survive each refresh
        ...layout,
        xaxis: { automargin: true, ...(layout.xaxis || {}) },
        yaxis: { automargin: true, ...(layout.yaxis || {}) },
      },
      PLOTLY_CONFIG,
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
          const shown = value !== null && typeof value === "object" ? value : { text: value };
          cell.textContent = shown.text;
          if (shown.title) cell.title = shown.title;
          if (shown.suppressed) cell.dataset.suppressed = "true";
          if (numericColumns.includes(index)) cell.className = "num";
          row.append(cell);
        });
        return row;
      }),
    );
  }

  const when = (iso) => (iso ? `${new Date(iso).toLocaleString("en-GB", UTC_TIME)} UTC` : "never");

  // The view a pulse page shows lives in its URL (?from=&to=&locality=…), so it can be shared;
  // the page's form (#view-form) submits back to the same page.
  const view = () => new URLSearchParams(location.search);

  function fillViewForm() {
    const form = byId("view-form");
    if (!form) return;
    for (const [name, value] of view()) {
      if (form.elements[name]) form.elements[name].value = value;
    }
  }

  // The API path with the view's non-empty values of `names`, then `extra`.
  function path(base, names, extra = {}) {
    const query = new URLSearchParams();
    for (const name of names) {
      const value = view().get(name);
      if (value) query.set(name, value);
    }
    for (const [name, value] of Object.entries(extra)) {
      if (value !== null && value !== undefined && value !== "") query.set(name, value);
    }
    const text = query.toString();
    return text ? `${base}?${text}` : base;
  }

  const PERIOD = ["from", "to"];
  const FILTERS = ["locality", "setting", "need", "sector", "provision"];

  // What each measure is (count, rate or mean), from the API; asked once per page load.
  let measureKinds = null;
  async function measures(getter) {
    measureKinds = measureKinds || (await getter("/v1/pulse/measures"));
    return measureKinds;
  }

  // One figure of the pulse API, {value, suppressed, reason}, as a person should read it:
  // a withheld count is "<5", anything else withheld is "suppressed", never 0.
  function show(figure, kind = "count", notice = null) {
    if (!figure) return { text: "–" };
    if (figure.suppressed) {
      // Every answer with a withheld figure carries the notice: the threshold and each reason's meaning.
      return {
        text: figure.reason === "small_number" && notice ? `<${notice.threshold}` : "suppressed",
        title: notice ? `Suppressed: ${notice.reasons[figure.reason]}` : `Suppressed (${figure.reason})`,
        suppressed: true,
      };
    }
    if (figure.value === null) return { text: "–", title: "Not defined (nothing to compute it over)" };
    if (kind === "rate") return { text: `${(figure.value * 100).toFixed(1)}%` };
    if (kind === "mean") return { text: figure.value.toFixed(1) };
    return { text: String(Math.round(figure.value)) };
  }

  // A change on the previous period, signed; a rate's in percentage points (20% to 25% is +5 pp).
  function showChange(figure, kind, told) {
    const shown = show(figure, kind, told);
    if (!figure || figure.suppressed || figure.value === null) return shown;
    const text = kind === "rate" ? `${(figure.value * 100).toFixed(1)} pp` : shown.text;
    return { ...shown, text: figure.value > 0 ? `+${text}` : text };
  }

  // The API's note that small numbers are withheld, with what each reason means.
  function notice(answer) {
    const box = byId("suppression");
    const told = answer.suppression;
    box.hidden = !told;
    if (!told) return;
    box.querySelector(".note").textContent = told.note;
    box.querySelector("dl").replaceChildren(
      ...Object.entries(told.reasons).flatMap(([reason, meaning]) => {
        const term = document.createElement("dt");
        term.textContent = reason === "small_number" ? `<${told.threshold}` : `suppressed (${reason.replaceAll("_", " ")})`;
        const description = document.createElement("dd");
        description.textContent = meaning;
        return [term, description];
      }),
    );
  }

  // Plotly reads tags and entities in chart text: names from the API (partners' provision
  // names among them) are escaped to be drawn as they are, as tables show them.
  const plain = (text) => String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

  function wrap(label, width = 18) {
    const lines = [];
    for (const word of String(label).split(" ")) {
      const last = lines.length - 1;
      if (last >= 0 && (lines[last] + " " + word).length <= width) lines[last] += ` ${word}`;
      else lines.push(word);
    }
    return lines.join("<br>");
  }

  // The rows a chart of many groups can show: those whose figure (`figureOf(row)`) is shown and
  // above 0, largest first, at most CHARTED (a chart of 59 provisions is unreadable; the table
  // has every row).
  const CHARTED = 12;
  function largest(rows, figureOf, labelOf = (row) => row.label) {
    const shown = (row) => (figureOf(row).suppressed ? null : figureOf(row).value);
    return rows
      .filter((row) => shown(row) > 0)
      .sort((a, b) => shown(b) - shown(a) || labelOf(a).localeCompare(labelOf(b)))
      .slice(0, CHARTED);
  }

  // Said on an empty chart, where its bars would be.
  function nothingToChart(text) {
    return { annotations: [{ text, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: { color: "#505a5f" } }] };
  }

  // What to call each group, from [id, label] pairs: its label, with its id beside it where
  // two groups share a label (two schools called St Mary's), so no reader confuses them.
  function names(groups) {
    const uses = new Map();
    for (const [, label] of groups) uses.set(label, (uses.get(label) || 0) + 1);
    return groups.map(([id, label]) => (uses.get(label) > 1 ? `${label} (${id})` : label));
  }

  // Bars of pulse figures: one trace per series, withheld values drawn as no bar with a
  // "<5" or "suppressed" label where the bar would be, never as 0. The categories are unique
  // keys (a group's id), shown by their `labels`: Plotly merges categories that are equal.
  function bars(
    id,
    categories,
    series,
    { kind = "count", notice: told = null, title = "", layout = {}, labels = categories } = {},
  ) {
    const ticks = names(categories.map((category, at) => [category, labels[at]])).map(plain);
    const width = 0.8 / series.length;
    const annotations = [];
    const traces = series.map(({ name, figures }, index) => {
      const shown = figures.map((figure) => show(figure, kind, told));
      figures.forEach((figure, at) => {
        if (figure && figure.suppressed) {
          annotations.push({
            x: at + (index - (series.length - 1) / 2) * width,
            y: 0,
            yanchor: "bottom",
            text: shown[at].text,
            hovertext: shown[at].title,
            showarrow: false,
            font: { color: "#505a5f" },
          });
        }
      });
      return {
        ...barStyle(index),
        name: plain(name),
        x: categories,
        y: figures.map((figure) => (figure && !figure.suppressed ? figure.value : null)),
        text: shown.map((one) => (one.suppressed ? "" : one.text)),
        textposition: "outside",
        cliponaxis: false,
        customdata: ticks,
        hovertemplate: `%{customdata}: %{text}<extra>${plain(name)}</extra>`, // withheld values have no bar to hover
      };
    });
    const values = traces.flatMap((trace) => trace.y);
    chart(id, traces, {
      barmode: "group",
      showlegend: series.length > 1,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      margin: { t: series.length > 1 ? 40 : 16, r: 16, b: 40, l: 56 },
      annotations,
      // Long names (provisions) wrap under their bar rather than slant across their neighbours.
      xaxis: { type: "category", tickvals: categories, ticktext: ticks.map(wrap) },
      yaxis:
        kind === "count"
          ? countAxis(values, title)
          : { rangemode: "tozero", title: { text: title }, tickformat: kind === "rate" ? ".0%" : "" },
      ...layout,
    });
  }

  return {
    start,
    get,
    vocabulary,
    // what a page shows
    text,
    table,
    when,
    chart,
    lineStyle,
    barStyle,
    countAxis,
    bars,
    names,
    largest,
    nothingToChart,
    CHARTED,
    // the pulse API's views, figures and suppression
    view,
    path,
    PERIOD,
    FILTERS,
    measures,
    show,
    showChange,
    notice,
  };
})();
