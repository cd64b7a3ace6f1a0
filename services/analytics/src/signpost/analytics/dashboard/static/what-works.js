"use strict";
// What works: needs-profile change and outcomes on completion by provision and by sector
// (GET /v1/pulse/what-works), and why offers were declined (GET /v1/pulse/declines).
const words = (code) => code.replaceAll("_", " ");

Signpost.start(
  async (get) => {
    const { path, PERIOD } = Signpost;
    const [provisions, sectors, declines] = await Promise.all([
      get(path("/v1/pulse/what-works", PERIOD, { group_by: "provision" })),
      get(path("/v1/pulse/what-works", PERIOD, { group_by: "sector" })),
      get(path("/v1/pulse/declines", PERIOD)),
    ]);
    return { provisions, sectors, declines };
  },
  ({ provisions, sectors, declines }) => {
    const { show, bars, table } = Signpost;
    const told = provisions.suppression;
    Signpost.notice(provisions);
    // Provisions are many: their charts show the largest (every one is in the tables).
    const completed = Signpost.largest(provisions.rows, (row) => row.completed);
    const declined = Signpost.largest(declines.rows, (row) => row.declined);
    const empty = (what) =>
      Signpost.nothingToChart(
        told
          ? `No provision has ${told.threshold} or more ${what} in this period (smaller counts are withheld)`
          : `No provision has ${what} in this period`,
      );
    const labels = (rows) => rows.map((row) => row.label);
    for (const [id, rows] of [["provision-chart", completed], ["sector-chart", sectors.rows]]) {
      bars(
        id,
        rows.map((row) => row.group),
        [{ name: "Mean fall in need score", figures: rows.map((row) => row.needs_change) }],
        {
          kind: "mean",
          notice: told,
          title: "score points",
          labels: labels(rows),
          layout: rows.length ? {} : empty("completions"),
        },
      );
    }
    // One series per outcome or reason any row has; a row without it had none.
    const parts = (rows, key) => [...new Set(rows.flatMap((row) => Object.keys(row[key])))];
    const outcomes = parts(completed, "outcomes");
    bars(
      "outcomes-chart",
      completed.map((row) => row.group),
      outcomes.map((outcome) => ({
        name: words(outcome),
        figures: completed.map((row) => row.outcomes[outcome] ?? { value: 0 }),
      })),
      {
        notice: told,
        title: "completions",
        labels: labels(completed),
        layout: completed.length ? {} : empty("completions"),
      },
    );
    const reasons = parts(declined, "by_reason");
    bars(
      "declines-chart",
      declined.map((row) => row.provision),
      reasons.map((reason) => ({
        name: words(reason),
        figures: declined.map((row) => row.by_reason[reason] ?? { value: 0 }),
      })),
      {
        notice: told,
        title: "declined offers",
        labels: labels(declined),
        layout: declined.length ? {} : empty("declined offers"),
      },
    );
    const listed = (figures) =>
      Object.entries(figures)
        .map(([code, figure]) => `${words(code)}: ${show(figure, "count", told).text}`)
        .join(", ") || "–";
    table(
      "works-table",
      [provisions, sectors].flatMap((answer) => {
        const named = Signpost.names(answer.rows.map((row) => [row.group, row.label]));
        return answer.rows.map((row, at) => [
          answer.group_by,
          named[at],
          show(row.completed, "count", told),
          show(row.rescored, "count", told),
          show(row.needs_change, "mean", told),
          listed(row.outcomes),
        ]);
      }),
      [2, 3, 4],
    );
    const declinedNames = Signpost.names(declines.rows.map((row) => [row.provision, row.label]));
    table(
      "declines-table",
      declines.rows.map((row, at) => [declinedNames[at], show(row.declined, "count", told), listed(row.by_reason)]),
      [1],
    );
  },
);
