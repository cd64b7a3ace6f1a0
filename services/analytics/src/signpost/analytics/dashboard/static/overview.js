"use strict";
// Pulse overview: the summary of a period against the previous one, the funnel, trends,
// waiting and unmet need, all as the pulse API answers them.
const FUNNEL = [
  ["submitted", "Submitted"],
  ["routed", "Routed"],
  ["accepted", "Accepted"],
  ["started", "Started"],
  ["completed", "Completed"],
  ["declined", "Declined"],
  ["unmatched", "Unmatched"],
  ["withdrawn", "Withdrawn"],
  ["escalated_safeguarding", "Safeguarding"],
  ["escalated_ehc_assessment", "EHC request"],
];
const TRENDS = [
  ["submitted", "Submitted"],
  ["escalated", "Escalated"],
  ["unmatched", "Unmatched"],
];

// Days for a short period, weeks up to half a year, months beyond.
function interval(period) {
  const days = (Date.parse(period.to) - Date.parse(period.from)) / 86_400_000 + 1;
  return days <= 14 ? "day" : days <= 190 ? "week" : "month";
}

// A trend point's name: its first and last day, and how little of its week or month it covers
// where the period asked for cuts it short (28 days from a Sunday begin with a 1-day week).
function periodName({ from, to }, interval) {
  const days = (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1;
  const dayAfter = new Date(Date.parse(to) + 86_400_000);
  const whole =
    interval === "day" ||
    (interval === "week" && days === 7) ||
    (interval === "month" && from.endsWith("-01") && dayAfter.getUTCDate() === 1);
  const span = days === 1 ? from : `${from} to ${to}`;
  return whole ? span : `${span} (part ${interval}, ${days} day${days === 1 ? "" : "s"})`;
}

Signpost.start(
  async (get) => {
    const { path, PERIOD } = Signpost;
    const [measures, summary, waiting, unmet] = await Promise.all([
      Signpost.measures(get),
      get(path("/v1/pulse/summary", PERIOD)),
      get(path("/v1/pulse/waiting", PERIOD)),
      get(path("/v1/pulse/unmet-demand", PERIOD)),
    ]);
    const every = interval(summary.period);
    const trends = await Promise.all(
      TRENDS.map(([measure]) => get(path("/v1/pulse/trend", PERIOD, { measure, interval: every }))),
    );
    return { measures, summary, waiting, unmet, trends };
  },
  ({ measures, summary, waiting, unmet, trends }) => {
    const { show, showChange, table, bars } = Signpost;
    const told = summary.suppression;
    Signpost.notice(summary);
    const byName = Object.fromEntries(summary.measures.map((m) => [m.measure, m]));
    const kind = (name) => measures[name].kind;
    Signpost.text(
      "period",
      `${summary.period.from} to ${summary.period.to}, against ${summary.previous_period.from} to ${summary.previous_period.to}.`,
    );

    for (const card of document.querySelectorAll("[data-measure]")) {
      const m = byName[card.dataset.measure];
      const value = show(m.current, kind(m.measure), told);
      card.querySelector(".value").textContent = value.text;
      card.querySelector(".value").title = value.title || "";
      card.querySelector(".change").textContent =
        `${showChange(m.change, kind(m.measure), told).text} on the previous period (${show(m.previous, kind(m.measure), told).text})`;
    }
    const coverage = summary.coverage;
    const card = document.getElementById("coverage");
    card.querySelector(".value").textContent = coverage ? show(coverage.share, "rate").text : "–";
    card.querySelector(".change").textContent = coverage
      ? `${coverage.referring_settings} of ${coverage.registered_settings} settings; ${coverage.unregistered_referring} referring settings not in the register`
      : "coverage is for the whole area or one locality";

    bars(
      "funnel-chart",
      FUNNEL.map(([, label]) => label),
      [
        { name: "This period", figures: FUNNEL.map(([name]) => byName[name].current) },
        { name: "Previous period", figures: FUNNEL.map(([name]) => byName[name].previous) },
      ],
      { notice: told, title: "referrals" },
    );
    const periods = trends[0].points.map((point) => periodName(point.period, trends[0].interval));
    bars(
      "trend-chart",
      trends[0].points.map((point) => point.period.from),
      trends.map((trend, index) => ({ name: TRENDS[index][1], figures: trend.points.map((point) => point.value) })),
      { notice: told, title: `referrals per ${trends[0].interval}`, labels: periods },
    );
    const charted = Signpost.largest(waiting.rows, (row) => row.accepted);
    bars(
      "waiting-chart",
      charted.map((row) => row.provision),
      [
        { name: "Days to acceptance", figures: charted.map((row) => row.days_to_accept) },
        { name: "Days to start", figures: charted.map((row) => row.days_to_start) },
      ],
      {
        kind: "mean",
        notice: told,
        title: "mean days",
        labels: charted.map((row) => row.label),
        layout: charted.length
          ? {}
          : Signpost.nothingToChart(
              told
                ? `No provision has ${told.threshold} or more acceptances in this period (smaller counts are withheld)`
                : "No provision accepted a referral in this period",
            ),
      },
    );
    bars(
      "unmet-chart",
      unmet.needs.map((need) => need.need),
      [{ name: "Unmatched", figures: unmet.needs.map((need) => need.unmatched) }],
      { notice: told, title: "referrals" },
    );

    table(
      "trend-table",
      trends[0].points.map((_, at) => [
        periods[at],
        ...trends.map((trend) => show(trend.points[at].value, "count", told)),
      ]),
      [1, 2, 3],
    );
    table(
      "measures-table",
      summary.measures.map((m) => [
        m.measure.replaceAll("_", " "),
        show(m.current, kind(m.measure), told),
        show(m.previous, kind(m.measure), told),
        showChange(m.change, kind(m.measure), told),
        m.description,
      ]),
      [1, 2, 3],
    );
    const byLabel = [...waiting.rows].sort((a, b) => a.label.localeCompare(b.label));
    const named = Signpost.names(byLabel.map((row) => [row.provision, row.label]));
    table(
      "waiting-table",
      byLabel.map((row, at) => [
        named[at],
        show(row.accepted, "count", told),
        show(row.days_to_accept, "mean", told),
        show(row.started, "count", told),
        show(row.days_to_start, "mean", told),
        row.advertised_waiting_weeks === null
          ? "–"
          : { text: String(Math.round(row.advertised_waiting_weeks * 7)), title: `${row.advertised_waiting_weeks} weeks in the Local Offer` },
      ]),
      [1, 2, 3, 4, 5],
    );
    table(
      "unmet-table",
      unmet.needs.map((need) => [
        need.need,
        show(need.unmatched, "count", told),
        show(need.submitted, "count", told),
        Object.entries(need.by_locality)
          .map(([locality, figure]) => `${locality}: ${show(figure, "count", told).text}`)
          .join(", ") || "–",
      ]),
      [1, 2],
    );
  },
);
